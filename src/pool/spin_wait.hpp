// Spin, then block: the waiting policy of mpdemo's pools (and of OpenMP runtimes, GOMP_SPINCOUNT).
//
// On this kind of VM an idle core halts, and waking it for a message costs tens of microseconds,
// twenty times a pipe round trip between two busy cores. So a waiter first polls without blocking
// for a short, bounded time, yielding the core between polls (a worker sharing it must not starve),
// and only then sleeps in poll(). Back-to-back maps then cost a round trip, not two wake-ups;
// an idle pool still sleeps. An idle worker's spin adapts (IdleSpin) to a program that maps again
// and again with work of its own between maps. Only system calls: safe in a child forked from a
// threaded master.
#pragma once

#include "mpdemo/pool/detail/idle_spin.hpp"
#include "mpdemo/sys/trace.hpp"

#include <poll.h>
#include <sched.h>
#include <time.h>
#include <cerrno>
#include <chrono>

namespace mpdemo::detail {

/// poll(fds, n, timeout_ms) (-1: no timeout), after spinning up to `spin` with non-blocking polls.
/// Returns what poll returns (-1 with errno EINTR when a signal interrupted the blocking part).
inline int poll_after_spinning(pollfd* fds, nfds_t n, std::chrono::microseconds spin, int timeout_ms = -1) noexcept {
  if (spin.count() > 0) {
    const long long deadline = monotonic_ns() + spin.count() * 1000;
    do {
      const int ready = ::poll(fds, n, 0);
      if (ready != 0) return ready;
      ::sched_yield();
    } while (monotonic_ns() < deadline);
  }
  return ::poll(fds, n, timeout_ms);
}

/// Spins (yielding) until `done()` or `spin` has passed; returns done(). The threads' twin of
/// poll_after_spinning: the caller blocks on its condition variable if this returns false.
template <class Predicate>
bool spin_until(Predicate done, std::chrono::microseconds spin) noexcept {
  if (spin.count() <= 0) return done();
  const long long deadline = monotonic_ns() + spin.count() * 1000;
  while (!done()) {
    if (monotonic_ns() >= deadline) return false;
    ::sched_yield();
  }
  return true;
}

}  // namespace mpdemo::detail
