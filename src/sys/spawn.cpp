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
#include <cstdint>
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
// descriptors sent with it (SCM_RIGHTS) carry in the parent, which they will carry in the child. One
// more descriptor follows them: a socket, where the child sends its pid first of all.
struct ServedRequest {
  detail::ServedEntry entry = nullptr;
  alignas(std::max_align_t) std::array<std::byte, kMaxServedBodyBytes> body{};
  pid_t parent = -1;
  Preparation preparation;
  unsigned descriptors = 0;         ///< in `numbers`
  unsigned kept = 0;                ///< the first `kept` of them are kept; the rest are only redirected onto 0-2
  std::uint32_t close_on_exec = 0;  ///< bit i: numbers[i] had FD_CLOEXEC in the parent, and keeps it
  std::array<int, kMaxServedDescriptors> numbers{};
};
static_assert(kMaxServedDescriptors <= 32, "close_on_exec has a bit per descriptor");

struct ServedReply {
  pid_t pid = -1;
  int error = 0;  ///< clone's errno when pid is -1
};

using DescriptorControl = std::array<char, CMSG_SPACE(sizeof(int) * (kMaxServedDescriptors + 1))>;

// In the server's child: puts each descriptor received at the number it had in the parent, with its
// FD_CLOEXEC as it was there. First all above every such number, then each onto its own, so that none
// overwrites another not yet moved; prepare_child then closes the rest (the received ones, the copies,
// the server's socket, the pid report).
void place_descriptors(const ServedRequest& request, const int* received) noexcept {
  int above = 3;
  for (unsigned i = 0; i < request.descriptors; ++i) above = std::max(above, request.numbers[i] + 1);
  std::array<int, kMaxServedDescriptors> lifted{};
  for (unsigned i = 0; i < request.descriptors; ++i) {
    lifted[i] = ::fcntl(received[i], F_DUPFD, above);
    if (lifted[i] < 0) ::_exit(kSpawnDescriptorsLost);
  }
  for (unsigned i = 0; i < request.descriptors; ++i) {
    const int flags = (request.close_on_exec >> i & 1U) != 0 ? O_CLOEXEC : 0;
    if (::dup3(lifted[i], request.numbers[i], flags) < 0) ::_exit(kSpawnDescriptorsLost);
  }
}

// What glibc's own fork does in its child and a raw clone does not, read once in the server: where
// glibc keeps the thread's id (the kernel was told at start, PR_GET_TID_ADDRESS), written in the
// child by CLONE_CHILD_SETTID as glibc's fork writes it, so that pthread_self() names the child and
// not the server; and the robust-mutex list, which the kernel forgets at every clone. The server has
// one thread and holds no lock, so glibc's fork handlers would have nothing else to repair: they ran
// once, when the server itself was forked.
struct ThreadIdentity {
  int* tid_address = nullptr;
  void* robust_head = nullptr;
  std::size_t robust_length = 0;

  static ThreadIdentity of_this_thread() noexcept {
    ThreadIdentity identity;
    if (::prctl(PR_GET_TID_ADDRESS, &identity.tid_address) != 0) identity.tid_address = nullptr;
    if (::syscall(SYS_get_robust_list, 0, &identity.robust_head, &identity.robust_length) != 0) {
      identity.robust_head = nullptr;
    }
    return identity;
  }
  /// Whether the address is where glibc keeps this thread's id (the kernel may not say: it needs
  /// CONFIG_CHECKPOINT_RESTORE). Without it a child's pthread_self() would name the server.
  bool known() const noexcept { return tid_address != nullptr && *tid_address == static_cast<int>(::gettid()); }
};

// fork(), with the child given to the server's parent (CLONE_PARENT): glibc's fork cannot do that.
// With CLONE_PARENT the kernel takes the exit signal from the server itself (SIGCHLD, from its own
// fork). The child's thread id is written where glibc keeps it, as glibc's fork has it written.
long clone_for_parent(const ThreadIdentity& identity) noexcept {
  constexpr unsigned long kFlags = CLONE_PARENT | SIGCHLD | CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID;
#if defined(__x86_64__)
  return ::syscall(SYS_clone, kFlags, nullptr, nullptr, identity.tid_address,
                   nullptr);  // flags, stack, ptid, ctid, tls
#elif defined(__aarch64__)
  return ::syscall(SYS_clone, kFlags, nullptr, nullptr, nullptr,
                   identity.tid_address);  // flags, stack, ptid, tls, ctid
#else
  static_cast<void>(identity);
  errno = ENOSYS;
  return -1;
#endif
}

// What the server says once, when it starts: whether it can fork children that know who they are.
struct ServerHello {
  int error = 0;  ///< 0: ready; ENOTSUP: the kernel does not say where glibc keeps the thread id
};

