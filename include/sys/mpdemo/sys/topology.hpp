// Topology: how many logical CPUs, physical cores and sockets this machine has, which CPUs this
// process may use, and where the pool's workers go (one per physical core, not per hyper-thread).
#pragma once

#include "mpdemo/sys/huge_pages.hpp"

#include <sched.h>
#include <cstddef>
#include <span>
#include <string>
#include <vector>

namespace mpdemo {

struct Topology {
  std::size_t logical_cpus = 0;    ///< hardware threads (what psutil.cpu_count() says)
  std::size_t physical_cores = 0;  ///< cores (what psutil.cpu_count(logical=False) says)
  std::size_t sockets = 0;         ///< packages
  std::vector<int> allowed_cpus;   ///< this process's affinity mask, OS CPU numbers, ascending
  /// One allowed CPU (the first) of every physical core that has any allowed CPU: worker w is
  /// pinned to worker_cpus[w % worker_cpus.size()].
  std::vector<int> worker_cpus;
  /// The allowed CPUs of each physical core that has any, core by core: a core with two entries has
  /// SMT siblings (hyper-threads) that share its execution units.
  std::vector<std::vector<int>> core_cpus;
  /// The largest cache hwloc lists above this process's first allowed CPU, in bytes (0: none listed):
  /// the last-level cache one core reaches. What the hardware (or a hypervisor) reports; a VM may be
  /// shown its host's whole cache.
  std::size_t last_level_cache_bytes = 0;
  /// Whether any allowed core offers more than one hardware thread.
  bool has_smt() const noexcept {
    for (const auto& siblings : core_cpus) {
      if (siblings.size() > 1) return true;
    }
    return false;
  }

  /// The CPU worker `w` is pinned to (the rule every pool uses), or -1 when there is none to pin to.
  int worker_cpu(std::size_t w) const noexcept {
    return worker_cpus.empty() ? -1 : worker_cpus[w % worker_cpus.size()];
  }
  /// Physical cores this process may run on: the default number of workers.
  std::size_t default_workers() const noexcept { return worker_cpus.empty() ? 1 : worker_cpus.size(); }
};

/// Reads the topology now, with hwloc (the machine) and sched_getaffinity (this process).
/// Throws std::system_error if either fails.
Topology discover_topology();

/// The same, from a machine described in hwloc's XML (lstopo --of xml) and a given affinity mask:
/// how the logic is tested on machines with SMT and several sockets that the test machine is not.
/// Throws std::runtime_error if hwloc cannot read the XML.
Topology topology_from_hwloc_xml(const std::string& xml, std::span<const int> allowed_cpus);

/// discover_topology() once per process (the first call costs a few milliseconds); thread-safe.
const Topology& system_topology();

/// Pins the calling thread (in a single-threaded child: the process) to `cpu`; false if the kernel
/// refuses (a CPU outside this process's cpuset), true and nothing done for -1. A system call only:
/// safe in a forked child. The one place mpdemo pins anything: pools, spawn() and the benchmarks.
bool pin_calling_thread(int cpu) noexcept;
/// The same for a set of CPUs, among which the kernel chooses (empty: nothing done).
bool pin_calling_thread(std::span<const int> cpus) noexcept;
/// While it lives, keeps the calling thread off the `busy` CPUs (-1s ignored): if the thread runs on
/// one of them when this is made, its affinity is narrowed to the CPUs it may use that are not busy
/// (if there are any), and given back whole when this dies; the thread stays where it was moved, so
/// the next one finds it there and does nothing. Otherwise the whole cost is sched_getcpu(), nearly
/// free. Narrowed for the scope only, so threads the caller creates later inherit its own affinity.
class ScopedMoveOff {
 public:
  explicit ScopedMoveOff(std::span<const int> busy) noexcept;
  ~ScopedMoveOff();
  ScopedMoveOff(const ScopedMoveOff&) = delete;
  ScopedMoveOff& operator=(const ScopedMoveOff&) = delete;
  /// Whether the thread was found on a busy CPU and moved.
  bool moved() const noexcept { return moved_; }

 private:
  cpu_set_t saved_{};
  bool moved_ = false;
};

/// The size of a memory page, in bytes (sysconf(_SC_PAGESIZE)).
std::size_t page_size() noexcept;
/// Physical memory, in bytes.
std::size_t physical_memory_bytes() noexcept;

/// What a report says of the machine it ran on, besides its Topology.
struct MachineFacts {
  std::string cpu_model;  ///< /proc/cpuinfo's first "model name" (empty where there is none)
  std::string kernel;     ///< "Linux 6.1.0-18-amd64"
  std::string host;
  std::size_t memory_bytes = 0;
  HugePages huge_pages;
};
MachineFacts machine_facts();

/// "0-3,6,8-9": the kernel's own CPU-list notation.
std::string format_cpu_list(std::span<const int> cpus);

}  // namespace mpdemo
