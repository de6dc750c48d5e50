// Test support: run a program (the mpdemo executable) as a real child process and capture what it says.
#pragma once

#include "mpdemo/sys/child_process.hpp"

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace mpdemo::testing {

struct ProgramResult {
  std::string out;
  std::string err;
  ExitStatus status{0};
  /// Seconds from just before the fork to the reaping, on the test's own clock: an upper bound on
  /// any time the program reports of itself.
  double wall_seconds = 0;
  int exit_code() const { return status.exited() ? status.exit_code() : -1; }
};

/// Runs MPDEMO_EXECUTABLE with `arguments`, waits for it (SIGKILL after `timeout`, so a hang fails
/// the test instead of stalling the suite), and returns its output and exit status.
/// `on_started` is called with the child's pid once it runs (to signal it, for instance). With
/// `own_process_group` the child leads a new process group (pgid == pid), as a shell's foreground job.
ProgramResult run_mpdemo(const std::vector<std::string>& arguments,
                         std::chrono::milliseconds timeout = std::chrono::seconds(60),
                         const std::function<void(pid_t)>& on_started = {}, bool own_process_group = false);

/// Runs any program (argv[0] looked up on $PATH) the same way: `prlimit ... mpdemo ...`, or
/// `/bin/sh -c 'exec mpdemo ... >/dev/full'` for what a pipe cannot show.
ProgramResult run_program(std::vector<std::string> argv, std::chrono::milliseconds timeout = std::chrono::seconds(60),
                          const std::function<void(pid_t)>& on_started = {}, bool own_process_group = false);

/// The path of the mpdemo executable under test.
std::string mpdemo_executable();

/// The pids of the children of `pid` right now (from /proc/PID/task/*/children).
std::vector<pid_t> children_of(pid_t pid);

/// Whether this process has no child left, not even a zombie: waitpid(-1, WNOHANG) finds none to wait
/// for (ECHILD). Safe in a forked child.
bool no_child_left() noexcept;

/// Shared mappings in this process right now (/proc/self/maps): the arena, and any a pool forgot to
/// unmap. Nothing another program does changes this count.
std::size_t shared_mappings();

/// Whether process `pid` has a handler installed for `signal_number` (SigCgt in /proc/PID/status): for
/// mpdemo, that its InterruptGuard is in place, so a signal sent now is its to answer, not a default
/// death during start-up (which takes 150 ms under AddressSanitizer on a slow VM).
bool catches_signal(pid_t pid, int signal_number);

/// What a check run in a child of its own (run_in_child) said: its exit status, and what it wrote.
struct ChildVerdict {
  ExitStatus status{0};
  std::string said;
};

/// Runs `check` in a child made for it (spawn), for what must not touch the test's own process: a
/// seccomp filter, which is for good, or a user id. `check` writes what it has to say (a failure, an
/// error's message) to the descriptor it is given and returns the child's exit status; it must not
/// throw. The child is killed if it runs longer than `timeout`; what it wrote is read once it has
/// ended, so it must be a few lines, and no process it leaves behind may hold the descriptor (spawn
/// gives a child only the descriptors it is asked to keep).
ChildVerdict run_in_child(std::string_view role, const std::function<int(int report)>& check,
                          std::chrono::milliseconds timeout = std::chrono::seconds(40));

/// While one lives, every child this process forks with glibc's fork() (as spawn does; a raw clone
/// runs no fork handlers) stops itself (SIGSTOP) the moment it is forked, before any code of its own
/// runs: a child that never answers, made for real. Whatever else would fork meanwhile (a tmpfs
/// helper) is best made before it.
class StopNewChildren {
 public:
  StopNewChildren();
  ~StopNewChildren();
  StopNewChildren(const StopNewChildren&) = delete;
  StopNewChildren& operator=(const StopNewChildren&) = delete;
};

/// Waits (polling /proc, up to `timeout`) until `condition` holds; returns whether it did. For
/// conditions on other processes that no event announces.
bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout);

}  // namespace mpdemo::testing
