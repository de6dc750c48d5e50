// PoolOptions: what ProcessPool and ThreadPool are both configured with, as Python's Pool(processes,
// initializer, initargs, maxtasksperchild).
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>

namespace mpdemo {

class Trace;

struct PoolOptions {
  std::size_t workers = 0;  ///< 0: the physical cores this process may use (less one with caller_computes)
  bool pin_workers = true;  ///< pin worker w to physical core w (see Topology)
  /// How long the pool's waits poll for the next message before they sleep (see src/pool/spin_wait.hpp).
  /// 0: always sleep at once, paying a wake-up for every message.
  std::chrono::microseconds spin{kDefaultSpin};
  static constexpr std::chrono::microseconds kDefaultSpin{50};
  /// How long a worker's spin for its next task may grow (the master's waits keep `spin`). When a
  /// wait for a task outlasted the spin but ended within this, measured from its start (a program
  /// mapping again and again with work of its own between maps), the next wait spins that long and a
  /// quarter more, at most this, where each such gap would cost a wake-up (tens of microseconds on a
  /// VM); one longer wait (a pause between bursts of maps) keeps that, a second in a row brings it
  /// back to `spin` (see detail/idle_spin.hpp). The price: a core kept busy up to this long after
  /// a map, which the program's own work between maps may want when workers share its cores. At or
  /// below `spin`, or with `spin` 0, the spin stays `spin`. The default, 1 ms, spans what a program
  /// does between two maps of 10^6 doubles when it writes and reads both arrays, as the benchmark
  /// does (0.5-0.7 ms on the project's VM, a quarter more to spin through); libgomp's threads stay
  /// awake through gaps of 5 ms there. (2 ms was tried: in six benchmark runs of eleven, OpenMP's
  /// unbound second thread was then left behind its master on one vCPU for milliseconds.)
  std::chrono::microseconds spin_limit{kDefaultSpinLimit};
  static constexpr std::chrono::microseconds kDefaultSpinLimit{1000};
  /// What a spinning wait (see spin) does between two looks. `pause`: keeps its CPU and tells the
  /// processor it spins, no system call of its own (with Control::pipes each look is still a poll()),
  /// so a message is seen within a fraction of a microsecond, as OpenMP's threads spin on their cores.
  /// `yield`: hands its CPU over between looks (sched_yield, ~1 us a look on a VM), so a waiter that
  /// shares a CPU with the one it waits for lets it run. `automatic` (the default): `pause` when the
  /// workers and the caller (who computes or waits) fit the CPUs this process may use, one each, and
  /// pinned workers each have a core of their own; `yield` when not (two workers and a master on two
  /// CPUs), where pausing would keep the core the awaited answer needs (see spin_style_for). Each pool
  /// decides for itself: pools alive at once, or other busy programs, may still meet a paused spin on
  /// a CPU they want, for as long as the spin lasts (spin_limit at most) or the scheduler lets it.
  enum class SpinStyle : unsigned char { automatic, yield, pause };
  SpinStyle spin_style = SpinStyle::automatic;
  /// Python's initializer(*initargs): run once in each worker (process or thread) when it starts,
  /// replacements included, before its first task. Bind its arguments in a lambda. A process pool's
  /// workers get their copy by fork, so it may capture anything. If it throws, the constructor (or
  /// the wait that replaces a worker) throws WorkerError with its message, where Python's Pool would
  /// start replacements forever.
  std::function<void()> initializer{};
  /// Python's maxtasksperchild: a worker is ended and replaced after this many tasks (a map's chunk,
  /// an apply: one task each); it is handed no more than that, so no task is lost or run twice.
  /// 0: workers live as long as the pool.
  std::size_t maxtasksperchild = 0;
  /// Where the pool records its timeline: each worker's start, every chunk (when, where, on which
  /// CPU), each map's phases and the stop (see mpdemo/sys/trace.hpp). Null: nothing is recorded.
  /// Must outlive the pool.
  Trace* trace = nullptr;
  /// The thread that calls map or map_into computes a share itself while the workers compute theirs,
  /// as OpenMP's primary thread does in a parallel region, instead of only waiting for them, as
  /// Python's Pool's caller does. Its share is a region of its own (it then helps the workers with
  /// theirs: chunks not yet handed out, then, in a ProcessPool, a task a worker holds and has not
  /// begun), so a team of workers + 1 runs the map, and the default is one worker fewer: one per
  /// physical core with the caller's. Every other call (apply, the async calls, imap, the pipe data
  /// path, serialized elements) still runs in the workers alone. What it costs: the caller's share
  /// has no process boundary around it, so a crash in fn there is the caller's crash (an exception is
  /// still a WorkerError, naming worker size() and the caller's pid); an interrupt stops it within a
  /// block of elements, as it stops the sequential loop.
  bool caller_computes = false;
};

/// How many workers a pool asked for `workers` starts: `workers`, or for 0 one per physical core this
/// process may use, less the caller's own core when it computes a share (at least one).
std::size_t worker_count(std::size_t workers, bool caller_computes);
/// The same for a pool made with `options`.
inline std::size_t worker_count(const PoolOptions& options) {
  return worker_count(options.workers, options.caller_computes);
}

/// How a pool of `workers` (the count it starts) spins, asked for `style`, where this process may use
/// `cpus` CPUs (0: not known) and the workers are pinned round-robin to `pin_cores` cores (0: not
/// pinned): `style` itself unless automatic; then `pause` if every member has a CPU of its own,
/// workers + 1 (the caller) <= cpus and no two workers pinned to one core (workers <= pin_cores);
/// `yield` otherwise.
PoolOptions::SpinStyle spin_style_for(PoolOptions::SpinStyle style, std::size_t workers, std::size_t cpus,
                                      std::size_t pin_cores = 0) noexcept;
/// The same for a pool made with `options` that starts `workers`, on this machine
/// (Topology::allowed_cpus, and Topology::worker_cpus if it pins its workers).
PoolOptions::SpinStyle spin_style_for(const PoolOptions& options, std::size_t workers);

}  // namespace mpdemo
