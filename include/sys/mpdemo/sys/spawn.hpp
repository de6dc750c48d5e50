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
//
// A team (a pool's workers, the costs probe's bare team) is made by spawn_each(orders, server): every
// order made first, then the children forked one after another, or asked of a ForkServer at once.
//
// A fork's price grows with the process that forks (its page tables are copied, and every private
// page it writes afterwards is a copy-on-write fault). A ForkServer is the second way a child is made
// here: a small process forked early, while this one is still small, that forks children on request,
// as Python's "forkserver" start method does. Its children are this process's (CLONE_PARENT): they are
// owned, reaped and signalled as spawn()'s are, and get the same preparation.
#pragma once

#include "mpdemo/sys/child_process.hpp"
#include "mpdemo/sys/fd.hpp"

#include <unistd.h>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <new>
#include <span>
#include <string>
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
/// A ForkServer's child could not put the descriptors it was sent at their numbers (out of descriptors).
inline constexpr int kSpawnDescriptorsLost = 122;
/// A ForkServer's child found that glibc's record of its thread id was not its own (the clone did not
/// write it): it leaves rather than run as the server.
inline constexpr int kSpawnThreadIdentityLost = 123;

namespace detail {
/// Forks and prepares the child as SpawnOptions says. Returns 0 in the child, the pid in the parent.
/// Throws std::system_error, naming `role` and the limit that was hit, if fork fails.
pid_t fork_prepared(std::string_view role, const SpawnOptions& options);
/// How a ForkServer's child starts its body: the body's bytes, as sent.
using ServedEntry = int (*)(const std::byte* body) noexcept;
/// One child asked of a ForkServer, its body as bytes (ForkServer::spawn and spawn_each make these).
struct ServedOrder {
  std::string_view role;
  const SpawnOptions* options;
  ServedEntry entry;
  const void* body;
  std::size_t size;
};
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

/// One child of a team asked for at once (spawn_each): what spawn() takes.
template <class Body>
struct SpawnOrder {
  std::string role;
  SpawnOptions options;
  Body body;
};

/// What a body sent to a ForkServer may hold, and how many descriptors a child of it may keep.
inline constexpr std::size_t kMaxServedBodyBytes = 256;
inline constexpr std::size_t kMaxServedDescriptors = 16;

/// A small process that forks this process's children on request:
///
///   mpdemo::ForkServer server;                     // early: while this process is small
///   ...                                            // the large arrays, the libraries' state
///   mpdemo::ChildProcess child = server.spawn("a worker", options, [fd]() noexcept { return work(fd); });
///
/// Each child is a copy of the *server*, that is of this process as it was when the server started:
/// the same code at the same addresses, none of the memory this process wrote or mapped since. So
/// a body must be trivially copyable (its bytes travel through a socket) and must not point into
/// memory made after the server started; shared mappings made before it are the children's too. The
/// descriptors in `keep_descriptors` (and the redirections) travel too (SCM_RIGHTS) and keep their
/// numbers in the child, so a body may name them as the parent does.
///
/// The children's parent is this process (clone with CLONE_PARENT), so ChildProcess owns them as
/// usual, and glibc's thread state in them is what its own fork leaves (pthread_self() is the
/// child's, its robust-mutex list registered); pthread_atfork's child handlers ran once, in the
/// server, not in each child. A child's 0-2 are the server's: this process's when the server started
/// (or /dev/null where they were closed).
/// die_with_parent follows the thread that made the server: make it from the thread that outlives the
/// children. Thread-safe: requests from several threads are served one at a time.
///
/// What the server holds: its copy of this process as it was, so every shared mapping made before it
/// stays mapped there until the server ends (its pages are freed only then, unless punched out), and
/// a lock another thread held at that moment stays held in every child. The descriptor limit of the
/// children is this process's at that moment (RLIMIT_NOFILE). x86-64 and arm64 only (its raw clone).
class ForkServer {
 public:
  /// Forks the server now and waits for its first word. Throws std::system_error, naming what failed,
  /// if it cannot; std::runtime_error if the server cannot fork children that know who they are (a
  /// kernel without PR_GET_TID_ADDRESS) or did not start.
  ForkServer();
  /// Hangs up: the server leaves and is reaped. Children it made are this process's and live on.
  ~ForkServer();
  /// Whether a server can run here: this architecture's raw clone is written (x86-64, arm64) and the
  /// kernel says where glibc keeps a thread's id (PR_GET_TID_ADDRESS). Where not, the constructor
  /// throws; tests skip and the CLI refuses --start-method forkserver with the reason.
  static bool supported() noexcept;
  ForkServer(const ForkServer&) = delete;
  ForkServer& operator=(const ForkServer&) = delete;