// If this process's stdio is closed, received descriptors would land on 0-2, which every child keeps:
// /dev/null fills the gaps first.
void fill_closed_stdio() noexcept {
  for (int fd = 0; fd <= 2; ++fd) {
    if (::fcntl(fd, F_GETFD) < 0) static_cast<void>(::open("/dev/null", O_RDWR));  // takes the lowest free number
  }
}

// The fork server's life: a request in, a child cloned, its pid out, until the parent hangs up. Every
// signal stays blocked here (its children unblock them as spawn()'s do).
int serve_forks(int socket) noexcept {
  sigset_t all;
  sigfillset(&all);
  ::sigprocmask(SIG_SETMASK, &all, nullptr);
  fill_closed_stdio();
  const ThreadIdentity identity = ThreadIdentity::of_this_thread();
  const ServerHello hello{identity.known() ? 0 : ENOTSUP};
  if (::send(socket, &hello, sizeof hello, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof hello) || hello.error != 0) {
    return 1;
  }
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
    std::array<int, kMaxServedDescriptors + 1> received{};
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
    if (static_cast<std::size_t>(got) != sizeof request || count != request.descriptors + 1 ||
        request.kept > request.descriptors || (message.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) {
      reply.error = EPROTO;
    } else {
      const long pid = clone_for_parent(identity);
      if (pid == 0) {
        // First of all, so that the parent can own this child even if the server dies before it answers.
        // A socket, not a pipe: the parent may have closed its end already, and MSG_NOSIGNAL keeps
        // that from leaving a SIGPIPE pending, which the child would die of once it unblocks signals.
        const pid_t self = ::getpid();
        static_cast<void>(::send(received[request.descriptors], &self, sizeof self, MSG_NOSIGNAL));
        if (*identity.tid_address != static_cast<int>(::gettid())) ::_exit(kSpawnThreadIdentityLost);
        if (identity.robust_head != nullptr)
          ::syscall(SYS_set_robust_list, identity.robust_head, identity.robust_length);
        place_descriptors(request, received.data());
        prepare_child(request.preparation, std::span(request.numbers.data(), request.kept), request.parent);
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

// Every wait for the server (wait_readable) goes on through interrupts: every caller must read what
// may still arrive (a child's pid, the server's word), or a child it could own would be left without
// an owner.

// A child the server made but could not tell of (it died, or was killed for not answering): the
// child's first act was to write its pid to `pid_report`. Read it, or end-of-file if there is none,
// then kill and reap it, so that no child of this process is left without an owner.
// Waiting is safe: once the server is gone only the child holds the other end, and its first act is
// to send.
void reap_unannounced_child(int pid_report) noexcept {
  if (wait_readable(pid_report, std::chrono::steady_clock::now() + kServerAnswer) != Readiness::readable) return;
  pid_t pid = -1;
  if (read_whole(pid_report, &pid, sizeof pid) == ReadOutcome::complete) ChildProcess::adopt(pid).kill_and_wait();
}

// An order as the server reads it, with the socket its child reports its pid through. Made whole
// before anything is sent.
struct PreparedOrder {
  ServedRequest request;
  FileDescriptor pid_report;       ///< read here (reap_unannounced_child)
  FileDescriptor pid_report_sent;  ///< travels with the request, and is closed here once it has
};

PreparedOrder prepare_order(const detail::ServedOrder& order) {
  PreparedOrder prepared;
  ServedRequest& request = prepared.request;
  request.entry = order.entry;
  std::memcpy(request.body.data(), order.body, order.size);
  request.parent = ::getpid();
  request.preparation = Preparation::of(*order.options);
  // Only open descriptors travel (spawn() keeps what it is given and is open, too), each once.
  auto send_along = [&](int fd) {
    const int flags = fd >= 0 ? ::fcntl(fd, F_GETFD) : -1;
    if (flags < 0) return;
    const auto sent = request.numbers.begin() + request.descriptors;
    if (std::find(request.numbers.begin(), sent, fd) != sent) return;
    if (request.descriptors == kMaxServedDescriptors) {
      throw std::invalid_argument(fmt::format("fork {}: a fork server's child keeps at most {} descriptors", order.role,
                                              kMaxServedDescriptors));
    }
    if ((flags & FD_CLOEXEC) != 0) request.close_on_exec |= 1U << request.descriptors;
    request.numbers[request.descriptors++] = fd;
  };
  for (const int fd : order.options->keep_descriptors) send_along(fd);
  request.kept = request.descriptors;
  // A redirection whose source is not open is not made (spawn()'s dup2 fails alike): the number
  // would name something else in the server's child.
  for (int* from : {&request.preparation.stdin_from, &request.preparation.stdout_to, &request.preparation.stderr_to}) {
    if (*from >= 0 && ::fcntl(*from, F_GETFD) < 0) *from = -1;
    send_along(*from);
  }
  int report_ends[2];  // [0] read here, [1] sent: where the child writes its pid
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, report_ends) != 0) {
    throw_errno_with_limits(fmt::format("make the pid report of {}", order.role));
  }
  prepared.pid_report = FileDescriptor::adopt(report_ends[0]);
  prepared.pid_report_sent = FileDescriptor::adopt(report_ends[1]);
  return prepared;
}

// Sends a prepared order with its descriptors: 0, or sendmsg's errno.
int send_order(int socket, PreparedOrder& prepared) noexcept {
  ServedRequest& request = prepared.request;
  alignas(cmsghdr) DescriptorControl control{};
  std::array<int, kMaxServedDescriptors + 1> sent{};
  std::copy_n(request.numbers.begin(), request.descriptors, sent.begin());
  sent[request.descriptors] = prepared.pid_report_sent.get();
  const std::size_t sent_count = request.descriptors + 1;
  iovec part{&request, sizeof request};
  msghdr message{};
  message.msg_iov = &part;
  message.msg_iovlen = 1;
  message.msg_control = control.data();
  message.msg_controllen = CMSG_SPACE(sizeof(int) * sent_count);
  cmsghdr* header = CMSG_FIRSTHDR(&message);
  header->cmsg_level = SOL_SOCKET;
  header->cmsg_type = SCM_RIGHTS;
  header->cmsg_len = CMSG_LEN(sizeof(int) * sent_count);
  std::memcpy(CMSG_DATA(header), sent.data(), sizeof(int) * sent_count);
  for (;;) {
    if (::sendmsg(socket, &message, MSG_NOSIGNAL) == static_cast<ssize_t>(sizeof request)) break;
    if (errno != EINTR) return errno;
  }
  prepared.pid_report_sent.reset();  // the server's copy and the child's remain: end-of-file once both are gone
  return 0;
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
#if !defined(__x86_64__) && !defined(__aarch64__)
  throw std::runtime_error("ForkServer: its raw clone is written for x86-64 and arm64 only");
#endif
  int ends[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ends) != 0) {
    throw_errno_with_limits("make the fork server's socket");
  }
  // With stdio closed either end could land on 0-2, which every child keeps (and spawn()'s too): it
  // would hold the server's socket. Both move above 2.
  auto above_stdio = [](int fd) {
    FileDescriptor end = FileDescriptor::adopt(fd);
    if (end.get() >= 3) return end;
    FileDescriptor moved = FileDescriptor::adopt(::fcntl(end.get(), F_DUPFD_CLOEXEC, 3));
    if (!moved) throw_errno_with_limits("move the fork server's socket above 2");
    return moved;
  };
  FileDescriptor ours = above_stdio(ends[0]);
  FileDescriptor theirs = above_stdio(ends[1]);
  SpawnOptions options;
  options.keep_descriptors = {theirs.get()};
  options.ignore_interrupts = true;  // Ctrl-C is the parent's to answer; the server leaves when it hangs up
  const int socket = theirs.get();
  shared_mappings_before_ = shared_mappings_made();  // read before the fork: those are the server's too
  server_ = mpdemo::spawn("a fork server", options, [socket]() noexcept { return serve_forks(socket); });
  server_pid_ = server_.pid();
  socket_ = std::move(ours);
  theirs.reset();
  // Its first word: whether it can fork children that know who they are (ServerHello).
  ServerHello hello;
  const Readiness said = wait_readable(socket_.get(), std::chrono::steady_clock::now() + kServerAnswer);
  if (said != Readiness::readable ||
      ::recv(socket_.get(), &hello, sizeof hello, 0) != static_cast<ssize_t>(sizeof hello) || hello.error != 0) {
    socket_.reset();
    std::string how;
    if (said == Readiness::timed_out) {  // alive but silent (stopped, stuck): it would not end by itself
      server_.kill_and_wait();
      how = fmt::format("did not say it was ready within {} s, and was killed", kServerAnswer.count());
    } else if (said == Readiness::failed) {
      const int error = errno;
      server_.kill_and_wait();
      how = fmt::format("could not be waited for ({}), and was killed", std::strerror(error));
    } else {
      how = "did not say it was ready, and is gone: " + server_.wait_or_kill(std::chrono::seconds(1)).str();
    }
    throw std::runtime_error(
        hello.error == ENOTSUP
            ? "start a fork server: this kernel does not say where glibc keeps a thread's id (PR_GET_TID_ADDRESS "
              "needs CONFIG_CHECKPOINT_RESTORE), so the server's children would take its identity for theirs"
            : fmt::format("start a fork server (pid {}): it {}", server_pid_, how));
  }
}

bool ForkServer::supported() noexcept {
#if defined(__x86_64__) || defined(__aarch64__)
  return ThreadIdentity::of_this_thread().known();
#else
  return false;
#endif
}

ForkServer::~ForkServer() {
  socket_.reset();
  server_.wait_or_kill(std::chrono::seconds(2));
}

void ForkServer::server_lost(std::string_view role, std::span<const int> unanswered, std::string how) {
  socket_.reset();
  if (how.empty()) {
    how = server_.wait_or_kill(std::chrono::seconds(1)).str();
  } else {
    server_.kill_and_wait();
  }
  how_it_ended_ = std::move(how);
  for (const int pid_report : unanswered) reap_unannounced_child(pid_report);
  throw_server_gone(role);
}

void ForkServer::throw_server_gone(std::string_view role) const {
  throw std::runtime_error(
      fmt::format("fork {}: the fork server (pid {}) is gone: {}", role, server_pid_, how_it_ended_));
}

std::vector<ChildProcess> ForkServer::request(std::span<const detail::ServedOrder> orders) {
  const std::lock_guard lock(mutex_);
  if (orders.empty()) return {};
  if (!socket_) throw_server_gone(orders.front().role);
  // Everything that can fail before the server is asked (a descriptor too many, none left for a pid
  // report) fails here, with nothing asked yet.
  std::vector<PreparedOrder> prepared;
  prepared.reserve(orders.size());
  for (const detail::ServedOrder& order : orders) prepared.push_back(prepare_order(order));

  // The orders go ahead of the answers: the server forks the children back to back, without waiting
  // for this process to read an answer and ask again. At most kOrdersAhead are unanswered at a time:
  // with every order sent first, a large team would fill both sides' socket buffers (the server's
  // answers unread here, this process blocked sending to a server blocked answering) and hang.
  // Once asked, every answer is read whatever happens meanwhile, an interrupt included: the children
  // may already exist, and only their pids let this process own them (kill and reap them when it
  // unwinds). Whatever else ends a wait ends the server too, and the children whose answers did not
  // come are found by their pid reports. A fork that failed does not stop the reading: the answers
  // after it are read too, so that the socket stays in step and their children are owned.
  constexpr std::size_t kOrdersAhead = 16;
  std::vector<int> reports;  // the pid reports of the orders sent, in order
  reports.reserve(orders.size());
  std::vector<ChildProcess> children;
  children.reserve(orders.size());
  int send_error = 0;
  std::size_t refused = orders.size();  // the first order the server could not fork, if any
  int fork_error = 0;
  for (std::size_t answered = 0;; ++answered) {
    while (send_error == 0 && reports.size() < orders.size() && reports.size() - answered < kOrdersAhead) {
      send_error = send_order(socket_.get(), prepared[reports.size()]);
      if (send_error == 0) reports.push_back(prepared[reports.size()].pid_report.get());
    }
    const std::span<const int> unanswered = std::span<const int>(reports).subspan(answered);
    if (send_error == EPIPE || send_error == ECONNRESET) server_lost(orders[reports.size()].role, unanswered, {});
    if (answered == reports.size()) break;  // all answered, or no more can be sent
    const std::string_view role = orders[answered].role;
    const auto deadline = std::chrono::steady_clock::now() + kServerAnswer;
    ServedReply reply;
    for (;;) {
      const Readiness answer = wait_readable(socket_.get(), deadline);
      if (answer == Readiness::failed) {
        server_lost(role, unanswered, fmt::format("could not be waited for ({})", std::strerror(errno)));
      }
      if (answer == Readiness::timed_out) {
        server_lost(role, unanswered, fmt::format("did not answer within {} s, and was killed", kServerAnswer.count()));
      }
      const ssize_t got = ::recv(socket_.get(), &reply, sizeof reply, 0);
      if (got == static_cast<ssize_t>(sizeof reply)) break;
      if (got < 0 && errno == EINTR) continue;
      server_lost(role, unanswered, {});  // end-of-file, or a torn answer: the server died
    }
    if (reply.pid < 0) {
      if (refused == orders.size()) {
        refused = answered;
        fork_error = reply.error;
      }
      continue;
    }
    children.push_back(ChildProcess::adopt(reply.pid));
    children_forked_.fetch_add(1, std::memory_order_relaxed);
  }
  // The children made so far are killed and reaped as `children` unwinds.
  if (send_error != 0) {
    errno = send_error;
    throw_errno_with_limits(fmt::format("ask the fork server to fork {}", orders[reports.size()].role));
  }
  if (refused != orders.size()) {
    errno = fork_error;
    throw_errno_with_limits(fmt::format("fork {} (by the fork server)", orders[refused].role));
  }
  return children;
}

}  // namespace mpdemo
