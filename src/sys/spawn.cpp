#include "mpdemo/sys/spawn.hpp"

#include "mpdemo/sys/detail/system_call.hpp"
#include "mpdemo/sys/errors.hpp"
#include "mpdemo/sys/interrupt.hpp"
#include "mpdemo/sys/topology.hpp"

#include <fmt/format.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <algorithm>
#include <csignal>
#include <cstdio>
#include <iostream>

namespace mpdemo {

namespace {

// No close_range (a kernel before 5.9, or a seccomp filter): close them one by one, up to the limit.
void close_range_or_each(unsigned first, unsigned last) noexcept {
  if (::syscall(SYS_close_range, first, last, 0) == 0) return;
  rlimit files{};
  const rlim_t limit =
      ::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur != RLIM_INFINITY ? files.rlim_cur : 65536;
  for (rlim_t fd = first; fd <= last && fd < limit; ++fd) ::close(static_cast<int>(fd));
}

// Closes every descriptor but 0-2 and `keep`, in any order. It allocates nothing: after fork every
// heap page the child writes is a copy of its parent's, and freeing a sorted copy here cost a worker
// five page faults before it was ready (a few kept descriptors make the quadratic search free).
void close_all_but(const std::vector<int>& keep) noexcept {
  unsigned first = 3;
  for (;;) {
    unsigned next_kept = ~0U;  // the lowest kept descriptor at or above `first`, if any
    for (const int fd : keep) {
      if (fd >= 0 && static_cast<unsigned>(fd) >= first) next_kept = std::min(next_kept, static_cast<unsigned>(fd));
    }
    if (next_kept == ~0U) break;
    if (next_kept > first) close_range_or_each(first, next_kept - 1);
    first = next_kept + 1;
  }
  close_range_or_each(first, ~0U);
}

void set_disposition(int signal_number, void (*handler)(int)) noexcept {
  struct sigaction action {};
  action.sa_handler = handler;
  sigemptyset(&action.sa_mask);
  ::sigaction(signal_number, &action, nullptr);
}

// Everything the child does before its body, in an order that matters: dispositions before signals
// are unblocked; the death signal before the parent check; redirections before closing.
void prepare_child(const SpawnOptions& options, pid_t parent) noexcept {
  detail::reset_interrupt_state_after_fork();
  // Handlers the parent installed (an InterruptGuard's) mean nothing here.
  for (const int signal_number : {SIGINT, SIGTERM, SIGQUIT}) {
    set_disposition(signal_number, options.ignore_interrupts ? SIG_IGN : SIG_DFL);
  }
  set_disposition(SIGPIPE, SIG_DFL);
  if (options.die_with_parent) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(kSpawnOrphaned);  // the parent died before prctl took hold
  }
  sigset_t nothing;
  sigemptyset(&nothing);
  ::sigprocmask(SIG_SETMASK, &nothing, nullptr);

  for (const auto& [from, onto] :
       {std::pair{options.stdin_from, 0}, std::pair{options.stdout_to, 1}, std::pair{options.stderr_to, 2}}) {
    if (from >= 0 && from != onto) ::dup2(from, onto);
  }
  close_all_but(options.keep_descriptors);

  // Best effort unless the child's figures depend on where it runs: an unpinned worker still works.
  if (!pin_calling_thread(options.cpu) && options.cpu_required) ::_exit(kSpawnPinFailed);
}

}  // namespace

namespace detail {

pid_t fork_prepared(std::string_view role, const SpawnOptions& options) {
  const pid_t parent = ::getpid();
  // What the parent has buffered must not be written twice (once by the parent, once by a child
  // that calls exit()).
  std::cout.flush();
  std::fflush(nullptr);
  sigset_t all;
  sigset_t previous;
  sigfillset(&all);
  check_error_number(pthread_sigmask(SIG_SETMASK, &all, &previous), "block signals around fork");
  const pid_t pid = ::fork();
  if (pid == 0) {
    prepare_child(options, parent);
    return 0;
  }
  const int fork_error = errno;
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  if (pid < 0) {
    errno = fork_error;
    throw_errno_with_limits(fmt::format("fork {}", role));
  }
  return pid;
}

}  // namespace detail

}  // namespace mpdemo
