// Costs: what the building blocks of parallel work cost on this machine. Starting a process or a
// thread, handing a message between them, a context switch, moving 100 MB, copy-on-write. Each is
// measured with real system calls, repeated and summarised (median, min, max). The measurements are
// numbers only: what each one teaches is said by the report (mpdemo/report/costs.hpp).
//
// Every probe forks or starts what it measures and stops it before returning: children are owned by
// ChildProcess (killed and reaped if a probe throws), pipes by FileDescriptor, memory by RAII mappings.
// A forked child only makes system calls and leaves with _exit.
//
// Thread safety: the probes are meant to run one at a time, in a process with no other busy threads
// (they fork, pin processes to CPUs and time what the scheduler does). They are not fork-safe to call
// from a forked child.
//
// Example:
//   mpdemo::CostOptions options;
//   options.repeat = 5;
//   const std::vector<mpdemo::CostMeasurement> costs = mpdemo::measure_costs(options);
//   std::cout << mpdemo::report::costs_table(costs);   // or costs_json, costs_csv
#pragma once

#include "mpdemo/pool/data_path.hpp"
#include "mpdemo/sys/timing.hpp"
#include "mpdemo/sys/topology.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mpdemo {

class ForkServer;  // mpdemo/sys/spawn.hpp

/// An extra value a probe observed beside its timing: a ratio, a size, what a process read.
struct CostDetail {
  std::string name;  ///< snake_case: "times_small_parent", "parent_read_after_child"
  double value = 0;
};

/// One row of `mpdemo costs`: the data model every renderer (table, JSON, CSV) prints.
struct CostMeasurement {
  std::string name;         ///< stable snake_case identifier: "fork_small_parent"
  std::string unit;         ///< what one operation is: "seconds per fork"
  Summary summary;          ///< seconds per operation over the repeats (zeros when not measurable)
  std::size_t repeats = 0;  ///< samples summarised (0 when not measurable)
  bool measurable = true;   ///< false when this machine cannot run the probe (one physical core allowed)
  std::vector<CostDetail> details;
};

/// What `measure_costs` measures and how long it takes (about 3 s with the defaults on 2 cores).
struct CostOptions {
  std::size_t repeat = 11;  ///< samples per probe: the median and the spread are over these
  /// Operations timed together in one sample of the cheap probes (fork, thread start, round trips);
  /// a sample's time is divided by this. The large-parent fork runs operations / 20 (at least 1).
  std::size_t operations = 100;
  std::size_t large_parent_bytes = std::size_t{512} << 20;  ///< touched private memory held during a fork
  std::size_t transfer_bytes = 100'000'000;                 ///< moved per sample, pipe vs shared memory
  std::size_t page_probe_bytes = std::size_t{64} << 20;     ///< pages written after fork, per sample
};

/// Two CPUs to pin two processes to; -1 leaves a process unpinned.
struct CpuPair {
  int first = -1;
  int second = -1;
};

/// Seconds per page of writing one byte to each 4 KiB page of a private mapping.
struct PageWriteCosts {
  Summary first_write_after_fork;  ///< the pages are shared with a live child: each write copies a page
  Summary write_to_owned_page;     ///< the same pages again, now the parent's own
};

/// Seconds per page of reading one byte of each 4 KiB page of a private mapping the parent had
/// written: in a child just forked, whose page tables fork copied (so the kernel sees no fault), and
/// in the parent that owns them.
struct PageReadCosts {
  Summary first_read_in_child;   ///< the child's first read of each page
  Summary read_owned;            ///< the parent reading the same pages, present in its page tables
  double child_faults_per_page;  ///< page faults the kernel counted in the child's reads, per page
  std::uint64_t child_sum = 0;   ///< the bytes the child read, summed: pages x value_written
  unsigned char value_written = 0;
};

/// Copy-on-write, shown: what each side read after a write. Every field is a value read from memory.
struct CopyOnWriteDemo {
  int before = 0;                          ///< what the arrays held when the child was forked
  int written = 0;                         ///< what the child (and later the thread) wrote
  int child_read = 0;                      ///< the child reading its own write: `written`
  int parent_read_after_child = 0;         ///< private memory: still `before`, the child wrote its own copy
  int parent_read_after_child_shared = 0;  ///< a MAP_SHARED array: `written`, one page for both
  int parent_read_after_thread = 0;        ///< a thread's write to the private array: `written`
};

/// Runs every probe and returns one row per figure, in this order:
/// fork_small_parent, fork_large_parent, thread_start, pipe_round_trip_processes,
/// condvar_round_trip_threads, futex_round_trip_processes, wake_sleeping_process and
/// spin_round_trip_processes (neither measurable when this process may use only one physical core),
/// context_switch_same_core, context_switch_two_cores (not measurable when this process may use only one physical
/// core), transfer_pipe, transfer_shared_memory, page_write_after_fork (details: the copy-on-write demonstration),
/// page_write_owned, page_read_after_fork, page_read_owned. Throws BadArgument for a zero count or size,
/// std::system_error when a system call fails, std::runtime_error when a helper process dies, Interrupted after SIGINT
/// under a guard.
std::vector<CostMeasurement> measure_costs(const CostOptions& options);

