// The worker side of the ProcessPool. Runs in a child forked from a master that may have threads,
// so it sticks to system calls and the kernel it is sent: no locks of the master's, no stdio.
#include "pool_protocol.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <exception>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace mpdemo::detail {

namespace {

constexpr int kExitOrphaned = 3;
constexpr int kExitPipeError = 4;

// Only the worker's own two pipe ends (and stdio) stay open: another worker's pipe ends, inherited
// because the master held them at fork time, would hide that worker's death from the master.
void close_other_descriptors(int keep_a, int keep_b) noexcept {
  std::array<int, 5> keep{0, 1, 2, keep_a, keep_b};
  std::sort(keep.begin(), keep.end());
  unsigned first = 0;
  for (int fd : keep) {
    const auto kept = static_cast<unsigned>(fd);
    if (kept > first) ::syscall(SYS_close_range, first, kept - 1, 0);
    first = std::max(first, kept + 1);
  }
  ::syscall(SYS_close_range, first, ~0U, 0);
}

bool read_whole(int fd, void* data, std::size_t size) noexcept {
  auto* bytes = static_cast<char*>(data);
  for (std::size_t done = 0; done < size;) {
    const ssize_t got = ::read(fd, bytes + done, size - done);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return false;
    done += static_cast<std::size_t>(got);
  }
  return true;
}

void send(int fd, const ReplyMessage& reply) noexcept {
  for (;;) {
    const ssize_t written = ::write(fd, &reply, sizeof(reply));
    if (written == static_cast<ssize_t>(sizeof(reply))) return;
    if (written < 0 && errno == EINTR) continue;
    ::_exit(kExitPipeError);  // the master is gone: nobody is left to tell
  }
}

void describe(ReplyMessage& reply, const char* what) noexcept {
  std::strncpy(reply.what, what, sizeof(reply.what) - 1);
  reply.what[sizeof(reply.what) - 1] = '\0';
}

}  // namespace

void run_worker(const WorkerSetup& setup) noexcept {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != setup.master) ::_exit(kExitOrphaned);  // the master died before prctl took hold

  // Ctrl-C and a group-wide SIGTERM reach every process in the group. A worker must not die half-way
  // through a chunk on its own: the master decides, and stops the workers itself.
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  sigemptyset(&ignore.sa_mask);
  for (int signal_number : {SIGINT, SIGTERM, SIGQUIT}) ::sigaction(signal_number, &ignore, nullptr);
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  sigemptyset(&default_action.sa_mask);
  ::sigaction(SIGPIPE, &default_action, nullptr);
  sigset_t nothing_blocked;
  sigemptyset(&nothing_blocked);
  ::sigprocmask(SIG_SETMASK, &nothing_blocked, nullptr);

  close_other_descriptors(setup.task_fd, setup.reply_fd);

  if (setup.cpu >= 0) {
    cpu_set_t mask;
    CPU_ZERO(&mask);
    CPU_SET(static_cast<std::size_t>(setup.cpu), &mask);
    ::sched_setaffinity(0, sizeof(mask), &mask);  // best effort: an unpinned worker still works
  }

  ReplyMessage reply{};
  reply.kind = ReplyKind::ready;
  send(setup.reply_fd, reply);

  for (;;) {
    TaskMessage task;
    if (!read_whole(setup.task_fd, &task, sizeof(task))) ::_exit(0);  // end-of-file: the pool stops
    reply = ReplyMessage{};
    reply.kind = ReplyKind::done;
    reply.job = task.job;
    reply.chunk = task.chunk;
    try {
      task.kernel(task.input, task.output, task.begin, task.end);
    } catch (const std::exception& e) {
      reply.kind = ReplyKind::failed;
      describe(reply, e.what());
    } catch (...) {
      reply.kind = ReplyKind::failed;
      describe(reply, "an exception not derived from std::exception");
    }
    send(setup.reply_fd, reply);
  }
}

}  // namespace mpdemo::detail
