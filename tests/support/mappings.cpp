#include "support/mappings.hpp"

#include <cstdint>
#include <fstream>
#include <sstream>

namespace mpdemo::testing {

MappingFacts mapping_holding(const void* address) {
  const auto wanted = reinterpret_cast<std::uintptr_t>(address);
  std::ifstream smaps("/proc/self/smaps");
  MappingFacts facts;
  bool inside = false;
  for (std::string line; std::getline(smaps, line);) {
    std::uintptr_t begin = 0;
    std::uintptr_t end = 0;
    char dash = 0;
    std::istringstream header(line);
    if (header >> std::hex >> begin >> dash >> end && dash == '-') {  // a mapping's first line
      inside = begin <= wanted && wanted < end;
      if (inside) {  // begin-end perms offset device inode [name, which may hold spaces]
        std::string skipped;
        header >> skipped >> skipped >> skipped >> skipped;
        std::getline(header >> std::ws, facts.name);
      }
      continue;
    }
    if (!inside) continue;
    std::istringstream fields(line);
    std::string name;
    fields >> name;
    if (name == "VmFlags:") {
      for (std::string flag; fields >> flag;) facts.flags.insert(flag);
    } else if (name == "AnonHugePages:") {
      fields >> facts.anon_huge_kb;
    } else if (name == "ShmemPmdMapped:") {
      fields >> facts.shmem_pmd_mapped_kb;
    }
  }
  return facts;
}

}  // namespace mpdemo::testing
