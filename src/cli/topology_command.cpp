#include "topology_command.hpp"

#include "mpdemo/report/topology.hpp"
#include "mpdemo/sys/topology.hpp"
#include "options.hpp"

#include <memory>

namespace mpdemo::cli {

Command add_topology_command(CLI::App& root) {
  CLI::App* app = root.add_subcommand("topology",
                                      "Show CPUs, physical cores and sockets, and the workers mpdemo "
                                      "would start (one per physical core, not per hyper-thread)");
  auto format = std::make_shared<Format>(Format::table);
  add_format_option(*app, *format, false);
  return {app, [format](std::ostream& out) {
            const Topology topology = discover_topology();
            const StoreRule& stores = store_rule();
            const HugePages pages = huge_pages();
            out << (*format == Format::json ? report::topology_json(topology, stores, pages)
                                            : report::topology_table(topology, stores, pages));
            return 0;
          }};
}

}  // namespace mpdemo::cli