/// fork + child _exit + waitpid, `forks` per sample, in this process as it is now.
Summary measure_fork(std::size_t repeats, std::size_t forks);
/// The same while this process holds `bytes` of touched private memory in 4 KiB pages.
Summary measure_fork_holding(std::size_t bytes, std::size_t repeats, std::size_t forks);
/// What forking a team costs this process as it is now, and nothing else: the floor under a fresh
/// pool's start and stop phases, measured beside them (a process's fork and exit cost grows with what
/// it maps, so a bare fork of a small process is no floor for a big one).
struct BareTeamTimes {
  /// Seconds from making the pipes (a pool's start makes its own too) until every child's byte arrived.
  double start = 0;
  double stop = 0;  ///< seconds from hanging up on every child until every one was reaped
};
/// Makes two pipes per child, then forks `members` children one after the other (unpinned), then waits
/// for one byte from each; each then waits for end-of-file on its own pipe, which the parent gives all
/// of them at once before it reaps them: a pool's start-up handshake and stop, with no work, no mailbox
/// and no arena.
/// Throws BadArgument for zero members, std::runtime_error when a child dies.
/// With a `server`, the server forks them, asked for all at once as a pool asks for its workers
/// (ForkServer::spawn_each): the same team, from a process that is small.
BareTeamTimes time_bare_team(std::size_t members, ForkServer* server = nullptr);
/// std::thread creation + join of a thread that does nothing, `threads` per sample.
Summary measure_thread_start(std::size_t repeats, std::size_t threads);
/// One byte from one process to another and back over two pipes, timed inside the first process;
/// seconds per round trip. `cpus` pins the two processes (same CPU twice: they share one core).
Summary measure_process_round_trip(std::size_t repeats, std::size_t round_trips, CpuPair cpus = {});
/// How the shared-word round trips wait for the other side.
enum class WordWait {
  spin,   ///< polling the word (yielding the CPU if both processes share one): what a mailbox does awake
  futex,  ///< asleep in FUTEX_WAIT on the word until the other side's FUTEX_WAKE: a wake-up each way
};
/// A counter in shared memory passed from one process to another and back (the other side waits for
/// an odd value and answers with the next even one), timed inside the first process; seconds per
/// round trip. No data moves but one cache line: the floor under a message between processes that
/// share memory, awake (spin) or asleep (futex). `cpus` pins the two processes.
Summary measure_shared_word_round_trip(std::size_t repeats, std::size_t round_trips, WordWait wait, CpuPair cpus = {});
/// What waking a process costs the process that wakes it: the FUTEX_WAKE of a process asleep on a
/// shared word, pinned to the other CPU of `cpus`, timed around the call in the waker (which then
/// waits for the answer, untimed). Seconds per wake-up; only calls that found it asleep count. On a
/// machine where an idle core halts, this is where a virtual machine's price for an interrupt to
/// another CPU shows: the waker pays it before it can go on. A pool's master pays the like for each
/// worker that slept (its doorbell is a pipe, and a write to it wakes the reader the same way).
Summary measure_wake_of_sleeper(std::size_t repeats, std::size_t wakes, CpuPair cpus = {});
/// How long the waker waits before each wake-up, untimed: long enough for the sleeper to be in the
/// kernel and its core to have halted.
inline constexpr std::chrono::microseconds kSleeperPause{500};
/// A message from this thread to another and back, with a mutex and a condition variable.
Summary measure_thread_round_trip(std::size_t repeats, std::size_t round_trips);
/// A child process sends `bytes` to this one by `path` (a pipe: written in by the sender, read out by
/// the receiver; shared memory: memcpy'd by the sender into a mapping both share, then one byte of
/// notice); seconds per transfer, and every transfer is checked to have arrived (a tag at both ends),
/// else std::runtime_error.
Summary measure_transfer(DataPath path, std::size_t bytes, std::size_t repeats);
/// Writes one byte per page of `bytes`, first while a forked child shares the pages, then again.
PageWriteCosts measure_page_writes_after_fork(std::size_t bytes, std::size_t repeats);
/// A forked child writes into a private and a shared array, then a thread writes into the private one;
/// returns what everyone read.
CopyOnWriteDemo show_copy_on_write();
/// A child forked from this process reads one byte of each page of `bytes` this process wrote, `repeats`
/// times (a new child each), then this process reads them again.
PageReadCosts measure_page_reads_after_fork(std::size_t bytes, std::size_t repeats);

/// Two CPUs on two different physical cores this process may use, if it may use two.
std::optional<CpuPair> cpus_on_two_cores(const Topology& topology);

}  // namespace mpdemo
