#include "mpdemo/sys/spawn.hpp"

#include "mpdemo/sys/detail/system_call.hpp"
#include "mpdemo/sys/errors.hpp"
#include "mpdemo/sys/interrupt.hpp"
#include "mpdemo/sys/shared_memory.hpp"
#include "mpdemo/sys/topology.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <span>
#include <stdexcept>

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
void close_all_but(std::span<const int> keep) noexcept {
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

// SpawnOptions but the descriptors to keep, by value: what a ForkServer's request carries, and what
// the child reads without allocating.
struct Preparation {
  int cpu = -1;
  bool cpu_required = false;
  bool die_with_parent = true;
  bool ignore_interrupts = false;
  int stdin_from = -1;
  int stdout_to = -1;
  int stderr_to = -1;

  static Preparation of(const SpawnOptions& options) noexcept {
    return {options.cpu,        options.cpu_required, options.die_with_parent, options.ignore_interrupts,
            options.stdin_from, options.stdout_to,    options.stderr_to};
  }
};

// Everything the child does before its body, in an order that matters: dispositions before signals
// are unblocked; the death signal before the parent check; redirections before closing.
void prepare_child(const Preparation& options, std::span<const int> keep, pid_t parent) noexcept {
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
  close_all_but(keep);

  // Best effort unless the child's figures depend on where it runs: an unpinned worker still works.
  if (!pin_calling_thread(options.cpu) && options.cpu_required) ::_exit(kSpawnPinFailed);
}

// What a ForkServer is asked: the body and the options spawn() would take, and the numbers the
// descriptors sent with it (SCM_RIGHTS) carry in the parent, which they will carry in the child.
struct ServedRequest {
  detail::ServedEntry entry = nullptr;
  alignas(std::max_align_t) std::array<std::byte, kMaxServedBodyBytes> body{};
  pid_t parent = -1;
  Preparation preparation;
  unsigned descriptors = 0;
  std::array<int, kMaxServedDescriptors> numbers{};
};

struct ServedReply {
  pid_t pid = -1;
  int error = 0;  ///< clone's errno when pid is -1
};

using DescriptorControl = std::array<char, CMSG_SPACE(sizeof(int) * kMaxServedDescriptors)>;

// In the server's child: puts each descriptor received at the number it had in the parent. First all
// above every such number, then each onto its own, so that none overwrites another not yet moved;
// prepare_child then closes the rest (the received ones, the copies, the server's socket).
void place_descriptors(const ServedRequest& request, const int* received) noexcept {
  int above = 3;
  for (unsigned i = 0; i < request.descriptors; ++i) above = std::max(above, request.numbers[i] + 1);
  std::array<int, kMaxServedDescriptors> lifted{};
  for (unsigned i = 0; i < request.descriptors; ++i) {
    lifted[i] = ::fcntl(received[i], F_DUPFD, above);
    if (lifted[i] < 0) ::_exit(kSpawnDescriptorsLost);
  }
  for (unsigned i = 0; i < request.descriptors; ++i) {
    if (::dup2(lifted[i], request.numbers[i]) < 0) ::_exit(kSpawnDescriptorsLost);  // dup2 clears FD_CLOEXEC
  }
}

// The fork server's life: a request in, a child cloned, its pid out, until the parent hangs up. Every
// signal stays blocked here (its children unblock them as spawn()'s do). A child is cloned with
// CLONE_PARENT, so it is the parent's own, and a raw clone, not glibc's fork: the server has one
// thread and holds no lock, so glibc's fork handlers have nothing to repair, and glibc's fork cannot
// give a child to its parent.
int serve_forks(int socket) noexcept {
  sigset_t all;
  sigfillset(&all);
  ::sigprocmask(SIG_SETMASK, &all, nullptr);
  for (;;) {
    ServedRequest request;
    alignas(cmsghdr) DescriptorControl control{};
    iovec part{&request, sizeof request};
    msghdr message{};
    message.msg_iov = &part;
    message.msg_iovlen = 1;
    message.msg_control = control.data();
    message.msg_controllen = control.size();
    const ssize_t got = ::recvmsg(socket, &message, MSG_CMSG_CLOEXEC);
    if (got == 0) return 0;  // the parent hung up
    if (got < 0) {
      if (errno == EINTR) continue;
      return 1;
    }
    std::array<int, kMaxServedDescriptors> received{};
    unsigned count = 0;
    for (cmsghdr* header = CMSG_FIRSTHDR(&message); header != nullptr; header = CMSG_NXTHDR(&message, header)) {
      if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS) continue;
      const std::size_t arrived = (header->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (std::size_t i = 0; i < arrived; ++i) {
        int fd = -1;
        std::memcpy(&fd, CMSG_DATA(header) + i * sizeof(int), sizeof fd);
        if (count < received.size())
          received[count++] = fd;
        else
          ::close(fd);
      }
    }
    ServedReply reply;
    if (static_cast<std::size_t>(got) != sizeof request || count != request.descriptors ||
        (message.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) {
      reply.error = EPROTO;
    } else {
      const long pid = ::syscall(SYS_clone, CLONE_PARENT | SIGCHLD, nullptr, nullptr, nullptr, nullptr);
      if (pid == 0) {
        place_descriptors(request, received.data());
        prepare_child(request.preparation, std::span(request.numbers.data(), request.descriptors), request.parent);
        ::_exit(request.entry(request.body.data()));
      }
      if (pid < 0) reply.error = errno;
      reply.pid = static_cast<pid_t>(pid);
    }
    for (unsigned i = 0; i < count; ++i) ::close(received[i]);
    if (::send(socket, &reply, sizeof reply, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof reply)) return 1;
  }
}

// How long a request may wait for the server's answer: one fork, however slow the machine. A server
// that takes longer is stopped or stuck, and waiting on would hang the caller.
constexpr auto kServerAnswer = std::chrono::seconds(10);

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
    prepare_child(Preparation::of(options), options.keep_descriptors, parent);
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

ForkServer::ForkServer() {
  int ends[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ends) != 0) {
    throw_errno_with_limits("make the fork server's socket");
  }
  FileDescriptor ours = FileDescriptor::adopt(ends[0]);
  FileDescriptor theirs = FileDescriptor::adopt(ends[1]);
  SpawnOptions options;
  options.keep_descriptors = {theirs.get()};
  options.ignore_interrupts = true;  // Ctrl-C is the parent's to answer; the server leaves when it hangs up
  const int socket = theirs.get();
  shared_mappings_before_ = shared_mappings_made();  // read before the fork: those are the server's too
  server_ = mpdemo::spawn("a fork server", options, [socket]() noexcept { return serve_forks(socket); });
  server_pid_ = server_.pid();
  socket_ = std::move(ours);
}

ForkServer::~ForkServer() {
  socket_.reset();
  server_.wait_or_kill(std::chrono::seconds(2));
}

void ForkServer::server_gone(std::string_view role) {
  socket_.reset();
  how_it_ended_ = server_.wait_or_kill(std::chrono::seconds(1)).str();
  throw std::runtime_error(
      fmt::format("fork {}: the fork server (pid {}) is gone: {}", role, server_pid_, how_it_ended_));
}

pid_t ForkServer::request(std::string_view role, const SpawnOptions& options, detail::ServedEntry entry,
                          const void* body, std::size_t size) {
  ServedRequest request;
  request.entry = entry;
  std::memcpy(request.body.data(), body, size);
  request.parent = ::getpid();
  request.preparation = Preparation::of(options);
  auto send_along = [&](int fd) {
    if (fd < 0) return;
    const auto sent = request.numbers.begin() + request.descriptors;
    if (std::find(request.numbers.begin(), sent, fd) != sent) return;
    if (request.descriptors == kMaxServedDescriptors) {
      throw std::invalid_argument(
          fmt::format("fork {}: a fork server's child keeps at most {} descriptors", role, kMaxServedDescriptors));
    }
    request.numbers[request.descriptors++] = fd;
  };
  for (const int fd : options.keep_descriptors) send_along(fd);
  for (const int fd : {options.stdin_from, options.stdout_to, options.stderr_to}) send_along(fd);

  alignas(cmsghdr) DescriptorControl control{};
  iovec part{&request, sizeof request};
  msghdr message{};
  message.msg_iov = &part;
  message.msg_iovlen = 1;
  if (request.descriptors > 0) {
    message.msg_control = control.data();
    message.msg_controllen = CMSG_SPACE(sizeof(int) * request.descriptors);
    cmsghdr* header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(sizeof(int) * request.descriptors);
    std::memcpy(CMSG_DATA(header), request.numbers.data(), sizeof(int) * request.descriptors);
  }

  const std::lock_guard lock(mutex_);
  if (!socket_) {
    throw std::runtime_error(
        fmt::format("fork {}: the fork server (pid {}) is gone: {}", role, server_pid_, how_it_ended_));
  }
  for (;;) {
    if (::sendmsg(socket_.get(), &message, MSG_NOSIGNAL) == static_cast<ssize_t>(sizeof request)) break;
    if (errno == EINTR) continue;
    if (errno == EPIPE || errno == ECONNRESET) server_gone(role);
    throw_errno_with_limits(fmt::format("ask the fork server to fork {}", role));
  }
  // Once asked, the answer is read whatever happens meanwhile, an interrupt included: the child may
  // already exist, and only its pid lets this process own it (kill and reap it when it unwinds).
  // Otherwise it would be a child nobody waits for, a zombie for as long as this process lives.
  const auto deadline = std::chrono::steady_clock::now() + kServerAnswer;
  ServedReply reply;
  for (;;) {
    pollfd answer{socket_.get(), POLLIN, 0};
    const int ready = ::poll(&answer, 1, 100);
    if (ready < 0 && errno != EINTR) throw_errno(fmt::format("wait for the fork server to fork {}", role));
    if (ready > 0) {
      const ssize_t got = ::recv(socket_.get(), &reply, sizeof reply, 0);
      if (got == static_cast<ssize_t>(sizeof reply)) break;
      if (got < 0 && errno == EINTR) continue;
      server_gone(role);  // end-of-file, or a torn answer: the server died
    }
    if (std::chrono::steady_clock::now() > deadline) {
      server_.kill_and_wait();
      socket_.reset();
      how_it_ended_ = fmt::format("did not answer within {} s, and was killed", kServerAnswer.count());
      throw std::runtime_error(fmt::format("fork {}: the fork server (pid {}) {}", role, server_pid_, how_it_ended_));
    }
  }
  if (reply.pid < 0) {
    errno = reply.error;
    throw_errno_with_limits(fmt::format("fork {} (by the fork server)", role));
  }
  return reply.pid;
}

}  // namespace mpdemo
