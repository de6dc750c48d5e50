// Renderers for `mpdemo topology`: the machine's CPUs, cores and sockets, and where workers go.
#pragma once

#include "mpdemo/pool/chunk_kernel.hpp"
#include "mpdemo/sys/shared_memory.hpp"
#include "mpdemo/sys/topology.hpp"

#include <string>

namespace mpdemo::report {

/// Nine lines: logical CPUs, physical cores, sockets, allowed CPUs, workers (each with what psutil
/// calls it), the last-level cache, from which size a map's stores stream (`stores`), and the page
/// size of private and of shared memory (`pages`).
std::string topology_table(const Topology& topology, const StoreRule& stores, const HugePages& pages);
/// logical_cpus, physical_cores, sockets, allowed_cpus, allowed_cpu_list, worker_cpus, workers,
/// last_level_cache_bytes, stream_above_bytes (null: never), stream_above_source,
/// huge_pages_private / huge_pages_shared: {setting (null: unknown), file (the one that decided),
/// offered}, huge_pages_arena: {huge, source (own_tmpfs or anonymous), own_tmpfs_failure (null: none)}.
std::string topology_json(const Topology& topology, const StoreRule& stores, const HugePages& pages);

/// What page size private memory (the loops' vectors) gets, and the setting that decides it.
std::string private_pages_text(const HugePages& pages);
/// What page size shared memory (the pools' arena) gets and the setting that decides it; where the
/// kernel offers no huge pages for it, how root turns them on. Every report that names them says these.
std::string shared_pages_text(const HugePages& pages);
/// The same for one arena that exists, by where its pages came from (SharedArena::source()): where
/// mpdemo's own tmpfs could not hold it (a file size limit), it is the system's anonymous shared
/// memory, whatever huge_pages() says the arenas use, and this says so.
std::string arena_pages_text(const HugePages& pages, SharedMemorySource source);

}  // namespace mpdemo::report
