// ForkServer: children forked by a small server are this process's own, carry the descriptors they
// were given under the same numbers and no others, are copies of the process as it was when the
// server started, and a server that died is named, reaped and refuses further work.
#include "mpdemo/sys/fd.hpp"
#include "mpdemo/sys/spawn.hpp"
#include "mpdemo/sys/topology.hpp"
#include "support/run_program.hpp"
#include "support/seccomp.hpp"

#include <gtest/gtest.h>

#include <pthread.h>

#include <fcntl.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

namespace {

// Changed after the server started: its children must see the value from before.
int g_generation = 1;

struct ChildFacts {
  pid_t parent = 0;
  int generation = 0;
  int cpu = -1;
  int reporter = -1;           // the descriptor these facts came through
  std::array<int, 64> open{};  // descriptors 0..63 open in the child
};

ChildFacts facts_from(mpdemo::ForkServer& server, const mpdemo::SpawnOptions& extra = {}) {
  mpdemo::Pipe report = mpdemo::Pipe::create();
  mpdemo::SpawnOptions options = extra;
  options.keep_descriptors.push_back(report.write_end.get());
  const int out = report.write_end.get();
  mpdemo::ChildProcess child = server.spawn("a reporting child", options, [out]() noexcept {
    ChildFacts facts;
    facts.parent = ::getppid();
    facts.generation = g_generation;
    facts.cpu = ::sched_getcpu();
    facts.reporter = out;
    for (std::size_t fd = 0; fd < facts.open.size(); ++fd)
      facts.open[fd] = ::fcntl(static_cast<int>(fd), F_GETFD) != -1;
    return mpdemo::write_whole(out, &facts, sizeof facts) ? 0 : 1;
  });
  report.write_end.reset();
  ChildFacts facts;
  EXPECT_EQ(mpdemo::read_whole(report.read_end.get(), &facts, sizeof facts), mpdemo::ReadOutcome::complete);
  const mpdemo::ExitStatus status = child.wait();  // waitpid works: the child is ours
  EXPECT_TRUE(status.success()) << status.str();
  return facts;
}

TEST(ForkServer, ItsChildrenAreThisProcesssAndLeaveWithTheBodysStatus) {
  if (!mpdemo::ForkServer::supported()) GTEST_SKIP() << "no fork server on this machine (ForkServer::supported)";
  mpdemo::ForkServer server;
  EXPECT_NE(server.pid(), ::getpid());
  const ChildFacts facts = facts_from(server);
  EXPECT_EQ(facts.parent, ::getpid()) << "the child's parent is the server, not this process";

  mpdemo::ChildProcess child = server.spawn("a child", {}, []() noexcept { return 7; });
  const mpdemo::ExitStatus status = child.wait();
  ASSERT_TRUE(status.exited()) << status.str();
  EXPECT_EQ(status.exit_code(), 7);
}

TEST(ForkServer, AChildIsACopyOfThisProcessAsItWasWhenTheServerStarted) {
  if (!mpdemo::ForkServer::supported()) GTEST_SKIP() << "no fork server on this machine (ForkServer::supported)";
  g_generation = 1;
  mpdemo::ForkServer server;
  g_generation = 2;
  EXPECT_EQ(facts_from(server).generation, 1);
  g_generation = 1;
}

TEST(ForkServer, DescriptorsKeepTheirNumbersAndNoOtherReachesTheChild) {
  if (!mpdemo::ForkServer::supported()) GTEST_SKIP() << "no fork server on this machine (ForkServer::supported)";
  mpdemo::ForkServer server;
  // Made after the server: the child can have it only if it was sent. Nothing else may reach the child
  // either: not the server's socket, not the descriptors it received, not the pid report.
  mpdemo::Pipe kept = mpdemo::Pipe::create();
  mpdemo::SpawnOptions options;
  options.keep_descriptors = {kept.write_end.get()};
  const ChildFacts facts = facts_from(server, options);
  const auto kept_number = static_cast<std::size_t>(kept.write_end.get());
  EXPECT_EQ(facts.open[kept_number], 1) << "a descriptor sent did not arrive under its number";
  for (std::size_t fd = 3; fd < facts.open.size(); ++fd) {
    if (fd == kept_number || static_cast<int>(fd) == facts.reporter) continue;
    EXPECT_EQ(facts.open[fd], 0) << "descriptor " << fd << " was open in the child without being given";
  }
  // What was written to the kept number arrives here: it is the same pipe, not another one.
  const int to = kept.write_end.get();
  mpdemo::ChildProcess child =
      server.spawn("a writer", options, [to]() noexcept { return mpdemo::write_whole(to, "ok", 2) ? 0 : 1; });
  kept.write_end.reset();
  std::array<char, 2> word{};
  ASSERT_EQ(mpdemo::read_whole(kept.read_end.get(), word.data(), word.size()), mpdemo::ReadOutcome::complete);
  EXPECT_EQ(std::string(word.data(), word.size()), "ok");
  EXPECT_TRUE(child.wait().success());
}

// A kept descriptor keeps FD_CLOEXEC as it was in the parent (as spawn()'s children keep theirs): a
// child that runs a program must not hand the pool's pipes to it. A redirection's source is closed
// once it is on 0-2, unless it was also asked to be kept.
TEST(ForkServer, DescriptorsKeepTheirCloseOnExecAndARedirectionsSourceIsClosed) {
  if (!mpdemo::ForkServer::supported()) GTEST_SKIP() << "no fork server on this machine (ForkServer::supported)";
  mpdemo::ForkServer server;
  mpdemo::Pipe report = mpdemo::Pipe::create();  // O_CLOEXEC, as every pipe of mpdemo's
  mpdemo::Pipe inheritable = mpdemo::Pipe::create();
  ASSERT_EQ(::fcntl(inheritable.write_end.get(), F_SETFD, 0), 0);
  mpdemo::Pipe output = mpdemo::Pipe::create();
  mpdemo::SpawnOptions options;
  options.keep_descriptors = {report.write_end.get(), inheritable.write_end.get()};
  options.stdout_to = output.write_end.get();
  const int out = report.write_end.get();
  const int plain = inheritable.write_end.get();
  const int source = output.write_end.get();
  mpdemo::ChildProcess child = server.spawn("a child", options, [out, plain, source]() noexcept {
    const std::array<int, 3> facts{(::fcntl(out, F_GETFD) & FD_CLOEXEC) != 0,
                                   (::fcntl(plain, F_GETFD) & FD_CLOEXEC) != 0, ::fcntl(source, F_GETFD) != -1};
    if (!mpdemo::write_whole(1, "on stdout", 9)) return 1;
    return mpdemo::write_whole(out, facts.data(), sizeof facts) ? 0 : 1;
  });
  report.write_end.reset();
  output.write_end.reset();
  std::array<int, 3> facts{};
  ASSERT_EQ(mpdemo::read_whole(report.read_end.get(), facts.data(), sizeof facts), mpdemo::ReadOutcome::complete);
  EXPECT_EQ(facts[0], 1) << "a close-on-exec descriptor lost its flag in the child";
  EXPECT_EQ(facts[1], 0) << "a descriptor without the flag gained it in the child";
  EXPECT_EQ(facts[2], 0) << "the redirection's source stayed open in the child";
  std::array<char, 9> written{};
  ASSERT_EQ(mpdemo::read_whole(output.read_end.get(), written.data(), written.size()), mpdemo::ReadOutcome::complete);
  EXPECT_EQ(std::string(written.data(), written.size()), "on stdout");
  EXPECT_TRUE(child.wait().success());
}

// glibc's idea of the calling thread (pthread_self()) is the child's own, as after glibc's fork: a
// child that pins "itself" through it pins itself, not the server (which every later child would
// then inherit).
TEST(ForkServer, AChildsPthreadSelfIsTheChildNotTheServer) {
  if (!mpdemo::ForkServer::supported()) GTEST_SKIP() << "no fork server on this machine (ForkServer::supported)";
  const std::vector<int>& cpus = mpdemo::system_topology().allowed_cpus;
  if (cpus.size() < 2) GTEST_SKIP() << "needs two CPUs to tell a pinned thread from one that is not";
  mpdemo::ForkServer server;
  cpu_set_t before;
  ASSERT_EQ(::sched_getaffinity(server.pid(), sizeof before, &before), 0);
  mpdemo::Pipe report = mpdemo::Pipe::create();
  mpdemo::SpawnOptions options;
  options.keep_descriptors = {report.write_end.get()};
  const int out = report.write_end.get();
  const int cpu = cpus.back();
  mpdemo::ChildProcess child = server.spawn("a child pinning itself", options, [out, cpu]() noexcept {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(static_cast<std::size_t>(cpu), &one);
    const int error = ::pthread_setaffinity_np(::pthread_self(), sizeof one, &one);
    cpu_set_t now;
    const int alone = ::sched_getaffinity(0, sizeof now, &now) == 0 && CPU_COUNT(&now) == 1 &&
                      CPU_ISSET(static_cast<std::size_t>(cpu), &now);
    const std::array<int, 2> facts{error, alone};
    return mpdemo::write_whole(out, facts.data(), sizeof facts) ? 0 : 1;
  });
  report.write_end.reset();
  std::array<int, 2> facts{};
  ASSERT_EQ(mpdemo::read_whole(report.read_end.get(), facts.data(), sizeof facts), mpdemo::ReadOutcome::complete);
  EXPECT_TRUE(child.wait().success());
  EXPECT_EQ(facts[0], 0) << "pthread_setaffinity_np(pthread_self()) failed in the child";
  EXPECT_EQ(facts[1], 1) << "the child's pthread_self() did not name the child";
  cpu_set_t after;
  ASSERT_EQ(::sched_getaffinity(server.pid(), sizeof after, &after), 0);
  EXPECT_TRUE(CPU_EQUAL(&before, &after)) << "the child's pthread_self() pinned the server";
}

TEST(ForkServer, PinsTheChildWhereItIsAsked) {
  if (!mpdemo::ForkServer::supported()) GTEST_SKIP() << "no fork server on this machine (ForkServer::supported)";
  mpdemo::ForkServer server;
  for (const int cpu : mpdemo::system_topology().allowed_cpus) {
    mpdemo::SpawnOptions options;
    options.cpu = cpu;
    options.cpu_required = true;
    EXPECT_EQ(facts_from(server, options).cpu, cpu);
  }
}

// What each child of spawn_each reports: which order's body it ran, and what it was given.
struct OrderFacts {
  int order = -1;
  pid_t parent = 0;
  int cpu = -1;
  std::array<int, 64> open{};  // descriptors 0..63 open in the child
};

// Several children asked for at once are each made from their own order: their own body, CPU and
// descriptors (not another order's, though all were open here when the first child was made), in
// the order asked, and all are this process's.
TEST(ForkServer, SpawnEachMakesEveryChildFromItsOwnOrderInOrder) {
  if (!mpdemo::ForkServer::supported()) GTEST_SKIP() << "no fork server on this machine (ForkServer::supported)";
  const std::vector<int>& cpus = mpdemo::system_topology().allowed_cpus;
  mpdemo::ForkServer server;
  const auto body_for = [](int order, int out) {
    return [order, out]() noexcept {
      OrderFacts facts;
      facts.order = order;
      facts.parent = ::getppid();
      facts.cpu = ::sched_getcpu();
      for (std::size_t fd = 0; fd < facts.open.size(); ++fd)
        facts.open[fd] = ::fcntl(static_cast<int>(fd), F_GETFD) != -1;
      return mpdemo::write_whole(out, &facts, sizeof facts) ? 0 : 1;
    };
  };
  using Body = decltype(body_for(0, -1));
  constexpr std::size_t kChildren = 3;
  std::vector<mpdemo::Pipe> reports;
  std::vector<mpdemo::SpawnOrder<Body>> orders;
  for (std::size_t k = 0; k < kChildren; ++k) reports.push_back(mpdemo::Pipe::create());
  for (std::size_t k = 0; k < kChildren; ++k) {
    mpdemo::SpawnOptions options;
    options.cpu = cpus[k % cpus.size()];
    options.cpu_required = true;
    options.keep_descriptors = {reports[k].write_end.get()};
    orders.push_back(
        {"child " + std::to_string(k), options, body_for(static_cast<int>(k), reports[k].write_end.get())});
  }
  std::vector<mpdemo::ChildProcess> children = server.spawn_each(orders);
  ASSERT_EQ(children.size(), kChildren);
  EXPECT_EQ(server.children_forked(), kChildren);
  for (mpdemo::Pipe& report : reports) report.write_end.reset();
  for (std::size_t k = 0; k < kChildren; ++k) {
    OrderFacts facts;
    ASSERT_EQ(mpdemo::read_whole(reports[k].read_end.get(), &facts, sizeof facts), mpdemo::ReadOutcome::complete)
        << "child " << k << " did not report through its own descriptor";
    EXPECT_EQ(facts.order, static_cast<int>(k)) << "child " << k << " ran another order's body";
    EXPECT_EQ(facts.parent, ::getpid());
    EXPECT_EQ(facts.cpu, orders[k].options.cpu) << "child " << k << " is not on its order's CPU";
    for (std::size_t other = 0; other < kChildren; ++other) {
      const auto number = static_cast<std::size_t>(orders[other].options.keep_descriptors.front());
      EXPECT_EQ(facts.open[number], other == k ? 1 : 0) << "child " << k << ", descriptor of order " << other;
    }
    const mpdemo::ExitStatus status = children[k].wait();  // the k-th child returned is the k-th order's
    EXPECT_TRUE(status.success()) << "child " << k << " " << status.str();
  }
}

// An order that cannot be sent (a descriptor too many) fails the whole call before the server is
// asked for anything: no child is made for the orders before it, which would otherwise run unowned.
TEST(ForkServer, SpawnEachAsksForNothingWhenOneOrderCannotBeSent) {
  if (!mpdemo::ForkServer::supported()) GTEST_SKIP() << "no fork server on this machine (ForkServer::supported)";
  mpdemo::ForkServer server;
  mpdemo::Pipe held = mpdemo::Pipe::create();  // the first child would hold its write end
  std::vector<mpdemo::Pipe> extra(mpdemo::kMaxServedDescriptors + 1);
  for (mpdemo::Pipe& pipe : extra) pipe = mpdemo::Pipe::create();
  const auto body = []() noexcept {
    ::pause();
    return 0;
  };
  std::vector<mpdemo::SpawnOrder<decltype(body)>> orders(2, {"a child", {}, body});
  orders[0].options.keep_descriptors = {held.write_end.get()};
  orders[1].role = "a child with too many descriptors";
  for (const mpdemo::Pipe& pipe : extra) orders[1].options.keep_descriptors.push_back(pipe.write_end.get());
  try {
    static_cast<void>(server.spawn_each(orders));
    FAIL() << "an order with too many descriptors was sent";
  } catch (const std::invalid_argument& error) {
    EXPECT_NE(std::string(error.what()).find("fork a child with too many descriptors"), std::string::npos)
        << error.what();
  }
  EXPECT_EQ(server.children_forked(), 0U);
  // No child holds the first order's descriptor: end-of-file at once.
  held.write_end.reset();
  pollfd readable{held.read_end.get(), POLLIN, 0};
  ASSERT_EQ(::poll(&readable, 1, 5000), 1) << "a child of the first order holds its descriptor";
  char byte = 0;
  EXPECT_EQ(::read(held.read_end.get(), &byte, 1), 0);
  // The server is still in step: the next request is answered with its own child.
  EXPECT_TRUE(server.spawn("a child after", {}, []() noexcept { return 0; }).wait().success());
}

// A team larger than the socket's buffers hold, asked for at once, does not hang: sent all before any
// answer is read, the server would block on an answer this process does not read, while this process
// blocks on an order the server does not read (it hung at 500 children on the project's VM).
TEST(ForkServer, SpawnEachOfMoreChildrenThanTheSocketHoldsDoesNotHang) {
  if (!mpdemo::ForkServer::supported()) GTEST_SKIP() << "no fork server on this machine (ForkServer::supported)";
  mpdemo::ForkServer server;
  const auto body = []() noexcept { return 0; };
  constexpr std::size_t kChildren = 600;
  const std::vector<mpdemo::SpawnOrder<decltype(body)>> orders(kChildren, {"a child", {}, body});
  std::vector<mpdemo::ChildProcess> children;
  try {
    children = server.spawn_each(orders);
  } catch (const std::system_error& error) {
    if (error.code() == std::errc::resource_unavailable_try_again) GTEST_SKIP() << "too few processes allowed here";
    throw;
  }
  ASSERT_EQ(children.size(), kChildren);
  for (mpdemo::ChildProcess& child : children) EXPECT_TRUE(child.wait().success());
}

TEST(ForkServer, AServerThatDiedIsNamedReapedAndAsksForNothingMore) {
  if (!mpdemo::ForkServer::supported()) GTEST_SKIP() << "no fork server on this machine (ForkServer::supported)";
  mpdemo::ForkServer server;
  const pid_t server_pid = server.pid();
  ASSERT_EQ(::kill(server_pid, SIGKILL), 0);
  try {
    static_cast<void>(server.spawn("a child", {}, []() noexcept { return 0; }));
    FAIL() << "a dead server forked a child";
  } catch (const std::runtime_error& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("fork server (pid " + std::to_string(server_pid) + ") is gone"), std::string::npos)
        << message;
    EXPECT_NE(message.find("killed by signal 9 (SIGKILL)"), std::string::npos) << message;
  }
  // Reaped: no zombie is left behind it.
  errno = 0;
  EXPECT_EQ(::waitpid(server_pid, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
  EXPECT_THROW(static_cast<void>(server.spawn("another child", {}, []() noexcept { return 0; })), std::runtime_error);
}

// A server that stops answering (here: stopped) does not hang its caller: the request gives up after
// the answer's deadline, kills and reaps the server, says so, and leaves no child of this process.
TEST(ForkServer, AServerThatDoesNotAnswerIsKilledAndNamedWithinTheDeadline) {
  if (!mpdemo::ForkServer::supported()) GTEST_SKIP() << "no fork server on this machine (ForkServer::supported)";
  mpdemo::ForkServer server;
  const pid_t server_pid = server.pid();
  ASSERT_EQ(::kill(server_pid, SIGSTOP), 0);
  const auto asked = std::chrono::steady_clock::now();
  try {
    static_cast<void>(server.spawn("a child", {}, []() noexcept { return 0; }));
    FAIL() << "a stopped server forked a child";
  } catch (const std::runtime_error& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("fork a child: the fork server (pid " + std::to_string(server_pid) +
                           ") is gone: did not answer within 10 s, and was killed"),
              std::string::npos)
        << message;
  }
  const auto waited = std::chrono::steady_clock::now() - asked;
  EXPECT_GE(waited, std::chrono::seconds(10));
  EXPECT_LT(waited, std::chrono::seconds(30));
  // Nothing is left: neither the server nor a child (a zombie would still be waitable).
  EXPECT_TRUE(mpdemo::testing::no_child_left());
  try {
    static_cast<void>(server.spawn("another child", {}, []() noexcept { return 0; }));
    FAIL() << "a server that was killed forked a child";
  } catch (const std::runtime_error& error) {
    EXPECT_NE(std::string(error.what())
                  .find("fork another child: the fork server (pid " + std::to_string(server_pid) +
                        ") is gone: did not answer"),
              std::string::npos)
        << error.what();
  }
}

// A server that never says it is ready (here: stopped the moment it is forked) does not hang the
// process making it: after the answer's deadline it is killed and reaped, and the error says so.
TEST(ForkServer, AServerThatNeverSaysItIsReadyIsKilledAndNamedWithinTheDeadline) {
  if (!mpdemo::ForkServer::supported()) GTEST_SKIP() << "no fork server on this machine (ForkServer::supported)";
  const auto asked = std::chrono::steady_clock::now();
  try {
    const mpdemo::testing::StopNewChildren stopped;
    mpdemo::ForkServer server;
    FAIL() << "a stopped server was taken for a ready one";
  } catch (const std::runtime_error& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("start a fork server (pid "), std::string::npos) << message;
    EXPECT_NE(message.find("): it did not say it was ready within 10 s, and was killed"), std::string::npos) << message;
  }
  const auto waited = std::chrono::steady_clock::now() - asked;
  EXPECT_GE(waited, std::chrono::seconds(10));
  EXPECT_LT(waited, std::chrono::seconds(30));
  EXPECT_TRUE(mpdemo::testing::no_child_left()) << "the stopped server was left behind";
}

