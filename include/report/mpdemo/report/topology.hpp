// Renderers for `mpdemo topology`: the machine's CPUs, cores and sockets, and where workers go.
#pragma once

#include "mpdemo/pool/chunk_kernel.hpp"
#include "mpdemo/sys/topology.hpp"

#include <string>

namespace mpdemo::report {

/// Seven lines: logical CPUs, physical cores, sockets, allowed CPUs, workers (each with what psutil
/// calls it), the last-level cache, and from which size a map's stores stream (`stores`).
std::string topology_table(const Topology& topology, const StoreRule& stores);
/// logical_cpus, physical_cores, sockets, allowed_cpus, allowed_cpu_list, worker_cpus, workers,
/// last_level_cache_bytes, stream_above_bytes (null: never), stream_above_source.
std::string topology_json(const Topology& topology, const StoreRule& stores);

}  // namespace mpdemo::report
