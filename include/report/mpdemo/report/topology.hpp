// Renderers for `mpdemo topology`: the machine's CPUs, cores and sockets, and where workers go.
#pragma once

#include "mpdemo/sys/topology.hpp"

#include <string>

namespace mpdemo::report {

/// Five lines: logical CPUs, physical cores, sockets, allowed CPUs, workers (each with what psutil calls it).
std::string topology_table(const Topology& topology);
/// logical_cpus, physical_cores, sockets, allowed_cpus, allowed_cpu_list, worker_cpus, workers.
std::string topology_json(const Topology& topology);

}  // namespace mpdemo::report
