#include "mpdemo/sys/child_process.hpp"

#include "mpdemo/sys/detail/system_call.hpp"
#include "mpdemo/sys/errors.hpp"
#include "mpdemo/sys/fd.hpp"

#include <fmt/format.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <algorithm>
#include <csignal>
#include <cstring>
#include <ctime>
#include <stdexcept>

namespace mpdemo {

namespace {
// Where there is no pidfd to poll (a kernel before 5.3, or a seccomp filter that refuses pidfd_open):
// asks waitpid, without blocking, at growing intervals (50 us to 10 ms) until `pid` ends or `deadline`
// passes, so that a child that ends at once is not kept waiting, nor one that takes its time asked
// for thousands of times. Returns whether it ended (reaped, its status in `status`), or is not ours.
bool reaped_by(pid_t pid, std::chrono::steady_clock::time_point deadline, int& status) noexcept {
  for (std::chrono::nanoseconds pause = std::chrono::microseconds(50);;
       pause = std::min<std::chrono::nanoseconds>(2 * pause, std::chrono::milliseconds(10))) {
    if (retry_on_eintr([&] { return ::waitpid(pid, &status, WNOHANG); }) != 0) return true;
    const auto left = deadline - std::chrono::steady_clock::now();
    if (left <= std::chrono::steady_clock::duration::zero()) return false;
    const auto nap = std::min<std::chrono::nanoseconds>(pause, left);
    const timespec duration{0, static_cast<long>(nap.count())};
    ::nanosleep(&duration, nullptr);  // woken early by a signal: asked again sooner, no harm
  }
}
}  // namespace

bool ExitStatus::exited() const noexcept { return WIFEXITED(raw_); }
int ExitStatus::exit_code() const noexcept { return WEXITSTATUS(raw_); }
bool ExitStatus::killed() const noexcept { return WIFSIGNALED(raw_); }
int ExitStatus::signal() const noexcept { return WTERMSIG(raw_); }

std::string signal_name(int signal_number) {
  if (const char* abbreviation = sigabbrev_np(signal_number)) return fmt::format("SIG{}", abbreviation);
  return fmt::format("signal {}", signal_number);
}

std::string ExitStatus::str() const {
  if (!started_) return "never started";
  if (exited()) return fmt::format("exited with status {}", exit_code());
  if (killed()) {
    return fmt::format("killed by signal {} ({}){}", signal(), signal_name(signal()),
                       WCOREDUMP(raw_) ? ", core dumped" : "");
  }
  return fmt::format("ended with wait status {:#x}", raw_);
}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    kill_and_wait();
    pid_ = std::exchange(other.pid_, -1);
  }
  return *this;
}

bool ChildProcess::send_signal(int signal_number) const {
  if (pid_ <= 0) return false;
  if (::kill(pid_, signal_number) == 0) return true;
  if (errno == ESRCH) return false;
  throw_errno(fmt::format("send {} to process {}", signal_name(signal_number), pid_));
}

ExitStatus ChildProcess::wait() {
  if (pid_ <= 0) throw std::logic_error("ChildProcess::wait: no child (already reaped, or empty)");
  int status = 0;
  if (retry_on_eintr([&] { return ::waitpid(pid_, &status, 0); }) < 0) {
    throw_errno(fmt::format("wait for process {}", pid_));
  }
  pid_ = -1;
  return ExitStatus(status);
}

ExitStatus ChildProcess::wait_or_kill(std::chrono::milliseconds timeout) noexcept {
  if (pid_ <= 0)
    return ExitStatus::never_started();  // never kill(-1) or kill(0): that would reach far more than a child
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  // A pidfd turns "has it ended yet?" into an event we can poll with a timeout (it is readable once
  // the process ends), instead of a loop of sleeps and WNOHANG checks.
  const FileDescriptor pidfd = FileDescriptor::adopt(static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0)));
  if (pidfd) {
    if (wait_readable(pidfd.get(), deadline) != Readiness::readable) ::kill(pid_, SIGKILL);
  } else if (reaped_by(pid_, deadline, status)) {
    pid_ = -1;
    return ExitStatus(status);
  } else {
    ::kill(pid_, SIGKILL);
  }
  retry_on_eintr([&] { return ::waitpid(pid_, &status, 0); });
  pid_ = -1;
  return ExitStatus(status);
}

void ChildProcess::kill_and_wait() noexcept {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  retry_on_eintr([&] { return ::waitpid(pid_, &status, 0); });
  pid_ = -1;
}

}  // namespace mpdemo
