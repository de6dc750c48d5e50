#include "mpdemo/report/topology.hpp"

#include "mpdemo/report/format.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace mpdemo::report {

namespace {
std::string cache_text(std::size_t bytes) {
  return bytes == 0 ? std::string("none listed") : human_bytes(static_cast<double>(bytes));
}
}  // namespace

std::string topology_table(const Topology& topology, const StoreRule& stores) {
  return fmt::format("logical CPUs     {:>4}   hardware threads (psutil.cpu_count())\n", topology.logical_cpus) +
         fmt::format("physical cores   {:>4}   (psutil.cpu_count(logical=False))\n", topology.physical_cores) +
         fmt::format("sockets          {:>4}\n", topology.sockets) +
         fmt::format("allowed CPUs     {:>4}   this process's affinity mask\n",
                     format_cpu_list(topology.allowed_cpus)) +
         fmt::format("workers          {:>4}   one per physical core this process may use, pinned to CPUs {}\n",
                     topology.default_workers(), format_cpu_list(topology.worker_cpus)) +
         fmt::format("last-level cache {}: the largest cache hwloc lists for CPU {} (a VM may list its host's)\n",
                     cache_text(topology.last_level_cache_bytes),
                     topology.allowed_cpus.empty() ? 0 : topology.allowed_cpus.front()) +
         (stores.never
              ? fmt::format("streaming stores never: {} (MPDEMO_STREAM_ABOVE=SIZE sets a size)\n", stores.source)
              : fmt::format("streaming stores for maps whose input and output exceed {} together: {} "
                            "(MPDEMO_STREAM_ABOVE=SIZE overrides)\n",
                            human_bytes(static_cast<double>(stores.stream_above_bytes)), stores.source));
}

std::string topology_json(const Topology& topology, const StoreRule& stores) {
  const nlohmann::json json{
      {"logical_cpus", topology.logical_cpus},
      {"physical_cores", topology.physical_cores},
      {"sockets", topology.sockets},
      {"allowed_cpus", topology.allowed_cpus},
      {"allowed_cpu_list", format_cpu_list(topology.allowed_cpus)},
      {"worker_cpus", topology.worker_cpus},
      {"workers", topology.default_workers()},
      {"last_level_cache_bytes", topology.last_level_cache_bytes},
      {"stream_above_bytes", stores.never ? nlohmann::json(nullptr) : nlohmann::json(stores.stream_above_bytes)},
      {"stream_above_source", stores.source},
  };
  return json.dump(2) + '\n';
}

}  // namespace mpdemo::report
