// What the kernel says of this process's own mappings (/proc/self/smaps): how tests check that memory
// asked for huge pages, and got them.
#pragma once

#include <cstddef>
#include <set>
#include <string>

namespace mpdemo::testing {

struct MappingFacts {
  std::string name;                     ///< what backs it, as smaps names it ("/dev/zero (deleted)"), or ""
  std::set<std::string> flags;          ///< the VmFlags line's two-letter flags ("hg": asked for huge pages)
  std::size_t anon_huge_kb = 0;         ///< private memory mapped in 2 MiB pages (AnonHugePages)
  std::size_t shmem_pmd_mapped_kb = 0;  ///< shared memory mapped in 2 MiB pages (ShmemPmdMapped)
};

/// The facts of the mapping that holds `address` (all empty if none does).
MappingFacts mapping_holding(const void* address);

}  // namespace mpdemo::testing
