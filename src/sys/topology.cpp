#include "mpdemo/sys/topology.hpp"

#include "mpdemo/sys/detail/system_call.hpp"
#include "mpdemo/sys/errors.hpp"
#include "mpdemo/sys/proc_files.hpp"

#include <fmt/format.h>
#include <hwloc.h>
#include <sched.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <algorithm>
#include <memory>
#include <optional>

namespace mpdemo {

namespace {

struct HwlocTopology {
  hwloc_topology_t handle = nullptr;
  /// This machine, or the one `xml` describes.
  explicit HwlocTopology(const std::string* xml = nullptr) {
    if (hwloc_topology_init(&handle) != 0) throw_errno("initialise hwloc");
    if (xml != nullptr && hwloc_topology_set_xmlbuffer(handle, xml->data(), static_cast<int>(xml->size()) + 1) != 0) {
      hwloc_topology_destroy(handle);
      throw std::runtime_error("hwloc cannot read this topology XML");
    }
    // Count the whole machine, as psutil does, even CPUs a cgroup keeps from us; which of them this
    // process may use is the affinity mask's business, read separately.
    hwloc_topology_set_flags(handle, HWLOC_TOPOLOGY_FLAG_INCLUDE_DISALLOWED);
    if (hwloc_topology_load(handle) != 0) {
      hwloc_topology_destroy(handle);
      throw_errno("load the hwloc topology");
    }
  }
  ~HwlocTopology() { hwloc_topology_destroy(handle); }
  HwlocTopology(const HwlocTopology&) = delete;
  HwlocTopology& operator=(const HwlocTopology&) = delete;

  std::size_t count(hwloc_obj_type_t type) const {
    const int n = hwloc_get_nbobjs_by_type(handle, type);
    return n > 0 ? static_cast<std::size_t>(n) : 0;
  }
};

std::vector<int> affinity_cpus() {
  cpu_set_t mask;
  CPU_ZERO(&mask);
  if (sched_getaffinity(0, sizeof(mask), &mask) != 0) throw_errno("read this process's CPU affinity");
  std::vector<int> cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(static_cast<std::size_t>(cpu), &mask)) cpus.push_back(cpu);
  }
  return cpus;
}

}  // namespace

namespace {

Topology describe(const HwlocTopology& hwloc, std::vector<int> allowed_cpus) {
  Topology topology;
  topology.logical_cpus = hwloc.count(HWLOC_OBJ_PU);
  topology.physical_cores = hwloc.count(HWLOC_OBJ_CORE);
  topology.sockets = hwloc.count(HWLOC_OBJ_PACKAGE);
  topology.allowed_cpus = std::move(allowed_cpus);

  for (std::size_t i = 0; i < topology.physical_cores; ++i) {
    const hwloc_obj_t core = hwloc_get_obj_by_type(hwloc.handle, HWLOC_OBJ_CORE, static_cast<unsigned>(i));
    std::vector<int> siblings;
    for (int cpu : topology.allowed_cpus) {
      if (hwloc_bitmap_isset(core->cpuset, static_cast<unsigned>(cpu))) siblings.push_back(cpu);
    }
    if (siblings.empty()) continue;
    topology.worker_cpus.push_back(siblings.front());
    topology.core_cpus.push_back(std::move(siblings));
  }
  if (!topology.allowed_cpus.empty()) {
    const hwloc_obj_t cpu =
        hwloc_get_pu_obj_by_os_index(hwloc.handle, static_cast<unsigned>(topology.allowed_cpus.front()));
    for (hwloc_obj_t above = cpu == nullptr ? nullptr : cpu->parent; above != nullptr; above = above->parent) {
      if (hwloc_obj_type_is_dcache(above->type) != 0 && above->attr != nullptr)
        topology.last_level_cache_bytes =
            std::max<std::size_t>(topology.last_level_cache_bytes, static_cast<std::size_t>(above->attr->cache.size));
    }
  }
  // A machine hwloc describes without cores (some VMs) still has the CPUs we may use: one each.
  if (topology.physical_cores == 0) {
    topology.physical_cores = topology.logical_cpus;
    topology.worker_cpus = topology.allowed_cpus;
    topology.core_cpus.clear();
    for (int cpu : topology.allowed_cpus) topology.core_cpus.push_back({cpu});
  }
  return topology;
}

}  // namespace

Topology discover_topology() { return describe(HwlocTopology(), affinity_cpus()); }

Topology topology_from_hwloc_xml(const std::string& xml, std::span<const int> allowed_cpus) {
  const HwlocTopology hwloc(&xml);
  return describe(hwloc, std::vector<int>(allowed_cpus.begin(), allowed_cpus.end()));
}

const Topology& system_topology() {
  static const Topology topology = discover_topology();
  return topology;
}

std::string format_cpu_list(std::span<const int> cpus) {
  std::string text;
  for (std::size_t i = 0; i < cpus.size();) {
    std::size_t j = i;
    while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1) ++j;
    if (!text.empty()) text += ',';
    text += j == i ? fmt::format("{}", cpus[i]) : fmt::format("{}-{}", cpus[i], cpus[j]);
    i = j + 1;
  }
  return text;
}

bool pin_calling_thread(int cpu) noexcept {
  if (cpu < 0) return true;
  return pin_calling_thread(std::span<const int>(&cpu, 1));
}

bool pin_calling_thread(std::span<const int> cpus) noexcept {
  if (cpus.empty()) return true;
  cpu_set_t mask;
  CPU_ZERO(&mask);
  for (int cpu : cpus) {
    if (cpu < 0 || cpu >= CPU_SETSIZE) return false;
    CPU_SET(static_cast<std::size_t>(cpu), &mask);
  }
  return ::sched_setaffinity(0, sizeof(mask), &mask) == 0;  // pid 0: the calling thread
}

ScopedMoveOff::ScopedMoveOff(std::span<const int> busy) noexcept {
  const int now = ::sched_getcpu();
  if (now < 0 || std::find(busy.begin(), busy.end(), now) == busy.end()) return;
  if (::sched_getaffinity(0, sizeof(saved_), &saved_) != 0) return;
  cpu_set_t narrowed = saved_;
  for (int cpu : busy) {
    if (cpu >= 0 && cpu < CPU_SETSIZE) CPU_CLR(static_cast<std::size_t>(cpu), &narrowed);
  }
  if (CPU_COUNT(&narrowed) == 0) return;
  moved_ = ::sched_setaffinity(0, sizeof(narrowed), &narrowed) == 0;
}

ScopedMoveOff::~ScopedMoveOff() {
  if (moved_) ::sched_setaffinity(0, sizeof(saved_), &saved_);
}

std::size_t page_size() noexcept { return static_cast<std::size_t>(::sysconf(_SC_PAGESIZE)); }

std::size_t physical_memory_bytes() noexcept {
  return static_cast<std::size_t>(::sysconf(_SC_PHYS_PAGES)) * page_size();
}

MachineFacts machine_facts() {
  MachineFacts facts;
  if (const std::optional<ProcFields> cpuinfo = ProcFields::read("/proc/cpuinfo")) {
    facts.cpu_model = cpuinfo->text("model name").value_or("");
  }
  utsname names{};
  if (::uname(&names) == 0) {
    facts.kernel = fmt::format("{} {}", names.sysname, names.release);
    facts.host = names.nodename;
  }
  facts.memory_bytes = physical_memory_bytes();
  facts.huge_pages = huge_pages();
  return facts;
}

}  // namespace mpdemo
