// spawn: the one place mpdemo forks. Every child -- a pool's worker, a costs probe, gnuplot, a test's
// helper -- is made here, with the same care:
//
//   mpdemo::SpawnOptions options;
//   options.keep_descriptors = {to_child.read_end.get()};   // everything else is closed in the child
//   mpdemo::ChildProcess child = mpdemo::spawn("the probe", options, [&]() noexcept {
//     return do_the_work();                                  // the child's exit status
//   });
//
// - stdio buffers are flushed first, so nothing the parent printed is printed twice;
// - every signal is blocked across fork, so the child never runs the parent's handlers before it
//   has set its own dispositions (then it unblocks them);
// - the child forgets the parent's interrupt state, gets SIGPIPE back to its default, optionally
//   ignores SIGINT/SIGTERM/SIGQUIT (a pool's workers leave that decision to the master), optionally
//   dies with its parent (PR_SET_PDEATHSIG, and leaves at once if the parent died before that),
//   closes every descriptor but stdio and `keep_descriptors` (after applying `stdin/stdout/stderr`
//   redirections), and is pinned to `cpu` if one is given;
// - the body's return value is the child's exit status, through _exit: the child never returns into
//   the caller, never runs the parent's atexit handlers or flushes its stdio (libuv's rule).
//
// After fork, a child of a threaded parent may not rely on locks other threads held: the body
// should make system calls, or exec. glibc keeps malloc usable across fork.
#pragma once

#include "mpdemo/sys/child_process.hpp"

#include <unistd.h>
#include <string_view>
#include <type_traits>
#include <vector>

namespace mpdemo {

struct SpawnOptions {
  int cpu = -1;                       ///< pin the child to this CPU (best effort); -1: wherever
  bool cpu_required = false;          ///< the child leaves with kSpawnPinFailed if it cannot be pinned
  bool die_with_parent = true;        ///< SIGKILL the child when the forking thread's process dies
  bool ignore_interrupts = false;     ///< SIGINT, SIGTERM and SIGQUIT ignored in the child
  std::vector<int> keep_descriptors;  ///< kept open besides 0, 1 and 2; every other one is closed
  int stdin_from = -1;                ///< dup2'd onto 0 in the child, if not -1 (then closed)
  int stdout_to = -1;                 ///< dup2'd onto 1
  int stderr_to = -1;                 ///< dup2'd onto 2
};

/// Exit statuses of a child that failed before its body ran.
inline constexpr int kSpawnOrphaned = 120;   ///< the parent died before the death signal was armed
inline constexpr int kSpawnPinFailed = 121;  ///< cpu_required, and the kernel refused to pin the child

namespace detail {
/// Forks and prepares the child as SpawnOptions says. Returns 0 in the child, the pid in the parent.
/// Throws std::system_error, naming `role` and the limit that was hit, if fork fails.
pid_t fork_prepared(std::string_view role, const SpawnOptions& options);
}  // namespace detail

/// Forks a child that runs `body` (noexcept, returning its exit status) and leaves with _exit; returns
/// the ChildProcess that owns it (killed and reaped if it is still running when that is destroyed).
template <class Body>
ChildProcess spawn(std::string_view role, const SpawnOptions& options, Body&& body) {
  static_assert(std::is_nothrow_invocable_r_v<int, Body&>, "a child's body must be noexcept and return its status");
  const pid_t pid = detail::fork_prepared(role, options);
  if (pid == 0) ::_exit(body());
  return ChildProcess::adopt(pid);
}

}  // namespace mpdemo
