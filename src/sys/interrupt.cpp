#include "mpdemo/sys/interrupt.hpp"

#include "mpdemo/sys/child_process.hpp"
#include "mpdemo/sys/detail/system_call.hpp"
#include "mpdemo/sys/errors.hpp"
#include "mpdemo/sys/fd.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>
#include <atomic>
#include <condition_variable>
#include <csignal>
#include <mutex>
#include <thread>

namespace mpdemo {

namespace detail {
std::atomic<int> g_stop_requested{0};
}  // namespace detail

namespace {
std::atomic<int> g_pending{0};
std::atomic<bool> g_deadline_passed{false};
std::atomic<long long> g_deadline_ns{0};  // steady_clock ticks since its epoch; 0: none
std::atomic<int> g_wake_read{-1};
std::atomic<int> g_wake_write{-1};
std::atomic<bool> g_installed{false};
std::atomic<bool> g_deadline_installed{false};
struct sigaction g_previous_int;
struct sigaction g_previous_term;

void recompute_stop_flag() noexcept {
  detail::g_stop_requested.store(g_pending.load() != 0 || g_deadline_passed.load() ? 1 : 0);
}

extern "C" void on_interrupt(int signal_number) {
  const int saved_errno = errno;
  int expected = 0;
  g_pending.compare_exchange_strong(expected, signal_number);
  detail::g_stop_requested.store(1);
  const char byte = 1;
  // Non-blocking: if the pipe is full a wake-up is already pending, which is all we need.
  [[maybe_unused]] const auto ignored = ::write(g_wake_write.load(), &byte, 1);
  errno = saved_errno;
}
}  // namespace

Interrupted::Interrupted(int signal_number)
    : Error(fmt::format("interrupted by {}", signal_name(signal_number))), signal_(signal_number) {}

DeadlineExceeded::DeadlineExceeded() : Error("the time budget ran out (deadline passed)") {}

InterruptGuard::InterruptGuard() {
  if (g_installed.exchange(true)) throw std::logic_error("only one InterruptGuard may be installed at a time");
  try {
    Pipe wake = Pipe::create(O_NONBLOCK);
    g_pending = 0;
    recompute_stop_flag();
    g_wake_read = wake.read_end.release();
    g_wake_write = wake.write_end.release();
    struct sigaction action {};
    action.sa_handler = on_interrupt;
    sigemptyset(&action.sa_mask);
    action.sa_flags = 0;  // no SA_RESTART: a blocking call returns EINTR and its caller looks again
    if (sigaction(SIGINT, &action, &g_previous_int) != 0) throw_errno("install the SIGINT handler");
    if (sigaction(SIGTERM, &action, &g_previous_term) != 0) {
      const int error = errno;
      sigaction(SIGINT, &g_previous_int, nullptr);
      errno = error;
      throw_errno("install the SIGTERM handler");
    }
  } catch (...) {
    ::close(g_wake_read.exchange(-1));
    ::close(g_wake_write.exchange(-1));
    g_installed = false;
    throw;
  }
}

InterruptGuard::~InterruptGuard() {
  sigaction(SIGINT, &g_previous_int, nullptr);
  sigaction(SIGTERM, &g_previous_term, nullptr);
  ::close(g_wake_read.exchange(-1));
  ::close(g_wake_write.exchange(-1));
  g_installed = false;
}

struct ScopedDeadline::Impl {
  std::mutex mutex;
  std::condition_variable cancelled;
  bool done = false;
  std::thread timer;
};

ScopedDeadline::ScopedDeadline(std::chrono::steady_clock::time_point deadline) : impl_(std::make_unique<Impl>()) {
  if (g_deadline_installed.exchange(true)) throw std::logic_error("only one ScopedDeadline may be alive at a time");
  g_deadline_passed = false;
  g_deadline_ns = deadline.time_since_epoch().count();
  recompute_stop_flag();
  // A sleeping thread, not a clock read in every check: the hot loops then pay one load, not a
  // clock_gettime (a system call on some VMs).
  impl_->timer = std::thread([impl = impl_.get(), deadline] {
    std::unique_lock lock(impl->mutex);
    if (!impl->cancelled.wait_until(lock, deadline, [impl] { return impl->done; })) {
      g_deadline_passed = true;
      recompute_stop_flag();
      const char byte = 1;
      [[maybe_unused]] const auto ignored = ::write(g_wake_write.load(), &byte, 1);
    }
  });
}

ScopedDeadline::~ScopedDeadline() {
  {
    const std::lock_guard lock(impl_->mutex);
    impl_->done = true;
  }
  impl_->cancelled.notify_one();
  impl_->timer.join();
  g_deadline_ns = 0;
  g_deadline_passed = false;
  recompute_stop_flag();
  g_deadline_installed = false;
}

std::optional<std::chrono::steady_clock::time_point> current_deadline() noexcept {
  const long long ticks = g_deadline_ns.load();
  if (ticks == 0) return std::nullopt;
  return std::chrono::steady_clock::time_point(std::chrono::steady_clock::duration(ticks));
}

int pending_interrupt() noexcept { return g_pending.load(); }
int interrupt_wake_fd() noexcept { return g_wake_read.load(); }

void clear_interrupt() noexcept {
  g_pending = 0;
  recompute_stop_flag();
  char drained[64];
  if (const int fd = g_wake_read.load(); fd >= 0) {
    while (::read(fd, drained, sizeof(drained)) > 0) {
    }
  }
}

namespace detail {

void throw_pending_stop() {
  if (const int signal_number = g_pending.load(); signal_number != 0) throw Interrupted(signal_number);
  if (g_deadline_passed.load()) throw DeadlineExceeded();
}

void reset_interrupt_state_after_fork() noexcept {
  g_pending = 0;
  g_deadline_passed = false;
  g_deadline_ns = 0;
  g_stop_requested = 0;
  g_wake_read = -1;
  g_wake_write = -1;
}

}  // namespace detail

}  // namespace mpdemo