// die_with_parent holds for a server's children too: the parent that made the server dies, and the
// child it had from the server goes with it instead of running on.
TEST(ForkServer, ChildrenDieWithTheProcessThatMadeTheServer) {
  if (!mpdemo::ForkServer::supported()) GTEST_SKIP() << "no fork server on this machine (ForkServer::supported)";
  mpdemo::Pipe report = mpdemo::Pipe::create();
  const int out = report.write_end.get();
  mpdemo::SpawnOptions middle_options;
  middle_options.keep_descriptors = {out};
  mpdemo::ChildProcess middle = mpdemo::spawn("a parent of a server", middle_options, [out]() noexcept {
    try {
      mpdemo::ForkServer server;
      mpdemo::ChildProcess sleeper = server.spawn("a sleeper", {}, []() noexcept {
        ::pause();
        return 0;
      });
      const pid_t pid = sleeper.pid();
      if (!mpdemo::write_whole(out, &pid, sizeof pid)) return 1;
      ::pause();  // until killed
    } catch (...) {
      return 2;
    }
    return 0;
  });
  report.write_end.reset();
  pid_t sleeper = 0;
  ASSERT_EQ(mpdemo::read_whole(report.read_end.get(), &sleeper, sizeof sleeper), mpdemo::ReadOutcome::complete);
  const int handle = static_cast<int>(::syscall(SYS_pidfd_open, sleeper, 0));
  ASSERT_GE(handle, 0) << "pidfd_open: " << std::strerror(errno);
  mpdemo::FileDescriptor sleeper_handle = mpdemo::FileDescriptor::adopt(handle);
  ASSERT_TRUE(middle.send_signal(SIGKILL));
  static_cast<void>(middle.wait());
  pollfd ended{sleeper_handle.get(), POLLIN, 0};
  const bool gone = ::poll(&ended, 1, 5000) == 1;
  EXPECT_TRUE(gone) << "the server's child outlived the process that made the server";
  if (!gone) ::syscall(SYS_pidfd_send_signal, sleeper_handle.get(), SIGKILL, nullptr, 0);  // leave nothing behind
}

