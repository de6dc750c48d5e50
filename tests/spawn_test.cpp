// spawn(), the one place mpdemo forks, and the child-safe pipe primitives every child uses: a child
// runs where it was asked to, keeps only the descriptors it was given, leaves with its body's status,
// and a message is read whole, or its absence or tearing is told apart.
#include "mpdemo/sys/spawn.hpp"
#include "mpdemo/sys/fd.hpp"
#include "mpdemo/sys/proc_files.hpp"
#include "mpdemo/sys/topology.hpp"
#include "support/run_program.hpp"
#include "support/seccomp.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <elf.h>
#include <fcntl.h>
#include <grp.h>
#include <link.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

namespace {

TEST(Spawn, TheBodysReturnValueIsTheExitStatus) {
  mpdemo::ChildProcess child = mpdemo::spawn("a child", {}, []() noexcept { return 7; });
  const mpdemo::ExitStatus status = child.wait();
  ASSERT_TRUE(status.exited()) << status.str();
  EXPECT_EQ(status.exit_code(), 7);
}

TEST(Spawn, PinsTheChildToTheCpuAskedForAndItRunsThere) {
  for (const int cpu : mpdemo::system_topology().allowed_cpus) {
    mpdemo::Pipe report = mpdemo::Pipe::create();
    mpdemo::SpawnOptions options;
    options.cpu = cpu;
    options.cpu_required = true;
    options.keep_descriptors = {report.write_end.get()};
    const int out = report.write_end.get();
    mpdemo::ChildProcess child = mpdemo::spawn("a pinned child", options, [out]() noexcept {
      const int ran_on = ::sched_getcpu();
      return mpdemo::write_whole(out, &ran_on, sizeof ran_on) ? 0 : 1;
    });
    report.write_end.reset();
    int ran_on = -1;
    ASSERT_EQ(mpdemo::read_whole(report.read_end.get(), &ran_on, sizeof ran_on), mpdemo::ReadOutcome::complete);
    EXPECT_EQ(ran_on, cpu);
    EXPECT_TRUE(child.wait().success());
  }
}

TEST(Spawn, ARequiredPinTheKernelRefusesEndsTheChildWithItsOwnStatus) {
  mpdemo::SpawnOptions options;
  options.cpu = CPU_SETSIZE - 1;  // not a CPU this machine has
  options.cpu_required = true;
  mpdemo::ChildProcess child = mpdemo::spawn("a child pinned nowhere", options, []() noexcept { return 0; });
  const mpdemo::ExitStatus status = child.wait();
  ASSERT_TRUE(status.exited()) << status.str();
  EXPECT_EQ(status.exit_code(), mpdemo::kSpawnPinFailed);
  // Not required: the child runs anyway, wherever it may.
  options.cpu_required = false;
  EXPECT_TRUE(mpdemo::spawn("a child", options, []() noexcept { return 0; }).wait().success());
}

TEST(Spawn, TheChildKeepsOnlyTheDescriptorsItWasGiven) {
  mpdemo::Pipe kept = mpdemo::Pipe::create();
  mpdemo::Pipe other = mpdemo::Pipe::create();
  mpdemo::SpawnOptions options;
  options.keep_descriptors = {kept.write_end.get()};
  const int kept_fd = kept.write_end.get();
  const int other_fd = other.write_end.get();
  mpdemo::ChildProcess child = mpdemo::spawn("a child", options, [kept_fd, other_fd]() noexcept {
    const std::array<int, 2> open{::fcntl(kept_fd, F_GETFD) != -1, ::fcntl(other_fd, F_GETFD) != -1};
    return mpdemo::write_whole(kept_fd, open.data(), sizeof open) ? 0 : 1;
  });
  kept.write_end.reset();
  std::array<int, 2> open{};
  ASSERT_EQ(mpdemo::read_whole(kept.read_end.get(), open.data(), sizeof open), mpdemo::ReadOutcome::complete);
  EXPECT_EQ(open[0], 1) << "the kept descriptor was closed";
  EXPECT_EQ(open[1], 0) << "a descriptor the child was not given stayed open";
  EXPECT_TRUE(child.wait().success());
}

TEST(Spawn, TheChildKeepsDescriptorsGivenInAnyOrderAndClosesThoseBetweenThem) {
  std::array<mpdemo::Pipe, 4> pipes{mpdemo::Pipe::create(), mpdemo::Pipe::create(), mpdemo::Pipe::create(),
                                    mpdemo::Pipe::create()};
  std::array<int, 8> fds{};
  for (std::size_t i = 0; i < pipes.size(); ++i) {
    fds[2 * i] = pipes[i].read_end.get();
    fds[2 * i + 1] = pipes[i].write_end.get();
  }
  std::sort(fds.begin(), fds.end());
  // Every other descriptor kept, highest first: those between the kept ones must still be closed.
  mpdemo::SpawnOptions options;
  for (std::size_t i = fds.size(); i >= 2; i -= 2) options.keep_descriptors.push_back(fds[i - 1]);
  mpdemo::Pipe report = mpdemo::Pipe::create();
  options.keep_descriptors.push_back(report.write_end.get());
  const int out = report.write_end.get();
  mpdemo::ChildProcess child = mpdemo::spawn("a child", options, [fds, out]() noexcept {
    std::array<int, 8> open{};
    for (std::size_t i = 0; i < fds.size(); ++i) open[i] = ::fcntl(fds[i], F_GETFD) != -1;
    return mpdemo::write_whole(out, open.data(), sizeof open) ? 0 : 1;
  });
  report.write_end.reset();
  std::array<int, 8> open{};
  ASSERT_EQ(mpdemo::read_whole(report.read_end.get(), open.data(), sizeof open), mpdemo::ReadOutcome::complete);
  for (std::size_t i = 0; i < fds.size(); ++i) {
    EXPECT_EQ(open[i], i % 2 == 1 ? 1 : 0) << "descriptor " << fds[i] << (i % 2 == 1 ? " was kept" : " was not kept");
  }
  EXPECT_TRUE(child.wait().success());
}

// A child that calls a function its parent never called would have the dynamic linker resolve it,
// walking symbol tables the child has not mapped: page faults, in every worker of every fresh pool.
// This build links its programs with -z now (a link option of the sys layer, for this build only):
// the program's own calls are bound when it starts, before any fork.
TEST(Spawn, AProgramLinkingTheLibraryBindsItsSymbolsBeforeItForks) {
  bool bound_now = false;
  bool found_main_program = false;
  struct Result {
    bool* bound_now;
    bool* found;
  } result{&bound_now, &found_main_program};
  ::dl_iterate_phdr(
      [](dl_phdr_info* info, std::size_t, void* data) {
        auto* out = static_cast<Result*>(data);
        *out->found = true;  // the first object listed is the program itself
        for (ElfW(Half) i = 0; i < info->dlpi_phnum; ++i) {
          if (info->dlpi_phdr[i].p_type != PT_DYNAMIC) continue;
          const auto* entry = reinterpret_cast<const ElfW(Dyn)*>(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
          for (; entry->d_tag != DT_NULL; ++entry) {
            if ((entry->d_tag == DT_FLAGS && (entry->d_un.d_val & DF_BIND_NOW) != 0) ||
                (entry->d_tag == DT_FLAGS_1 && (entry->d_un.d_val & DF_1_NOW) != 0) || entry->d_tag == DT_BIND_NOW) {
              *out->bound_now = true;
            }
          }
        }
        return 1;  // only the program
      },
      &result);
  ASSERT_TRUE(found_main_program);
  EXPECT_TRUE(bound_now) << "this test program was linked for lazy binding (no -z now)";
}

// What /proc/PID/status says of a process: its real uid and its number of threads.
struct TaskFacts {
  uid_t real_uid = static_cast<uid_t>(-1);
  std::size_t threads = 0;
};
TaskFacts task_facts(const std::filesystem::path& process) {
  const std::optional<mpdemo::ProcFields> status = mpdemo::ProcFields::read(process / "status");
  TaskFacts facts;  // a process that ended meanwhile: no uid, no threads
  if (!status) return facts;
  if (const auto uid = status->number("Uid")) facts.real_uid = static_cast<uid_t>(*uid);
  facts.threads = status->number("Threads").value_or(0);
  return facts;
}

// How many tasks (threads) user `uid` runs now, as far as this process's /proc shows (the kernel's count
// for the per-user process limit also holds tasks in other PID namespaces); nothing if /proc cannot
// be read.
std::optional<std::size_t> tasks_of_user(uid_t uid) {
  std::error_code error;
  std::filesystem::directory_iterator processes("/proc", error);
  if (error) return std::nullopt;
  std::size_t tasks = 0;
  for (const auto& entry : processes) {
    if (entry.path().filename().string().find_first_not_of("0123456789") != std::string::npos) continue;
    const TaskFacts facts = task_facts(entry.path());
    if (facts.real_uid == uid) tasks += facts.threads;
  }
  return tasks;
}

// What a refused fork in the middle of a team is checked by, run as user `uid` (which no other process
// has) under a process limit that lets it make one member of the team: its failures, "skip: why", or
// nothing when all held.
std::string make_a_refused_team(bool served, uid_t uid, pid_t test) {
  if (::setgroups(0, nullptr) != 0 || ::setgid(uid) != 0 || ::setuid(uid) != 0) {
    return fmt::format("skip: could not become user {}: {}", uid, std::strerror(errno));
  }
  // Changing its user cleared the death signal spawn() armed: armed again, so that a test killed by
  // its timeout does not leave this process behind.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != test) return "the test ended before its team was made";
  ::prctl(PR_SET_DUMPABLE, 1);  // its /proc files stay its own (not root's) after setuid
  if (tasks_of_user(uid) != 1U) return fmt::format("skip: another process runs as uid {}", uid);
  // Room for this process, the server if there is one, and one member: the second member is refused.
  const rlim_t allowed = served ? 3 : 2;
  const rlimit limit{allowed, allowed};
  if (::setrlimit(RLIMIT_NPROC, &limit) != 0) return std::string("setrlimit failed: ") + std::strerror(errno);
  std::optional<mpdemo::ForkServer> server;
  if (served) server.emplace();

  std::string failures;
  mpdemo::Pipe held = mpdemo::Pipe::create();  // every member holds its write end until it ends
  const auto body = []() noexcept {
    ::pause();
    return 0;
  };
  mpdemo::SpawnOptions options;
  options.keep_descriptors = {held.write_end.get()};
  std::vector<mpdemo::SpawnOrder<decltype(body)>> orders;
  for (int k = 0; k < 3; ++k) orders.push_back({"member " + std::to_string(k), options, body});
  try {
    static_cast<void>(mpdemo::spawn_each(orders, server ? &*server : nullptr));
    failures += "the whole team was made, past the process limit; ";
  } catch (const std::system_error& error) {
    const std::string message = error.what();
    if (error.code() != std::errc::resource_unavailable_try_again) failures += "not EAGAIN: " + message + "; ";
    const std::string says = served ? "fork member 1 (by the fork server)" : "fork member 1";
    if (message.find(says) == std::string::npos) failures += "does not name the member refused: " + message + "; ";
    const std::string limit_named = "ulimit -u = " + std::to_string(allowed);
    if (message.find(limit_named) == std::string::npos) failures += "does not name the limit: " + message + "; ";
  }
  // Member 0, made before the refusal, was killed and reaped. Without a server this process has no
  // child at all, zombies included (ECHILD); with one, the server is its only child (listed in /proc,
  // which shows that /proc could be read).
  siginfo_t any{};
  const bool none_left = served ? mpdemo::testing::children_of(::getpid()) == std::vector<pid_t>{server->pid()}
                                : ::waitid(P_ALL, 0, &any, WEXITED | WNOHANG | WNOWAIT) == -1 && errno == ECHILD;
  if (!none_left) failures += "a member made before the refusal outlived it; ";
  held.write_end.reset();
  pollfd readable{held.read_end.get(), POLLIN, 0};
  char byte = 0;
  if (::poll(&readable, 1, 5000) != 1 || ::read(held.read_end.get(), &byte, 1) != 0) {
    failures += "a member still holds the team's descriptor; ";
  }
  // The server read every answer, the refusals too: it is still in step, and there is room again.
  try {
    if (served && !server->spawn("a member after", {}, []() noexcept { return 0; }).wait().success()) {
      failures += "the server's child after the refusal failed; ";
    }
  } catch (const std::exception& error) {
    failures += std::string("the server is out of step after the refusal: ") + error.what() + "; ";
  }
  return failures;
}

// A team whose second fork the kernel refuses (the per-user process limit) is not half made: the
// member made before it is killed and reaped, and the error names the member and the limit, whether
// this process forks the team or a fork server does. The limit does not bind root, so the team is
// made in a child that becomes a uid no process has (root may take any): its own, from the test's
// pid, so that the two cases run side by side (ctest -j) do not count each other's tasks.
class RefusedFork : public ::testing::TestWithParam<bool> {};

TEST_P(RefusedFork, ATeamWhoseSecondForkIsRefusedEndsTheFirstAndNamesTheLimit) {
  const bool served = GetParam();
  if (served && !mpdemo::ForkServer::supported()) GTEST_SKIP() << "no fork server on this machine";
  if (::geteuid() != 0) GTEST_SKIP() << "needs root, to become a user whose processes the test can count";
  if (!tasks_of_user(0)) GTEST_SKIP() << "no /proc to count a user's tasks by";
  // The maker allocates and throws after fork: safe only from a process with no other thread.
  if (task_facts("/proc/self").threads != 1) GTEST_SKIP() << "this test program runs other threads";
  const pid_t test = ::getpid();
  auto uid = static_cast<uid_t>(100000 + test);
  while (tasks_of_user(uid) != 0U) ++uid;
  const mpdemo::testing::ChildVerdict verdict = mpdemo::testing::run_in_child(
      "the refused team's maker",
      [=](int report) noexcept {
        std::string failures;
        try {
          failures = make_a_refused_team(served, uid, test);
        } catch (const std::exception& error) {
          failures = std::string("threw: ") + error.what();
        }
        return mpdemo::write_whole(report, failures.data(), failures.size()) && failures.empty() ? 0 : 1;
      },
      std::chrono::seconds(30));
  if (verdict.said.starts_with("skip: ")) GTEST_SKIP() << verdict.said;
  EXPECT_EQ(verdict.said, "");
  EXPECT_TRUE(verdict.status.success()) << verdict.status.str();
}

INSTANTIATE_TEST_SUITE_P(Spawn, RefusedFork, ::testing::Values(false, true), [](const auto& param) {
  return param.param ? std::string("ByAForkServer") : std::string("ByThisProcess");
});

#if defined(__x86_64__) || defined(__aarch64__)
// In a child: from now on pidfd_open fails with ENOSYS in this process, as on a kernel before 5.3 or
// under a seccomp filter that refuses it (some container runtimes' did). Returns whether it took.
bool refuse_pidfd_open() noexcept {
  return mpdemo::testing::install_seccomp_filter({{SYS_pidfd_open, SECCOMP_RET_ERRNO | ENOSYS}}) &&
         ::syscall(SYS_pidfd_open, ::getpid(), 0) == -1 && errno == ENOSYS;
}

// Without a pidfd to poll, wait_or_kill still waits for a child that ends in time (it used to kill it
// at once), and still kills one that does not, once the time is up.
TEST(ChildProcess, WaitOrKillWaitsWhereThereIsNoPidfd) {
  enum Outcome : int { kAllHeld = 0, kNoFilter = 10, kQuickOneNotWaitedFor, kStuckOneNotKilled, kKilledEarly };
  mpdemo::ChildProcess checker = mpdemo::spawn("a process without pidfd_open", {}, []() noexcept {
    if (!refuse_pidfd_open()) return int{kNoFilter};
    mpdemo::ChildProcess quick = mpdemo::spawn("a child that ends in 100 ms", {}, []() noexcept {
      ::usleep(100'000);
      return 7;
    });
    const mpdemo::ExitStatus ended = quick.wait_or_kill(std::chrono::seconds(20));
    if (!ended.exited() || ended.exit_code() != 7) return int{kQuickOneNotWaitedFor};
    mpdemo::ChildProcess stuck = mpdemo::spawn("a child that never ends", {}, []() noexcept {
      ::pause();
      return 0;
    });
    const auto asked = std::chrono::steady_clock::now();
    const mpdemo::ExitStatus killed = stuck.wait_or_kill(std::chrono::milliseconds(200));
    if (!killed.killed() || killed.signal() != SIGKILL) return int{kStuckOneNotKilled};
    if (std::chrono::steady_clock::now() - asked < std::chrono::milliseconds(200)) return int{kKilledEarly};
    return int{kAllHeld};
  });
  const mpdemo::ExitStatus status = checker.wait_or_kill(std::chrono::seconds(40));
  ASSERT_TRUE(status.exited()) << status.str();
  if (status.exit_code() == kNoFilter) GTEST_SKIP() << "no seccomp filter here to refuse pidfd_open";
  EXPECT_NE(status.exit_code(), kQuickOneNotWaitedFor) << "a child that ended in time was killed, not waited for";
  EXPECT_NE(status.exit_code(), kStuckOneNotKilled) << "a child that did not end was not killed";
  EXPECT_NE(status.exit_code(), kKilledEarly) << "a child was killed before its time was up";
  EXPECT_EQ(status.exit_code(), kAllHeld);
}
#endif

TEST(ReadWhole, TellsACompleteMessageFromNoneAndFromATornOne) {
  std::array<char, 8> buffer{};
  {
    mpdemo::Pipe pipe = mpdemo::Pipe::create();
    ASSERT_TRUE(mpdemo::write_whole(pipe.write_end.get(), "12345678", 8));
    pipe.write_end.reset();
    EXPECT_EQ(mpdemo::read_whole(pipe.read_end.get(), buffer.data(), 8), mpdemo::ReadOutcome::complete);
    EXPECT_EQ(std::string(buffer.data(), 8), "12345678");
    EXPECT_EQ(mpdemo::read_whole(pipe.read_end.get(), buffer.data(), 8), mpdemo::ReadOutcome::end_of_file);
  }
  {
    mpdemo::Pipe pipe = mpdemo::Pipe::create();
    ASSERT_TRUE(mpdemo::write_whole(pipe.write_end.get(), "123", 3));
    pipe.write_end.reset();  // the writer "died" three bytes into an eight-byte message
    EXPECT_EQ(mpdemo::read_whole(pipe.read_end.get(), buffer.data(), 8), mpdemo::ReadOutcome::torn);
  }
  {  // The throwing form says the same: false for no message, an error for a torn one.
    mpdemo::Pipe pipe = mpdemo::Pipe::create();
    ASSERT_TRUE(mpdemo::write_whole(pipe.write_end.get(), "123", 3));
    pipe.write_end.reset();
    EXPECT_THROW(static_cast<void>(mpdemo::read_exact(pipe.read_end.get(), buffer.data(), 8)), std::system_error);
    EXPECT_FALSE(mpdemo::read_exact(pipe.read_end.get(), buffer.data(), 8));
  }
}

}  // namespace
