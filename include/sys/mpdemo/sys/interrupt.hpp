// Interrupts and deadlines: turn SIGINT and SIGTERM (or a deadline passing) into an exception, so
// that the stack unwinds and every RAII owner (workers, shared memory) cleans up, instead of the
// process dying half-way -- and so that it happens within milliseconds, wherever the work is.
//
// Long loops do not poll a clock: they call throw_if_interrupted() between small blocks of work
// (for_each_block, and every map's kernel every kCheckBlockElements elements), which costs one
// relaxed atomic load when nothing is pending. A pool waiting for its workers wakes on a self-pipe.
#pragma once

#include "mpdemo/sys/errors.hpp"
#include "mpdemo/sys/huge_pages.hpp"

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <type_traits>
#include <vector>

namespace mpdemo {

/// Thrown by a pool that was waiting for its workers, or by throw_if_interrupted(), after SIGINT or
/// SIGTERM arrived while an InterruptGuard was installed.
class Interrupted : public Error {
 public:
  explicit Interrupted(int signal_number);
  int signal_number() const noexcept { return signal_; }
  /// The conventional exit status for death by this signal: 128 + signal (130 for SIGINT).
  int exit_status() const noexcept { return 128 + signal_; }

 private:
  int signal_;
};

/// Thrown by throw_if_interrupted() (and so by every map, the loop's included) once the deadline of
/// a ScopedDeadline has passed.
class DeadlineExceeded : public Error {
 public:
  DeadlineExceeded();
};

/// While alive, SIGINT and SIGTERM no longer kill the process: they are recorded, and wake any
/// ProcessPool blocked waiting for its workers (through a self-pipe), which then throws Interrupted.
/// One per process at a time (a second throws std::logic_error); install it in main().
class InterruptGuard {
 public:
  InterruptGuard();
  ~InterruptGuard();
  InterruptGuard(const InterruptGuard&) = delete;
  InterruptGuard& operator=(const InterruptGuard&) = delete;
};

/// While alive, work that checks throw_if_interrupted() throws DeadlineExceeded once `deadline` has
/// passed: a time budget that bounds a loop, a thread pool's map and a process pool's map alike (the
/// process pool kills the workers still busy, as on an interrupt). One at a time per process (a
/// second throws std::logic_error). A helper thread sleeps until the deadline and raises the flag.
class ScopedDeadline {
 public:
  explicit ScopedDeadline(std::chrono::steady_clock::time_point deadline);
  ~ScopedDeadline();
  ScopedDeadline(const ScopedDeadline&) = delete;
  ScopedDeadline& operator=(const ScopedDeadline&) = delete;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;  ///< the helper thread and what wakes it early
};

/// The deadline of the live ScopedDeadline, if any.
std::optional<std::chrono::steady_clock::time_point> current_deadline() noexcept;

/// The signal that arrived under the guard, or 0.
int pending_interrupt() noexcept;
/// A descriptor that becomes readable when a signal arrives under the guard; -1 without a guard.
int interrupt_wake_fd() noexcept;

namespace detail {
void throw_pending_stop();  // the slow path of throw_if_interrupted
/// Nonzero once an interrupt arrived or the deadline passed: one relaxed load, for hot loops.
extern std::atomic<int> g_stop_requested;
}  // namespace detail

/// Throws Interrupted if a signal arrived under the guard, DeadlineExceeded if the deadline passed.
/// Costs one relaxed atomic load when neither happened: cheap enough for inner loops' outer blocks.
inline void throw_if_interrupted() {
  if (detail::g_stop_requested.load(std::memory_order_relaxed) != 0) detail::throw_pending_stop();
}

/// Forgets a signal that arrived (and drains the wake-up descriptor): an interrupt stays raised, and
/// every pool wait throws Interrupted, until this is called. For programs that recover from Ctrl-C.
void clear_interrupt() noexcept;

/// How many elements every map's kernel handles between two interrupt checks: small enough that a
/// check comes every microsecond or so of memory-bound work (and under a second at sweep's heaviest
/// --work), large enough that the check is lost in the noise (measured: 0.99-1.00x of a plain loop).
/// The master's own loops (for_each_block) check every 2^16 elements by default.
inline constexpr std::size_t kCheckBlockElements = 512;

/// Calls fn(begin, end) for consecutive blocks covering [0, n), checking for an interrupt (or a
/// passed deadline) between blocks: how the master's own long loops (generating data, copying,
/// verifying, first-touching a new buffer) stay answerable to Ctrl-C.
template <class Fn>
void for_each_block(std::size_t n, Fn&& fn, std::size_t block = std::size_t{1} << 16) {
  for (std::size_t begin = 0; begin < n; begin += block) {
    throw_if_interrupted();
    fn(begin, begin + block < n ? begin + block : n);
  }
  throw_if_interrupted();
}

/// std::vector<T>(n), but its pages are first-touched block by block with interrupt checks between
/// them: on a VM where a fresh page costs microseconds, zeroing 10^8 doubles in one go takes seconds
/// during which Ctrl-C would go unanswered. In huge pages where the system offers them, as the pools'
/// arena is: a fresh result costs the loop and the pools the same kind of page faults.
/// values.reserve(n), in huge pages where the system offers them (ask_for_huge_pages). A
/// std::vector<bool> packs its bits behind no data(): it is only reserved.
template <class T>
void reserve_asking_for_huge_pages(std::vector<T>& values, std::size_t n) {
  values.reserve(n);
  if constexpr (!std::is_same_v<T, bool>) ask_for_huge_pages(values.data(), n * sizeof(T));
}

template <class T>
std::vector<T> interruptible_vector(std::size_t n) {
  std::vector<T> values;
  reserve_asking_for_huge_pages(values, n);
  for_each_block(n, [&](std::size_t, std::size_t end) { values.resize(end); });
  return values;
}

/// memcpy, in blocks with interrupt checks between them.
inline void interruptible_copy(void* to, const void* from, std::size_t bytes) {
  for_each_block(
      bytes,
      [&](std::size_t begin, std::size_t end) {
        std::memcpy(static_cast<char*>(to) + begin, static_cast<const char*>(from) + begin, end - begin);
      },
      std::size_t{1} << 20);
}

/// std::fill, in blocks with interrupt checks between them.
template <class T>
void interruptible_fill(std::span<T> values, const T& value) {
  for_each_block(values.size(), [&](std::size_t begin, std::size_t end) {
    for (std::size_t i = begin; i < end; ++i) values[i] = value;
  });
}

namespace detail {
/// In a child just forked: forget the parent's interrupt state and deadline (the child has neither
/// its signal handlers' purpose nor its helper thread). Async-signal-safe.
void reset_interrupt_state_after_fork() noexcept;
}  // namespace detail

}  // namespace mpdemo
