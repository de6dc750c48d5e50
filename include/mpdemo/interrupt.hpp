// Interrupts: turn SIGINT and SIGTERM into an exception, so that the stack unwinds and every RAII
// owner (workers, shared memory) cleans up, instead of the process dying half-way.
#pragma once

#include <stdexcept>

namespace mpdemo {

/// Thrown by a pool that was waiting for its workers, or by throw_if_interrupted(), after SIGINT or
/// SIGTERM arrived while an InterruptGuard was installed.
class Interrupted : public std::runtime_error {
 public:
  explicit Interrupted(int signal_number);
  int signal_number() const noexcept { return signal_; }
  /// The conventional exit status for death by this signal: 128 + signal (130 for SIGINT).
  int exit_status() const noexcept { return 128 + signal_; }

 private:
  int signal_;
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

/// The signal that arrived under the guard, or 0.
int pending_interrupt() noexcept;
/// A descriptor that becomes readable when a signal arrives under the guard; -1 without a guard.
int interrupt_wake_fd() noexcept;
/// Throws Interrupted if a signal arrived under the guard.
void throw_if_interrupted();
/// Forgets a signal that arrived (and drains the wake-up descriptor): an interrupt stays raised, and
/// every pool wait throws Interrupted, until this is called. For programs that recover from Ctrl-C.
void clear_interrupt() noexcept;

}  // namespace mpdemo
