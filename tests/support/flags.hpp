// Flags in memory every process of a pool shares (a SharedArray from the pool's arena, mapped before
// any fork): raised once by one worker, process or thread, seen by every other. For tests that hold a
// worker at a chosen point until another has done something.
#pragma once

#include <atomic>
#include <chrono>
#include <thread>

namespace mpdemo::testing {

inline void raise_flag(long* cell) { std::atomic_ref<long>(*cell).store(1); }

/// Raises `cell` and says whether this call was the one that raised it: what happens once, whichever
/// process or thread comes first.
inline bool raise_flag_first(long* cell) { return std::atomic_ref<long>(*cell).exchange(1) == 0; }

/// Waits until `cell` is raised, `limit` at most, so that a test that fails never hangs. Sleeps in
/// short steps, no locks: safe in a forked worker.
inline void wait_for_flag(long* cell, std::chrono::seconds limit) {
  const auto give_up = std::chrono::steady_clock::now() + limit;
  while (std::atomic_ref<long>(*cell).load() == 0 && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
}

}  // namespace mpdemo::testing
