#include "topology_command.hpp"

#include "mpdemo/sys/topology.hpp"
#include "options.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <memory>
#include <nlohmann/json.hpp>

namespace mpdemo::cli {

Command add_topology_command(CLI::App& root) {
  CLI::App* app = root.add_subcommand("topology",
                                      "Show CPUs, physical cores and sockets, and the workers mpdemo "
                                      "would start (one per physical core, not per hyper-thread)");
  auto format = std::make_shared<Format>(Format::table);
  add_format_option(*app, *format, false);
  return {app, [format](std::ostream& out) {
            const Topology topology = discover_topology();
            if (*format == Format::json) {
              const nlohmann::json report{
                  {"logical_cpus", topology.logical_cpus},
                  {"physical_cores", topology.physical_cores},
                  {"sockets", topology.sockets},
                  {"allowed_cpus", topology.allowed_cpus},
                  {"allowed_cpu_list", format_cpu_list(topology.allowed_cpus)},
                  {"worker_cpus", topology.worker_cpus},
                  {"workers", topology.default_workers()},
              };
              out << report.dump(2) << '\n';
              return 0;
            }
            out << fmt::format("logical CPUs     {:>4}   hardware threads (psutil.cpu_count())\n",
                               topology.logical_cpus)
                << fmt::format("physical cores   {:>4}   (psutil.cpu_count(logical=False))\n", topology.physical_cores)
                << fmt::format("sockets          {:>4}\n", topology.sockets)
                << fmt::format("allowed CPUs     {:>4}   this process's affinity mask\n",
                               format_cpu_list(topology.allowed_cpus))
                << fmt::format(
                       "workers          {:>4}   one per physical core this process may use, pinned to "
                       "CPUs {}\n",
                       topology.default_workers(), format_cpu_list(topology.worker_cpus));
            return 0;
          }};
}

}  // namespace mpdemo::cli
