// ChildProcess: one forked child, owned. It is never left a zombie: the owner waits for it, and kills
// it first if it still runs when the owner goes away (as folly::Subprocess does).
#pragma once

#include <sys/types.h>
#include <chrono>
#include <stdexcept>
#include <string>
#include <utility>

namespace mpdemo {

/// How a child ended, decoded from a waitpid status.
class ExitStatus {
 public:
  explicit ExitStatus(int raw_wait_status) noexcept : raw_(raw_wait_status) {}
  /// The status of a ChildProcess that never ran: not a success, and says so.
  static ExitStatus never_started() noexcept {
    ExitStatus status(0);
    status.started_ = false;
    return status;
  }
  bool started() const noexcept { return started_; }
  bool exited() const noexcept;
  int exit_code() const noexcept;  // valid when exited()
  bool killed() const noexcept;
  int signal() const noexcept;  // valid when killed()
  bool success() const noexcept { return started_ && exited() && exit_code() == 0; }
  /// "exited with status 3", "killed by signal 9 (SIGKILL)", "killed by signal 11 (SIGSEGV), core
  /// dumped", "never started".
  std::string str() const;
  int raw() const noexcept { return raw_; }

 private:
  int raw_;
  bool started_ = true;
};

/// "SIGKILL" for 9, "signal 77" for a number that has no name.
std::string signal_name(int signal_number);

class ChildProcess {
 public:
  /// An empty owner: no child was ever started (running() is false, pid() throws).
  ChildProcess() noexcept = default;
  /// Takes ownership of a child this process forked (spawn() does; adopting a raw pid is a visible
  /// act). The pid must be positive: anything else gives an empty owner, never a kill(-1).
  static ChildProcess adopt(pid_t pid) noexcept {
    ChildProcess child;
    if (pid > 0) child.pid_ = pid;
    return child;
  }
  ChildProcess(ChildProcess&& other) noexcept : pid_(std::exchange(other.pid_, -1)) {}
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  /// Kills (SIGKILL) and reaps a child that has not been waited for.
  ~ChildProcess() { kill_and_wait(); }

  /// The child's pid; throws std::logic_error for an empty or reaped child, so that no sentinel
  /// (-1, which kill() takes for "every process") ever leaves this class.
  pid_t pid() const {
    if (pid_ <= 0) throw std::logic_error("ChildProcess::pid: no child (never started, or already reaped)");
    return pid_;
  }
  bool running() const noexcept { return pid_ > 0; }

  /// Sends a signal; returns false if the child is already gone (ESRCH).
  bool send_signal(int signal_number) const;
  /// Blocks until the child ends, reaps it and returns how it ended.
  ExitStatus wait();
  /// Waits up to `timeout` for the child to end on its own, then kills it with SIGKILL. Never throws;
  /// for an empty owner returns ExitStatus::never_started().
  ExitStatus wait_or_kill(std::chrono::milliseconds timeout) noexcept;
  /// SIGKILL then reap; a no-op for an empty or already reaped child. Never throws.
  void kill_and_wait() noexcept;

 private:
  pid_t pid_ = -1;
};

}  // namespace mpdemo
