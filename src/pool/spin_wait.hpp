// Spin, then block: the waiting policy of mpdemo's pools (and of OpenMP runtimes, GOMP_SPINCOUNT).
//
// On this kind of VM an idle core halts, and waking it for a message costs tens of microseconds,
// twenty times a pipe round trip between two busy cores. So a waiter first polls without blocking
// for a short, bounded time, and only then sleeps in poll(). Between two looks it either yields its
// core (a worker sharing it must not starve) or, where every member of the team has a CPU of its own,
// pauses on it (PoolOptions::SpinStyle). Back-to-back maps then cost a round trip, not two wake-ups;
// an idle pool still sleeps. An idle worker's spin adapts (IdleSpin) to a program that maps again
// and again with work of its own between maps. Only system calls: safe in a child forked from a
// threaded master.
#pragma once

#include "mpdemo/pool/detail/idle_spin.hpp"
#include "mpdemo/pool/pool_options.hpp"
#include "mpdemo/sys/trace.hpp"

#include <poll.h>
#include <sched.h>
#include <time.h>
#include <atomic>
#include <cerrno>
#include <chrono>

namespace mpdemo::detail {

using SpinStyle = PoolOptions::SpinStyle;

/// The time between two looks of a spinning wait: the CPU handed over (sched_yield), or kept with the
/// processor told it spins. A handful of pauses: a fraction of a microsecond (a pause is tens of
/// cycles on AMD's recent cores, ~140 on Intel's since Skylake), short against a message's way
/// between two cores, long enough that the looks do not crowd the line the other side writes.
inline void between_looks(SpinStyle style) noexcept {
  if (style != SpinStyle::pause) {
    ::sched_yield();
    return;
  }
  for (int i = 0; i < 8; ++i) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield" ::: "memory");
#else
    std::atomic_signal_fence(std::memory_order_seq_cst);
#endif
  }
}

/// poll(fds, n, timeout_ms) (-1: no timeout), after spinning up to `spin` with non-blocking polls,
/// `style` between them. Returns what poll returns (-1 with errno EINTR when a signal interrupted the
/// blocking part).
inline int poll_after_spinning(pollfd* fds, nfds_t n, std::chrono::microseconds spin, SpinStyle style,
                               int timeout_ms = -1) noexcept {
  if (spin.count() > 0) {
    const long long deadline = monotonic_ns() + spin.count() * 1000;
    do {
      const int ready = ::poll(fds, n, 0);
      if (ready != 0) return ready;
      between_looks(style);
    } while (monotonic_ns() < deadline);
  }
  return ::poll(fds, n, timeout_ms);
}

/// Spins (`style` between looks) until `done()` or `spin` has passed; returns done(). The threads'
/// twin of poll_after_spinning: the caller blocks on its condition variable if this returns false.
template <class Predicate>
bool spin_until(Predicate done, std::chrono::microseconds spin, SpinStyle style) noexcept {
  if (spin.count() <= 0) return done();
  const long long deadline = monotonic_ns() + spin.count() * 1000;
  while (!done()) {
    if (monotonic_ns() >= deadline) return false;
    between_looks(style);
  }
  return true;
}

}  // namespace mpdemo::detail