// Failures a server or this process meets only on a bad day, made for real by seccomp filters. A
// filter is for good, so each test runs in a child of its own, which makes its own server, asks it
// for a child and tells what it saw: its exit status a verdict, and the error it caught.
enum Verdict : int { kHeld = 0, kNoFilter = 10, kForked, kChildLeft };

// In a checker: makes a server, runs `before_asking` (false: it could not install its filter), asks the
// server for a child that sleeps, and writes the error that answered to `report`.
int ask_a_new_server_for_a_sleeper(int report, bool (*before_asking)()) noexcept {
  try {
    mpdemo::ForkServer server;
    if (!before_asking()) return kNoFilter;
    static_cast<void>(server.spawn("a sleeper", {}, []() noexcept {
      ::pause();
      return 0;
    }));
    return kForked;
  } catch (const std::exception& error) {
    static_cast<void>(mpdemo::write_whole(report, error.what(), std::strlen(error.what())));
  }
  return mpdemo::testing::no_child_left() ? kHeld : kChildLeft;
}

// Whether the checker could not install its filter (the test is then skipped: no seccomp here).
bool had_no_filter(const mpdemo::testing::ChildVerdict& verdict) {
  return verdict.status.exited() && verdict.status.exit_code() == kNoFilter;
}

void expect_held(const mpdemo::testing::ChildVerdict& verdict) {
  ASSERT_TRUE(verdict.status.exited()) << verdict.status.str() << "; it said: " << verdict.said;
  EXPECT_NE(verdict.status.exit_code(), kForked) << "the request succeeded despite the failure";
  EXPECT_NE(verdict.status.exit_code(), kChildLeft) << "a child was left behind; the error: " << verdict.said;
  EXPECT_EQ(verdict.status.exit_code(), kHeld);
}

