#include "mpdemo/report/topology.hpp"

#include "mpdemo/report/format.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace mpdemo::report {

namespace {
std::string cache_text(std::size_t bytes) {
  return bytes == 0 ? std::string("none listed") : human_bytes(static_cast<double>(bytes));
}
std::string no_setting_file_text(const char* file) {
  return fmt::format("4 KiB pages: this kernel has no {} (no transparent huge pages)", file);
}
nlohmann::json setting_json(const std::string& setting, const std::string& file, bool offered) {
  return {{"setting", setting.empty() ? nlohmann::json(nullptr) : nlohmann::json(setting)},
          {"file", file},
          {"offered", offered}};
}
}  // namespace

std::string private_pages_text(const HugePages& pages) {
  if (pages.private_setting.empty()) return no_setting_file_text(HugePages::kPrivateSettingFile);
  if (pages.private_offered()) {
    return fmt::format("2 MiB huge pages where a large array covers whole 2 MiB spans ({}: {})",
                       setting_file_name(pages.private_setting_file), pages.private_setting);
  }
  return fmt::format("4 KiB pages: this kernel offers no huge pages ({}: {})",
                     setting_file_name(pages.private_setting_file), pages.private_setting);
}

std::string shared_pages_text(const HugePages& pages) {
  if (pages.shared_setting.empty()) return no_setting_file_text(HugePages::kSharedSettingFile);
  if (pages.shared_offered()) {
    return fmt::format("2 MiB huge pages where the pools' arena covers whole 2 MiB spans ({}: {})",
                       setting_file_name(pages.shared_setting_file), pages.shared_setting);
  }
  if (pages.own_tmpfs) {
    return fmt::format(
        "2 MiB huge pages from mpdemo's own tmpfs (huge=always, mounted in namespaces of its own): the "
        "system's anonymous shared memory gets none ({}: {}); {}=0 uses it anyway",
        setting_file_name(pages.shared_setting_file), pages.shared_setting, kOwnTmpfsVariable);
  }
  return fmt::format(
      "4 KiB pages: this kernel offers no huge pages for shared memory ({}: {}){}; as root, "
      "`echo advise > {}` lets the pools' arena ask for them",
      setting_file_name(pages.shared_setting_file), pages.shared_setting,
      pages.own_tmpfs_failure.empty() ? std::string() : fmt::format(", and {}", pages.own_tmpfs_failure),
      pages.shared_setting_file);
}

std::string arena_pages_text(const HugePages& pages, SharedMemorySource source) {
  if (source == SharedMemorySource::anonymous && pages.own_tmpfs && !pages.shared_offered()) {
    return fmt::format(
        "4 KiB pages: this arena is the system's anonymous shared memory ({}: {}), as mpdemo's own "
        "tmpfs could not hold it (ulimit -f, or its mapping was refused)",
        setting_file_name(pages.shared_setting_file), pages.shared_setting);
  }
  return shared_pages_text(pages);
}

std::string topology_table(const Topology& topology, const StoreRule& stores, const HugePages& pages) {
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
                            human_bytes(static_cast<double>(stores.stream_above_bytes)), stores.source)) +
         fmt::format("private memory in {}\n", private_pages_text(pages)) +
         fmt::format("shared memory in {}\n", shared_pages_text(pages));
}

std::string topology_json(const Topology& topology, const StoreRule& stores, const HugePages& pages) {
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
      {"huge_pages_private", setting_json(pages.private_setting, pages.private_setting_file, pages.private_offered())},
      {"huge_pages_shared", setting_json(pages.shared_setting, pages.shared_setting_file, pages.shared_offered())},
      {"huge_pages_arena",
       {{"huge", pages.arena_huge()},
        {"source", pages.own_tmpfs ? "own_tmpfs" : "anonymous"},
        {"own_tmpfs_failure",
         pages.own_tmpfs_failure.empty() ? nlohmann::json(nullptr) : nlohmann::json(pages.own_tmpfs_failure)}}},
  };
  return json.dump(2) + '\n';
}

}  // namespace mpdemo::report