  /// As mpdemo::spawn, but forked by the server (descriptors that are not open are not sent, as
  /// spawn() keeps only open ones). Throws std::system_error, naming `role`, if the server cannot
  /// fork; std::runtime_error saying how the server ended if it is gone, or if it did not answer
  /// within 10 s (it is killed); std::invalid_argument for more than kMaxServedDescriptors.
  template <class Body>
  ChildProcess spawn(std::string_view role, const SpawnOptions& options, const Body& body) {
    const detail::ServedOrder order{role, &options, &run_body<Body>, &body, sizeof(Body)};
    return std::move(request({&order, 1}).front());
  }

  /// Forks a child for each order, as spawn() would, and returns them in the same order. They are
  /// asked for ahead of the answers (up to 16 unanswered at a time), so the server forks them back to
  /// back: no fork waits for this process to read the answer before it and ask again. If one cannot
  /// be forked, the others are killed and reaped and that failure is thrown, as spawn() throws it.
  template <class Body>
  std::vector<ChildProcess> spawn_each(const std::vector<SpawnOrder<Body>>& orders) {
    std::vector<detail::ServedOrder> served;
    served.reserve(orders.size());
    for (const SpawnOrder<Body>& order : orders) {
      served.push_back({order.role, &order.options, &run_body<Body>, &order.body, sizeof(Body)});
    }
    return request(served);
  }

  /// The server's own pid (for tests and reports), also after it is gone.
  pid_t pid() const noexcept { return server_pid_; }
  /// How many children it has forked for this process so far (for tests and reports).
  std::uint64_t children_forked() const noexcept { return children_forked_.load(std::memory_order_relaxed); }
  /// Whether the children have the shared mapping numbered `number` (SharedMapping::number()): made
  /// before the server started, at the same address.
  bool has_shared_mapping(std::uint64_t number) const noexcept { return number < shared_mappings_before_; }

 private:
  template <class Body>
  static int run_body(const std::byte* body) noexcept {
    static_assert(std::is_nothrow_invocable_r_v<int, const Body&>,
                  "a child's body must be noexcept and return its status");
    static_assert(std::is_trivially_copyable_v<Body> && sizeof(Body) <= kMaxServedBodyBytes &&
                      alignof(Body) <= alignof(std::max_align_t),
                  "a ForkServer's child body travels as bytes: trivially copyable, at most kMaxServedBodyBytes");
    return (*std::launder(reinterpret_cast<const Body*>(body)))();
  }
  /// Sends every order, then reads their answers in order (spawn_each).
  std::vector<ChildProcess> request(std::span<const detail::ServedOrder> orders);
  /// The server died, or is killed for not answering (`how` says why; empty: reap it and say how it
  /// ended): forgets it, owns and ends the children it may have made for requests whose answers never
  /// came (found by their `unanswered` pid reports), and throws std::runtime_error naming `role`.
  /// `mutex_` is held.
  [[noreturn]] void server_lost(std::string_view role, std::span<const int> unanswered, std::string how);
  /// Throws std::runtime_error: a request for `role` after the server is gone, saying how it ended.
  [[noreturn]] void throw_server_gone(std::string_view role) const;

  std::mutex mutex_;
  FileDescriptor socket_;  ///< requests out, replies in (SOCK_SEQPACKET); empty once the server is gone
  ChildProcess server_;
  pid_t server_pid_ = -1;
  std::uint64_t shared_mappings_before_ = 0;
  std::string how_it_ended_;  ///< once the server is gone
  std::atomic<std::uint64_t> children_forked_{0};
};

/// Makes a child for each order and returns them in the same order: asked of `server` all at once
/// (ForkServer::spawn_each) if there is one, else forked here one after another (spawn). So a team is
/// made the same way whichever start method made it. `asking(k)` runs as child k is asked for: for
/// every order, just before the server is asked, or just before this process forks that child. If one
/// cannot be made, those already made are killed and reaped and that failure is thrown. A body must be
/// one a server can take (trivially copyable, at most kMaxServedBodyBytes) even where none is given:
/// whichever start method is chosen at run time, the team is the same.
template <class Body, class Asking>
std::vector<ChildProcess> spawn_each(const std::vector<SpawnOrder<Body>>& orders, ForkServer* server, Asking&& asking) {
  if (server != nullptr) {
    for (std::size_t k = 0; k < orders.size(); ++k) asking(k);
    return server->spawn_each(orders);
  }
  std::vector<ChildProcess> children;  // made so far: killed and reaped if a later fork throws
  children.reserve(orders.size());
  for (std::size_t k = 0; k < orders.size(); ++k) {
    asking(k);
    children.push_back(spawn(orders[k].role, orders[k].options, orders[k].body));
  }
  return children;
}

template <class Body>
std::vector<ChildProcess> spawn_each(const std::vector<SpawnOrder<Body>>& orders, ForkServer* server) {
  return spawn_each(orders, server, [](std::size_t) noexcept {});
}

}  // namespace mpdemo
