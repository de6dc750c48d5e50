// A ProcessPool whose workers a fork server forks (ProcessPoolOptions::fork_server, Python's
// "forkserver"): it maps as a pool that forks its own does, every call, both control paths; its
// workers are this process's children but copies of the server; what they could not have is refused
// up front; and a server that died is named when a worker must be replaced, with nothing left behind.
#include "mpdemo/pool/process_pool.hpp"
#include "mpdemo/sys/errors.hpp"
#include "mpdemo/sys/proc_files.hpp"
#include "mpdemo/sys/spawn.hpp"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cerrno>
#include <numeric>
#include <string>
#include <tuple>
#include <vector>

namespace {

using ::testing::HasSubstr;
using Control = mpdemo::ProcessPoolOptions::Control;

// Changed after the server started: a worker the server forked sees the value from before.
int g_generation = 1;

pid_t parent_of(pid_t pid) {
  const std::optional<mpdemo::ProcStat> stat = mpdemo::ProcStat::of(pid);
  return stat ? stat->parent : -1;
}

mpdemo::ProcessPoolOptions served_options(Control control, std::shared_ptr<mpdemo::ForkServer> server) {
  mpdemo::ProcessPoolOptions options;
  options.workers = 2;
  options.control = control;
  options.fork_server = std::move(server);
  return options;
}

class ForkServerPool : public ::testing::TestWithParam<Control> {};

TEST_P(ForkServerPool, MapsAsAPoolThatForksItsOwnAndItsWorkersAreCopiesOfTheServer) {
  if (!mpdemo::ForkServer::supported()) GTEST_SKIP() << "no fork server on this machine (ForkServer::supported)";
  g_generation = 1;
  const auto server = mpdemo::ProcessPool::start_fork_server();
  g_generation = 2;
  mpdemo::ProcessPool pool(served_options(GetParam(), server));
  for (const auto& pid : pool.worker_pids()) {
    ASSERT_TRUE(pid.has_value());
    EXPECT_EQ(parent_of(*pid), ::getpid()) << "a worker is not this process's child";
  }
  std::vector<double> input(100'000);
  std::iota(input.begin(), input.end(), -50'000.0);
  const std::vector<double> squares = pool.map([](double x) { return x * x; }, input);
  ASSERT_EQ(squares.size(), input.size());
  for (std::size_t i = 0; i < input.size(); ++i) ASSERT_EQ(squares[i], input[i] * input[i]) << "at " << i;
  // Values that travel serialized, and a single call.
  const std::vector<std::tuple<std::string, int>> pairs{{"ab", 3}, {"x", 0}, {"mp", 2}};
  const auto repeat = [](const std::string& s, int n) {
    std::string out;
    for (int i = 0; i < n; ++i) out += s;
    return out;
  };
  EXPECT_EQ(pool.starmap(repeat, pairs), (std::vector<std::string>{"ababab", "", "mpmp"}));
  EXPECT_EQ(pool.apply([](int a, int b) { return a + b; }, 3, 4), 7);
  // What the workers see is the server's copy of this process, from before the change.
  const std::vector<int> seen = pool.map([](int) { return g_generation; }, std::vector<int>(8, 0), 1);
  EXPECT_EQ(seen, std::vector<int>(8, 1));
  g_generation = 1;
}

TEST_P(ForkServerPool, RetiredWorkersAreForkedByTheServerToo) {
  if (!mpdemo::ForkServer::supported()) GTEST_SKIP() << "no fork server on this machine (ForkServer::supported)";
  g_generation = 1;
  const auto server = mpdemo::ProcessPool::start_fork_server();
  g_generation = 2;
  mpdemo::ProcessPoolOptions options = served_options(GetParam(), server);
  options.maxtasksperchild = 1;
  mpdemo::ProcessPool pool(options);
  const auto before = pool.worker_pids();
  const std::vector<int> seen =
      pool.map([](int x) { return g_generation * 1000 + x; }, std::vector<int>{0, 1, 2, 3, 4, 5}, 1);
  EXPECT_EQ(seen, (std::vector<int>{1000, 1001, 1002, 1003, 1004, 1005}));
  const auto after = pool.worker_pids();
  EXPECT_NE(after, before) << "maxtasksperchild=1 retired no worker";
  for (const auto& pid : after) {
    if (pid) {
      EXPECT_EQ(parent_of(*pid), ::getpid());
    }
  }
  g_generation = 1;
}

INSTANTIATE_TEST_SUITE_P(Controls, ForkServerPool, ::testing::Values(Control::shared_memory, Control::pipes),
                         [](const auto& param) { return param.param == Control::pipes ? "Pipes" : "Mailboxes"; });

TEST(ForkServerPoolOptions, AnInitializerAndAnArenaTheServerLacksAreRefusedUpFront) {
  if (!mpdemo::ForkServer::supported()) GTEST_SKIP() << "no fork server on this machine (ForkServer::supported)";
  const auto server = mpdemo::ProcessPool::start_fork_server();
  mpdemo::ProcessPoolOptions with_initializer = served_options(Control::shared_memory, server);
  with_initializer.initializer = [] {};
  try {
    mpdemo::ProcessPool pool(with_initializer);
    FAIL() << "a fork server's pool took an initializer its workers would never run";
  } catch (const mpdemo::BadArgument& error) {
    EXPECT_THAT(error.what(), HasSubstr("initializer"));
  }
  mpdemo::ProcessPoolOptions later_arena = served_options(Control::shared_memory, server);
  later_arena.arena = std::make_shared<mpdemo::SharedArena>(std::size_t{1} << 20);  // made after the server
  try {
    mpdemo::ProcessPool pool(later_arena);
    FAIL() << "a fork server's pool took an arena its workers do not have";
  } catch (const mpdemo::BadArgument& error) {
    EXPECT_THAT(error.what(), HasSubstr("arena was made after its fork server started"));
  }
  // An arena made before the server is the server's too.
  const auto early_arena = std::make_shared<mpdemo::SharedArena>(std::size_t{1} << 20);
  const auto later_server = std::make_shared<mpdemo::ForkServer>();
  mpdemo::ProcessPoolOptions early = served_options(Control::shared_memory, later_server);
  early.arena = early_arena;
  mpdemo::ProcessPool pool(early);
  EXPECT_EQ(pool.map([](int x) { return x + 1; }, std::vector<int>{1, 2, 3}), (std::vector<int>{2, 3, 4}));
}

TEST(ForkServerPoolFailure, AServerThatDiedIsNamedWhenAWorkerMustBeReplaced) {
  if (!mpdemo::ForkServer::supported()) GTEST_SKIP() << "no fork server on this machine (ForkServer::supported)";
  const auto server = mpdemo::ProcessPool::start_fork_server();
  const pid_t server_pid = server->pid();
  mpdemo::ProcessPool pool(served_options(Control::shared_memory, server));
  ASSERT_EQ(::kill(server_pid, SIGKILL), 0);
  // The workers it made are this process's and go on.
  EXPECT_EQ(pool.map([](int x) { return 2 * x; }, std::vector<int>{1, 2}), (std::vector<int>{2, 4}));
  const auto pids = pool.worker_pids();
  ASSERT_TRUE(pids[0].has_value());
  ASSERT_EQ(::kill(*pids[0], SIGKILL), 0);
  // The death is noticed at the latest by the next map, whose replacement the server cannot fork.
  bool named = false;
  for (int attempt = 0; attempt < 3 && !named; ++attempt) {
    try {
      static_cast<void>(pool.map([](int x) { return x; }, std::vector<int>(100, 1), 1));
    } catch (const mpdemo::WorkerError&) {
      // The map the dead worker was part of: the next one must replace it.
    } catch (const std::runtime_error& error) {
      EXPECT_THAT(error.what(), HasSubstr(fmt::format("the fork server (pid {}) is gone", server_pid)));
      EXPECT_THAT(error.what(), HasSubstr("killed by signal 9 (SIGKILL)"));
      named = true;
    }
  }
  EXPECT_TRUE(named) << "no map said the fork server was gone";
  errno = 0;
  EXPECT_EQ(::waitpid(server_pid, nullptr, WNOHANG), -1) << "the server was left a zombie";
  EXPECT_EQ(errno, ECHILD);
}

}  // namespace
