#include "mpdemo/interrupt.hpp"

#include "mpdemo/child_process.hpp"
#include "mpdemo/errors.hpp"
#include "mpdemo/fd.hpp"

#include <atomic>
#include <csignal>
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

namespace mpdemo {

namespace {
std::atomic<int> g_pending{0};
std::atomic<int> g_wake_read{-1};
std::atomic<int> g_wake_write{-1};
std::atomic<bool> g_installed{false};
struct sigaction g_previous_int;
struct sigaction g_previous_term;

extern "C" void on_interrupt(int signal_number) {
  const int saved_errno = errno;
  int expected = 0;
  g_pending.compare_exchange_strong(expected, signal_number);
  const char byte = 1;
  // Non-blocking: if the pipe is full a wake-up is already pending, which is all we need.
  [[maybe_unused]] const auto ignored = ::write(g_wake_write.load(), &byte, 1);
  errno = saved_errno;
}
}  // namespace

Interrupted::Interrupted(int signal_number)
    : std::runtime_error(fmt::format("interrupted by {}", signal_name(signal_number))), signal_(signal_number) {}

InterruptGuard::InterruptGuard() {
  if (g_installed.exchange(true)) throw std::logic_error("only one InterruptGuard may be installed at a time");
  try {
    Pipe wake = Pipe::create(O_NONBLOCK);
    g_pending = 0;
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

int pending_interrupt() noexcept { return g_pending.load(); }
int interrupt_wake_fd() noexcept { return g_wake_read.load(); }

void clear_interrupt() noexcept {
  g_pending = 0;
  char drained[64];
  if (const int fd = g_wake_read.load(); fd >= 0) {
    while (::read(fd, drained, sizeof(drained)) > 0) {
    }
  }
}

void throw_if_interrupted() {
  if (const int signal_number = g_pending.load(); signal_number != 0) throw Interrupted(signal_number);
}

}  // namespace mpdemo