// Before a server that a filter kills is made: it dies of SIGSYS, whose default is a core dump, which
// neither a core file nor a crash reporter should receive (a pipe in core_pattern ignores RLIMIT_CORE).
void no_core_dumps() noexcept {
  const rlimit no_core{0, 0};
  ::setrlimit(RLIMIT_CORE, &no_core);
  ::prctl(PR_SET_DUMPABLE, 0);  // the server inherits both
}

// The server dies after its clone and before its answer: the child it made is this process's (the
// server clones it with CLONE_PARENT), known only by the pid the child reported first of all. The
// request reads that pid, kills and reaps the child, and names the server's death. The filter kills
// any process that send()s 8 bytes: only the server's answer is that long (ServedReply, a pid and an
// errno); its hello and the child's pid report are 4.
TEST(ForkServer, AServerThatDiesBetweenItsCloneAndItsAnswerLeavesNoChild) {
  if (!mpdemo::ForkServer::supported()) GTEST_SKIP() << "no fork server on this machine (ForkServer::supported)";
  const auto verdict = mpdemo::testing::run_in_child("a process whose server dies", [](int report) noexcept {
    constexpr std::uint32_t kAnswerBytes = sizeof(pid_t) + sizeof(int);
    no_core_dumps();
    if (!mpdemo::testing::install_seccomp_filter({{SYS_sendto, SECCOMP_RET_KILL_PROCESS, 2, kAnswerBytes}})) {
      return int{kNoFilter};
    }
    // The filter is the server's too: it inherits it.
    return ask_a_new_server_for_a_sleeper(report, [] { return true; });
  });
  if (had_no_filter(verdict)) GTEST_SKIP() << "no seccomp filter here";
  ASSERT_NO_FATAL_FAILURE(expect_held(verdict));
  EXPECT_NE(verdict.said.find("fork a sleeper: the fork server (pid "), std::string::npos) << verdict.said;
  EXPECT_NE(verdict.said.find("is gone: killed by signal 31 (SIGSYS)"), std::string::npos) << verdict.said;
}

