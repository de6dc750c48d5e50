#include "mpdemo/sys/fd.hpp"

#include "mpdemo/sys/detail/system_call.hpp"
#include "mpdemo/sys/errors.hpp"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>
#include <algorithm>
#include <csignal>
#include <cstdint>
#include <ctime>

namespace mpdemo {

FileDescriptor& FileDescriptor::operator=(FileDescriptor&& other) noexcept {
  if (this != &other) {
    reset();
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

void FileDescriptor::reset() noexcept {
  // Never retry close on EINTR: on Linux the descriptor is released anyway, and a retry could close a
  // descriptor another thread has just been given.
  if (fd_ >= 0) ::close(std::exchange(fd_, -1));
}

Pipe Pipe::create(int flags) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC | flags) != 0) throw_errno_with_limits("create a pipe");
  return Pipe{FileDescriptor::adopt(fds[0]), FileDescriptor::adopt(fds[1])};
}

bool write_whole(int fd, const void* data, std::size_t size) noexcept {
  const auto* bytes = static_cast<const std::byte*>(data);
  while (size > 0) {
    const ssize_t written = retry_on_eintr([&] { return ::write(fd, bytes, size); });
    if (written < 0) return false;
    bytes += written;
    size -= static_cast<std::size_t>(written);
  }
  return true;
}

ReadOutcome read_whole(int fd, void* data, std::size_t size) noexcept {
  auto* bytes = static_cast<std::byte*>(data);
  for (std::size_t done = 0; done < size;) {
    const ssize_t got = retry_on_eintr([&] { return ::read(fd, bytes + done, size - done); });
    if (got < 0) return ReadOutcome::failed;
    if (got == 0) return done == 0 ? ReadOutcome::end_of_file : ReadOutcome::torn;
    done += static_cast<std::size_t>(got);
  }
  return ReadOutcome::complete;
}

void write_all(int fd, const void* data, std::size_t size, std::string_view doing) {
  if (!write_whole(fd, data, size)) throw_errno(doing);
}

bool read_exact(int fd, void* data, std::size_t size) {
  switch (read_whole(fd, data, size)) {
    case ReadOutcome::complete:
      return true;
    case ReadOutcome::end_of_file:
      return false;
    case ReadOutcome::torn:
      throw std::system_error(EPIPE, std::system_category(), "read from a pipe: end of file mid-message");
    case ReadOutcome::failed:
      break;
  }
  throw_errno("read from a pipe");
}

namespace {
sigset_t sigpipe_set() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  return set;
}
}  // namespace

namespace {
// Blocks held by this thread: only the outermost one makes system calls, so a call that blocks
// SIGPIPE around its parts (submit, then wait) pays for it once.
thread_local int t_sigpipe_blocks = 0;
}  // namespace

ScopedSigpipeBlock::ScopedSigpipeBlock() {
  if (t_sigpipe_blocks++ > 0) {
    was_blocked_ = true;  // the outer block restores the mask
    return;
  }
  const sigset_t set = sigpipe_set();
  sigset_t old;
  const int error = pthread_sigmask(SIG_BLOCK, &set, &old);
  if (error != 0) {
    --t_sigpipe_blocks;
    check_error_number(error, "block SIGPIPE");
  }
  was_blocked_ = sigismember(&old, SIGPIPE) == 1;
}

ScopedSigpipeBlock::~ScopedSigpipeBlock() {
  const bool outermost = --t_sigpipe_blocks == 0;
  if (was_blocked_ || !outermost) return;
  const sigset_t set = sigpipe_set();
  // A SIGPIPE raised by a failed write is pending on this thread: take it before unblocking, or it
  // would be delivered (and kill the process) the moment the mask is restored.
  const timespec no_wait{0, 0};
  while (sigtimedwait(&set, nullptr, &no_wait) == SIGPIPE) {
  }
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
}

Readiness wait_readable(int fd, std::chrono::steady_clock::time_point deadline) noexcept {
  for (;;) {
    // Rounded up: poll's timeout is in milliseconds, and a wait must not end before its deadline.
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd readable{fd, POLLIN, 0};
    const int ready = ::poll(&readable, 1, static_cast<int>(std::max<std::int64_t>(left.count(), 0)));
    if (ready > 0) return Readiness::readable;
    if (ready < 0 && errno != EINTR) return Readiness::failed;
    if (ready == 0 && left.count() <= 0) return Readiness::timed_out;
  }
}

}  // namespace mpdemo
