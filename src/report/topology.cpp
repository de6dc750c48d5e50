#include "mpdemo/report/topology.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace mpdemo::report {

std::string topology_table(const Topology& topology) {
  return fmt::format("logical CPUs     {:>4}   hardware threads (psutil.cpu_count())\n", topology.logical_cpus) +
         fmt::format("physical cores   {:>4}   (psutil.cpu_count(logical=False))\n", topology.physical_cores) +
         fmt::format("sockets          {:>4}\n", topology.sockets) +
         fmt::format("allowed CPUs     {:>4}   this process's affinity mask\n",
                     format_cpu_list(topology.allowed_cpus)) +
         fmt::format("workers          {:>4}   one per physical core this process may use, pinned to CPUs {}\n",
                     topology.default_workers(), format_cpu_list(topology.worker_cpus));
}

std::string topology_json(const Topology& topology) {
  const nlohmann::json json{
      {"logical_cpus", topology.logical_cpus},
      {"physical_cores", topology.physical_cores},
      {"sockets", topology.sockets},
      {"allowed_cpus", topology.allowed_cpus},
      {"allowed_cpu_list", format_cpu_list(topology.allowed_cpus)},
      {"worker_cpus", topology.worker_cpus},
      {"workers", topology.default_workers()},
  };
  return json.dump(2) + '\n';
}

}  // namespace mpdemo::report