// A server that dies before it says it is ready (killed as it sends its hello, the only 4-byte send()
// before any child is asked for): its making fails at once, names how it ended, and leaves no child.
TEST(ForkServer, AServerThatDiesBeforeItSaysItIsReadyIsNamedAndReaped) {
  if (!mpdemo::ForkServer::supported()) GTEST_SKIP() << "no fork server on this machine (ForkServer::supported)";
  const auto verdict = mpdemo::testing::run_in_child("a process whose server dies at once", [](int report) noexcept {
    no_core_dumps();
    if (!mpdemo::testing::install_seccomp_filter({{SYS_sendto, SECCOMP_RET_KILL_PROCESS, 2, sizeof(int)}})) {
      return int{kNoFilter};
    }
    return ask_a_new_server_for_a_sleeper(report, [] { return true; });
  });
  if (had_no_filter(verdict)) GTEST_SKIP() << "no seccomp filter here";
  ASSERT_NO_FATAL_FAILURE(expect_held(verdict));
  EXPECT_NE(verdict.said.find("start a fork server (pid "), std::string::npos) << verdict.said;
  EXPECT_NE(verdict.said.find("): it did not say it was ready, and is gone: killed by signal 31 (SIGSYS)"),
            std::string::npos)
      << verdict.said;
}

// An order that cannot be sent, for a reason other than a dead server (here: no buffer space): the
// error names what was being asked and why, no child is made, and the server leaves when its owner
// does.
TEST(ForkServer, AnOrderThatCannotBeSentIsNamedAndMakesNoChild) {
  if (!mpdemo::ForkServer::supported()) GTEST_SKIP() << "no fork server on this machine (ForkServer::supported)";
  const auto verdict = mpdemo::testing::run_in_child("a process that cannot send", [](int report) noexcept {
    // The filter comes after the server has started: its hello and its answers are not refused.
    return ask_a_new_server_for_a_sleeper(report, [] {
      return mpdemo::testing::install_seccomp_filter({{SYS_sendmsg, SECCOMP_RET_ERRNO | ENOBUFS}});
    });
  });
  if (had_no_filter(verdict)) GTEST_SKIP() << "no seccomp filter here";
  ASSERT_NO_FATAL_FAILURE(expect_held(verdict));
  EXPECT_NE(verdict.said.find("ask the fork server to fork a sleeper: " + std::string(std::strerror(ENOBUFS))),
            std::string::npos)
      << verdict.said;
}

}  // namespace
