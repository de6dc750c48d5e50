// PoolOptions: what ProcessPool and ThreadPool are both configured with, as Python's Pool(processes,
// initializer, initargs, maxtasksperchild).
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>

namespace mpdemo {

class Trace;

struct PoolOptions {
  std::size_t workers = 0;  ///< 0: the physical cores this process may use
  bool pin_workers = true;  ///< pin worker w to physical core w (see Topology)
  /// How long the pool's waits poll for the next message before they sleep (see src/pool/spin_wait.hpp).
  /// 0: always sleep at once, paying a wake-up for every message.
  std::chrono::microseconds spin{kDefaultSpin};
  static constexpr std::chrono::microseconds kDefaultSpin{50};
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
};

}  // namespace mpdemo
