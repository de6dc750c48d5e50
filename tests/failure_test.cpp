// Failure paths, for real: functions that throw in a worker, workers killed by signals, a master
// killed with SIGKILL, SIGINT and SIGTERM to the mpdemo executable, pools made while threads run,
// and a thousand pools made and destroyed. Nothing may hang, leak, or leave a process behind.
#include "mpdemo/lab/kernels.hpp"
#include "mpdemo/pool/process_pool.hpp"
#include "mpdemo/pool/thread_pool.hpp"
#include "mpdemo/sys/detail/system_call.hpp"
#include "mpdemo/sys/errors.hpp"
#include "mpdemo/sys/fd.hpp"
#include "mpdemo/sys/interrupt.hpp"
#include "mpdemo/sys/proc_files.hpp"
#include "mpdemo/sys/spawn.hpp"
#include "mpdemo/sys/topology.hpp"
#include "support/pools.hpp"
#include "support/run_program.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <fmt/format.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <map>
#include <numeric>
#include <optional>
#include <thread>
#include <tuple>

namespace {

using mpdemo::testing::children_of;
using mpdemo::testing::eventually;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

std::vector<int> iota_input(int n) {
  std::vector<int> input(static_cast<std::size_t>(n));
  std::iota(input.begin(), input.end(), 0);
  return input;
}

bool process_exists(pid_t pid) { return ::kill(pid, 0) == 0 || errno != ESRCH; }

// Dead and not yet reaped: what a killed worker is until its pool notices.
bool is_zombie(pid_t pid) {
  const std::optional<mpdemo::ProcStat> stat = mpdemo::ProcStat::of(pid);
  return stat && stat->state == 'Z';
}

double monotonic_seconds() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) * 1e-9;
}

std::size_t open_descriptors() {
  std::size_t count = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) ++count;
  return count;
}

TEST(WorkerFailure, AnExceptionInAWorkerBecomesAWorkerErrorInTheMaster) {
  mpdemo::ProcessPool pool(2);
  const auto pids = pool.worker_pids();
  const auto input = iota_input(1000);
  const auto cursed = [](int x) {
    if (x == 505) throw std::runtime_error("element 505 is cursed");
    return x * 2;
  };
  try {
    (void)pool.map(cursed, input, 10);
    FAIL() << "map should have thrown";
  } catch (const mpdemo::WorkerError& e) {
    EXPECT_LT(e.worker(), 2u);
    EXPECT_EQ(e.pid(), pids[e.worker()]);
    EXPECT_EQ(e.chunk_begin(), 500u);
    EXPECT_EQ(e.chunk_end(), 510u);
    EXPECT_EQ(e.cause(), "element 505 is cursed");
    EXPECT_THAT(e.what(), HasSubstr("element 505 is cursed"));
    EXPECT_THAT(e.what(), HasSubstr(std::to_string(e.pid())));
  }
  // Still usable, with the same workers: an exception does not kill a worker.
  const auto doubled = pool.map([](int x) { return x * 2; }, input, 10);
  EXPECT_EQ(doubled[999], 1998);
  EXPECT_EQ(pool.worker_pids(), pids);
}

// The worker records when it dies (in shared memory, which outlives it), so the test can measure
// how long the master took to notice.
struct DeathStamp {
  double* when;
  int signal_number;
  int victim;
  int operator()(int x) const {
    if (x == victim) {
      *when = monotonic_seconds();
      ::raise(signal_number);
    }
    return x;
  }
};

using Control = mpdemo::ProcessPoolOptions::Control;

mpdemo::ProcessPoolOptions two_workers(Control control) {
  mpdemo::ProcessPoolOptions options;
  options.workers = 2;
  options.control = control;
  return options;
}

std::string control_name(Control control) { return control == Control::pipes ? "Pipes" : "Mailboxes"; }

// Changed after a test's fork server started: a worker that server forked sees the value from before.
int g_since_server = 0;

// Forked by this process, or by a fork server (ProcessPoolOptions::fork_server): a death is noticed,
// named and its worker replaced alike.
class WorkerKilled : public ::testing::TestWithParam<std::tuple<int, Control, bool>> {};

TEST_P(WorkerKilled, MapThrowsPromptlyNamesTheSignalAndThePoolRecovers) {
  const auto [signal_number, control, served] = GetParam();
  if (served && !mpdemo::ForkServer::supported()) GTEST_SKIP() << "no fork server on this machine";
  mpdemo::ProcessPoolOptions options = two_workers(control);
  g_since_server = 0;
  if (served) options.fork_server = mpdemo::ProcessPool::start_fork_server();
  g_since_server = 1;
  mpdemo::ProcessPool pool(options);
  const auto pids_before = pool.worker_pids();
  auto stamp = pool.make_shared_array<double>(1);
  stamp[0] = 0;
  const auto input = iota_input(2000);
  double thrown_at = 0;
  try {
    (void)pool.map(DeathStamp{stamp.data(), signal_number, 1234}, input, 10);
    FAIL() << "map should have thrown";
  } catch (const mpdemo::WorkerError& e) {
    thrown_at = monotonic_seconds();
    EXPECT_EQ(e.pid(), pids_before[e.worker()]);
    EXPECT_EQ(e.chunk_begin(), 1230u);
    EXPECT_EQ(e.chunk_end(), 1240u);
    EXPECT_THAT(e.what(),
                HasSubstr(fmt::format("killed by signal {} ({})", signal_number, mpdemo::signal_name(signal_number))));
  }
  ASSERT_GT(stamp[0], 0.0) << "the worker never reached the fatal element";
  EXPECT_LT(thrown_at - stamp[0], 0.100) << "the master took more than 100 ms to notice the death";

  // The dead worker was reaped (not a zombie: gone entirely) and replaced.
  const auto pids_after = pool.worker_pids();
  for (std::size_t w = 0; w < pids_before.size(); ++w) {
    if (pids_after[w] != pids_before[w]) {
      EXPECT_FALSE(process_exists(pids_before[w].value())) << "worker left a zombie";
    }
  }
  EXPECT_NE(pids_after, pids_before);
  const auto again = pool.map([](int x) { return x + 1; }, input, 10);
  EXPECT_EQ(again[1999], 2000);
  // The replacement came from where the first workers came from: with a server, a copy of it.
  const auto seen = pool.map([](int) { return g_since_server; }, std::vector<int>(8, 0), 1);
  EXPECT_EQ(seen, std::vector<int>(8, served ? 0 : 1));
}

INSTANTIATE_TEST_SUITE_P(Signals, WorkerKilled,
                         ::testing::Combine(::testing::Values(SIGKILL, SIGSEGV, SIGABRT),
                                            ::testing::Values(Control::shared_memory, Control::pipes),
                                            ::testing::Values(false, true)),
                         [](const auto& param) {
                           return mpdemo::signal_name(std::get<0>(param.param)).substr(3) +
                                  control_name(std::get<1>(param.param)) +
                                  (std::get<2>(param.param) ? "ForkServer" : "");
                         });

class DeathWhileBusy : public ::testing::TestWithParam<Control> {};

// With mailboxes the master only sleeps on the pipes -- where a death shows -- when no answer came
// for a while. Here one worker dies while the other answers a tiny chunk every few microseconds for
// seconds: the death must still end the map within 100 ms, not once the survivor is done.
TEST_P(DeathWhileBusy, ADeathIsNoticedWhileTheOtherWorkerKeepsAnswering) {
  mpdemo::ProcessPoolOptions options = two_workers(GetParam());
  options.spin = 10s;  // the master never sleeps: only answers, or a look at the pipes, end its waits
  mpdemo::ProcessPool pool(options);
  auto stamp = pool.make_shared_array<double>(1);
  stamp[0] = 0;
  const auto input = iota_input(400'000);
  double thrown_at = 0;
  const double started = monotonic_seconds();
  try {
    // Chunks of one element, handed out by worker region: worker 0 starts at element 0 and dies there.
    (void)pool.map(DeathStamp{stamp.data(), SIGKILL, 0}, input, 1);
    FAIL() << "map should have thrown";
  } catch (const mpdemo::WorkerError& e) {
    thrown_at = monotonic_seconds();
    EXPECT_EQ(e.chunk_begin(), 0u);
    EXPECT_THAT(e.what(), HasSubstr("SIGKILL"));
  }
  ASSERT_GT(stamp[0], 0.0) << "the worker never reached the fatal element";
  EXPECT_LT(thrown_at - stamp[0], 0.100) << "the master noticed the death only after " << thrown_at - started
                                         << " s, once the survivor had run out of chunks";
  EXPECT_EQ(pool.map([](int x) { return x + 1; }, iota_input(100), 10)[99], 100);
}

// Spinning for long, the workers still see the pool stop at once (and the master a death).
TEST_P(DeathWhileBusy, APoolThatSpinsForLongStillStopsAtOnce) {
  mpdemo::ProcessPoolOptions options = two_workers(GetParam());
  options.spin = 10s;
  const double started = monotonic_seconds();
  {
    mpdemo::ProcessPool pool(options);
    EXPECT_EQ(pool.map([](int x) { return x * 7; }, iota_input(1000), 10)[999], 6993);
  }
  EXPECT_LT(monotonic_seconds() - started, 0.9) << "the workers waited out their spin (or the 1 s stop grace)";
}

INSTANTIATE_TEST_SUITE_P(Controls, DeathWhileBusy, ::testing::Values(Control::shared_memory, Control::pipes),
                         [](const auto& param) { return control_name(param.param); });

// A real invalid memory access, not raise(): address 8 is never mapped. (Read from a volatile so the
// compiler cannot see the address and turn the store into a trap instruction.)
volatile std::uintptr_t g_unmapped_address = 8;

int segfault_at_777(int x) {
  if (x == 777) *reinterpret_cast<volatile int*>(g_unmapped_address) = 1;
  return x;
}

TEST(WorkerFailure, FailuresOnThePipeDataPathToo) {
  mpdemo::ProcessPool pool(2);
  const auto input = iota_input(5000);
  const auto cursed = [](int x) {
    if (x == 4321) throw std::runtime_error("4321 refused");
    return x;
  };
  try {
    (void)pool.map_through_pipes(cursed, input, 100);
    FAIL() << "map should have thrown";
  } catch (const mpdemo::WorkerError& e) {
    EXPECT_EQ(e.cause(), "4321 refused");
    EXPECT_EQ(e.chunk_begin(), 4300u);
  }
  try {
    (void)pool.map_through_pipes(&segfault_at_777, input, 100);
    FAIL() << "map should have thrown";
  } catch (const mpdemo::WorkerError& e) {
    EXPECT_THAT(e.cause(), HasSubstr("SIGSEGV"));
  }
  const auto out = pool.map_through_pipes([](int x) { return x + 1; }, input, 100);
  EXPECT_EQ(out[4999], 5000);
}

TEST(WorkerFailure, ARealSegmentationFaultIsReportedAsSigsegv) {
  mpdemo::ProcessPool pool(2);
  try {
    (void)pool.map(&segfault_at_777, iota_input(1000), 100);
    FAIL() << "map should have thrown";
  } catch (const mpdemo::WorkerError& e) {
    EXPECT_THAT(e.cause(), HasSubstr("SIGSEGV"));
    EXPECT_EQ(e.chunk_begin(), 700u);
  }
  EXPECT_EQ(pool.map([](int x) { return x; }, iota_input(10))[9], 9);
}

// The worker asks for the interrupt itself, from the middle of a map: SIGINT to its master.
struct InterruptMasterAt {
  int element;
  int operator()(int x) const {
    if (x == element) ::kill(::getppid(), SIGINT);
    if (x > element) ::usleep(100);  // the rest of the map is slow: it is still running when the signal lands
    return x + 1;
  }
};

TEST(WorkerFailure, AnInterruptedMapKillsItsWorkersAndThePoolStaysCorrect) {
  mpdemo::ProcessPool pool(2);
  const auto input = iota_input(4000);
  {
    const mpdemo::InterruptGuard guard;
    const auto pids = pool.worker_pids();
    EXPECT_THROW((void)pool.map(InterruptMasterAt{100}, input, 50), mpdemo::Interrupted);
    // The workers still busy with the abandoned map were killed and reaped before the throw.
    for (const auto& pid : pids)
      EXPECT_FALSE(process_exists(pid.value())) << "worker " << *pid << " outlived the interrupt";
    mpdemo::clear_interrupt();
  }
  // Fresh workers, and no stale answer from the abandoned map finds its way into this one.
  for (int round = 0; round < 3; ++round) {
    const auto out = pool.map([](int x) { return 3 * x; }, input, 50);
    for (std::size_t i = 0; i < input.size(); ++i) ASSERT_EQ(out[i], 3 * input[i]) << i;
  }
}

class DiedIdle : public ::testing::TestWithParam<Control> {};

void expect_a_dead_idle_worker_is_replaced(const mpdemo::ProcessPoolOptions& options);

TEST_P(DiedIdle, AWorkerThatDiedWhileIdleIsReplacedWithoutSigpipe) {
  // Asleep when it died (the default spin is long over), or still spinning: then with mailboxes no
  // doorbell is rung, no write fails, and only the count of tasks it took says the chunk was untouched.
  for (const auto spin : {mpdemo::PoolOptions::kDefaultSpin, std::chrono::microseconds(10s)}) {
    SCOPED_TRACE(testing::Message() << "spin " << spin.count() << " us");
    mpdemo::ProcessPoolOptions options = two_workers(GetParam());
    options.spin = spin;
    expect_a_dead_idle_worker_is_replaced(options);
  }
}

void expect_a_dead_idle_worker_is_replaced(const mpdemo::ProcessPoolOptions& options) {
  mpdemo::ProcessPool pool(options);
  const pid_t victim = pool.worker_pids()[0].value();
  ASSERT_EQ(::kill(victim, SIGKILL), 0);
  // Wait until it is dead (a zombie, still unreaped by the pool): the next send hits a closed pipe.
  ASSERT_TRUE(eventually([&] { return is_zombie(victim); }, 5s));
  const auto input = iota_input(100);
  EXPECT_EQ(pool.map([](int x) { return x * 3; }, input, 1)[99], 297);  // would have died of SIGPIPE
  EXPECT_NE(pool.worker_pids()[0], victim);
  EXPECT_FALSE(process_exists(victim));
}

INSTANTIATE_TEST_SUITE_P(Controls, DiedIdle, ::testing::Values(Control::shared_memory, Control::pipes),
                         [](const auto& param) { return control_name(param.param); });

TEST(WorkerFailure, WorkersDieWithTheirMaster) {
  // This test process adopts orphans, so it can see what becomes of the workers.
  ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  mpdemo::Pipe report = mpdemo::Pipe::create();
  mpdemo::SpawnOptions options;
  options.keep_descriptors = {report.write_end.get()};
  mpdemo::ChildProcess master_process = mpdemo::spawn("a master", options, [&]() noexcept {
    // Never let an exception unwind into the test framework in this copy of the test process.
    try {
      mpdemo::ProcessPool pool(2);
      std::vector<pid_t> pids;
      for (const auto& pid : pool.worker_pids()) pids.push_back(pid.value());
      mpdemo::write_all(report.write_end.get(), pids.data(), pids.size() * sizeof(pid_t));
      for (;;) ::pause();  // until SIGKILL
    } catch (...) {
      return 1;
    }
  });
  report.write_end.reset();
  std::array<pid_t, 2> workers{};
  ASSERT_TRUE(mpdemo::read_exact(report.read_end.get(), workers.data(), sizeof(workers)));
  ASSERT_TRUE(master_process.send_signal(SIGKILL));
  EXPECT_TRUE(master_process.wait().killed());

  const auto killed_at = std::chrono::steady_clock::now();
  for (pid_t worker : workers) {
    int status = 0;
    // Adopted by this process: waitpid blocks until the worker is gone, or the test's timeout.
    ASSERT_EQ(::waitpid(worker, &status, 0), worker);
    EXPECT_TRUE(WIFSIGNALED(status) || WIFEXITED(status));
  }
  EXPECT_LT(std::chrono::steady_clock::now() - killed_at, 1s) << "workers outlived their master by over a second";
  ::prctl(PR_SET_CHILD_SUBREAPER, 0);
}

TEST(WorkerFailure, APoolCanBeMadeWhileThreadsRun) {
  mpdemo::ThreadPool threads(2);
  std::atomic<bool> stop{false};
  // A thread allocating all the time: a fork may catch it holding the allocator's lock.
  std::thread allocator([&] {
    while (!stop) {
      std::vector<double> churn(1000, 1.0);
      (void)threads.size();
      if (churn[999] != 1.0) std::abort();
    }
  });
  const auto input = iota_input(10000);
  for (int i = 0; i < 20; ++i) {
    mpdemo::ProcessPool pool(2);
    const auto out = pool.map([](int x) { return x * 2; }, input);
    ASSERT_EQ(out[9999], 19998);
    // Throwing allocates in the worker: it must not find the allocator locked by the thread above.
    EXPECT_THROW((void)pool.map(
                     [](int x) {
                       if (x == 7777) throw std::runtime_error(std::string(1000, 'x'));
                       return x;
                     },
                     input),
                 mpdemo::WorkerError);
    const auto from_threads = threads.map([](int x) { return x * 2; }, input);
    ASSERT_EQ(from_threads, out);
  }
  stop = true;
  allocator.join();
}

TEST(WorkerFailure, InterruptedSystemCallsAreRetried) {
  // A signal handler without SA_RESTART, fired every 200 us: every blocking call sees EINTR.
  struct sigaction action {};
  action.sa_handler = [](int) {};
  sigemptyset(&action.sa_mask);
  struct sigaction previous {};
  ASSERT_EQ(sigaction(SIGALRM, &action, &previous), 0);
  itimerval every{{0, 200}, {0, 200}};
  ASSERT_EQ(setitimer(ITIMER_REAL, &every, nullptr), 0);
  {
    mpdemo::ProcessPool pool(2);
    const auto input = iota_input(200000);
    for (int i = 0; i < 20; ++i) {
      const auto out = pool.map([](int x) { return x ^ 0x55; }, input, 100);
      ASSERT_EQ(out[123456], 123456 ^ 0x55);
    }
  }
  itimerval off{};
  setitimer(ITIMER_REAL, &off, nullptr);
  sigaction(SIGALRM, &previous, nullptr);
}

std::map<int, std::string> open_pipes() {
  std::map<int, std::string> pipes;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ignored;
    const auto target = std::filesystem::read_symlink(entry.path(), ignored).string();
    if (target.rfind("pipe:", 0) == 0) pipes.emplace(std::stoi(entry.path().filename()), target);
  }
  return pipes;
}

TEST(Hygiene, EveryPipeThePoolOpensIsCloseOnExec) {
  // Per worker, the master keeps one end of each pipe: tasks and replies, and with mailboxes the two
  // doorbells. Plus the pool's terminate() wake-up (both ends).
  for (const auto& [control, kept_per_worker] :
       {std::pair{Control::shared_memory, 4u}, std::pair{Control::pipes, 2u}}) {
    const auto before = open_pipes();  // the test runner's own (stdout may be a pipe) are not ours
    mpdemo::ProcessPoolOptions options;
    options.workers = 2;
    options.control = control;
    mpdemo::ProcessPool pool(options);
    std::size_t new_pipes = 0;
    for (const auto& [fd, target] : open_pipes()) {
      if (before.count(fd) != 0) continue;
      ++new_pipes;
      EXPECT_TRUE(::fcntl(fd, F_GETFD) & FD_CLOEXEC) << "fd " << fd << " (" << target << ") survives exec";
    }
    EXPECT_EQ(new_pipes, 2u * kept_per_worker + 2) << "control " << static_cast<int>(control);
  }
}

TEST(Hygiene, AThousandPoolsLeaveNothingBehind) {
  // Counted once the process's arena exists: making it may open the root of mpdemo's own tmpfs, kept
  // for the life of the process (huge_pages.hpp).
  const auto arena = mpdemo::SharedArena::process_default();
  const std::size_t fds_before = open_descriptors();
  const std::size_t mappings_before = mpdemo::testing::shared_mappings();
  const std::size_t arena_free_before = arena->free_bytes();
  const auto input = iota_input(64);
  for (int i = 0; i < 1000; ++i) {
    mpdemo::ProcessPool pool(2);
    ASSERT_EQ(pool.map([](int x) { return x + 1; }, input)[63], 64) << "pool " << i;
  }
  EXPECT_EQ(open_descriptors(), fds_before);
  EXPECT_EQ(mpdemo::testing::shared_mappings(), mappings_before) << "a pool left a shared mapping behind";
  EXPECT_EQ(arena->free_bytes(), arena_free_before) << "a staged block was never returned to the arena";
  EXPECT_TRUE(children_of(::getpid()).empty()) << "a worker is still alive or unreaped";
  EXPECT_TRUE(mpdemo::testing::no_child_left()) << "a child is left to reap";
}

// --- Signals to the mpdemo executable -------------------------------------------------------------

struct InterruptCase {
  int signal_number;
  bool whole_group;  // as Ctrl-C in a terminal: the master and every worker get the signal
  std::vector<std::string> args;
  std::size_t children = 1;  // signalled once it has this many (a fork server is one before any worker)
};

void PrintTo(const InterruptCase& c, std::ostream* os) {
  *os << mpdemo::signal_name(c.signal_number) << (c.whole_group ? " to the group" : " to the master") << " of mpdemo";
  for (const std::string& arg : c.args) *os << ' ' << arg;
}

class Interrupt : public ::testing::TestWithParam<InterruptCase> {};

TEST_P(Interrupt, StopsWorkersReleasesMemoryAndExitsWithTheSignalsStatus) {
  const InterruptCase& c = GetParam();
  const bool served = std::find(c.args.begin(), c.args.end(), "forkserver") != c.args.end();
  if (served && !mpdemo::ForkServer::supported()) GTEST_SKIP() << "no fork server on this machine";
  ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);  // so no orphan can hide from this test
  std::size_t workers_seen = 0;
  const auto result = mpdemo::testing::run_mpdemo(
      c.args, 30s,
      [&](pid_t pid) {
        // Signal it only once it has workers, i.e. mid-run.
        ASSERT_TRUE(eventually(
            [&] {
              workers_seen = children_of(pid).size();  // costs' children come and go: keep what was seen
              return workers_seen >= c.children;
            },
            10s))
            << "mpdemo never forked";
        ::kill(c.whole_group ? -pid : pid, c.signal_number);
      },
      /*own_process_group=*/true);
  ::prctl(PR_SET_CHILD_SUBREAPER, 0);
  EXPECT_GT(workers_seen, 0u);
  EXPECT_EQ(result.exit_code(), 128 + c.signal_number) << result.status.str() << "\n" << result.err;
  EXPECT_THAT(result.err, HasSubstr("interrupted by " + mpdemo::signal_name(c.signal_number)));
  EXPECT_THAT(result.err, HasSubstr("workers stopped and reaped"));
  // mpdemo's shared memory is anonymous: it lives exactly as long as some process maps it. The master
  // is gone, and this test adopts orphans, so a worker that outlived it -- still holding the arena --
  // would be a child of this process now, alive or a zombie.
  EXPECT_TRUE(children_of(::getpid()).empty()) << "a worker outlived the master, holding its shared memory";
  EXPECT_TRUE(mpdemo::testing::no_child_left()) << "an orphaned worker was left behind";
}

const std::vector<std::string> kLongRun{"run", "--size", "4e6", "--repeat", "1000", "--mode", "proc"};
const std::vector<std::string> kLongWarmRun{"run", "--size", "4e6", "--repeat", "1000", "--mode", "warm-proc"};
const std::vector<std::string> kLongServedRun{"run",  "--size",         "4e6",       "--repeat", "1000", "--mode",
                                              "proc", "--start-method", "forkserver"};
const std::vector<std::string> kLongLesson{"--large-size", "3e7"};
const std::vector<std::string> kLongSweep{"sweep", "--sizes", "1e6,4e6", "--repeat", "1000", "--max-seconds", "600"};
const std::vector<std::string> kLongCosts{"costs", "--repeat", "100"};

INSTANTIATE_TEST_SUITE_P(
    Signals, Interrupt,
    ::testing::Values(InterruptCase{SIGINT, false, kLongRun}, InterruptCase{SIGINT, true, kLongRun},
                      InterruptCase{SIGTERM, false, kLongRun}, InterruptCase{SIGINT, true, kLongWarmRun},
                      InterruptCase{SIGTERM, true, kLongWarmRun}, InterruptCase{SIGINT, true, kLongLesson},
                      InterruptCase{SIGINT, true, kLongSweep}, InterruptCase{SIGTERM, false, kLongSweep},
                      InterruptCase{SIGINT, false, kLongCosts}, InterruptCase{SIGINT, true, kLongServedRun, 2},
                      InterruptCase{SIGTERM, false, kLongServedRun, 2}));

// ---- Promptness: a death, a timeout, terminate() and a deadline end a map now, not when the work ends.

// Busy for a long time on every element except the victim's: the survivors are deep in long chunks
// when the victim dies.
struct DieWhileOthersWork {
  double* died_at;
  int victim;
  int operator()(int x) const {
    if (x == victim) {
      *died_at = monotonic_seconds();
      ::raise(SIGKILL);
    }
    const double until = monotonic_seconds() + 0.5;  // 0.5 s per element: a chunk of 10 takes 5 s
    while (monotonic_seconds() < until) {
    }
    return x;
  }
};

TEST(Promptness, AWorkerDeathAbandonsTheMapAtOnceWhateverTheOthersAreDoing) {
  mpdemo::ProcessPool pool(2);
  auto stamp = pool.make_shared_array<double>(1);
  stamp[0] = 0;
  const auto input = iota_input(40);
  const auto before = pool.worker_pids();
  double thrown_at = 0;
  try {
    // Chunks of 10: worker 0 gets [0, 10) and dies on its first element; worker 1 is 5 s into [10, 20).
    (void)pool.map(DieWhileOthersWork{stamp.data(), 0}, input, 10);
    FAIL() << "map should have thrown";
  } catch (const mpdemo::WorkerError& e) {
    thrown_at = monotonic_seconds();
    EXPECT_THAT(e.cause(), HasSubstr("SIGKILL"));
  }
  ASSERT_GT(stamp[0], 0.0);
  EXPECT_LT(thrown_at - stamp[0], 0.100) << "the master waited for the busy survivor";
  RecordProperty("death_to_throw_us", static_cast<int>((thrown_at - stamp[0]) * 1e6));
  // The busy survivor was killed and reaped too, so that it writes into nothing the caller reuses.
  for (const auto& pid : before) EXPECT_FALSE(process_exists(pid.value()));
  for (const auto& pid : pool.worker_pids()) EXPECT_FALSE(pid.has_value()) << "a dead slot shows no pid";
  EXPECT_EQ(pool.map([](int x) { return x * 5; }, input, 10)[39], 195);
}

// Never returns: the map's only ways out are the ones the pool provides.
int spin_forever(int x) {
  for (volatile int forever = 1; forever != 0;) {
  }
  return x;
}

TEST(Promptness, AMapTimeoutKillsTheBusyWorkersAndThePoolGoesOn) {
  mpdemo::ProcessPoolOptions options;
  options.workers = 2;
  options.map_timeout = 200ms;
  mpdemo::ProcessPool pool(options);
  const auto before = pool.worker_pids();
  const double start = monotonic_seconds();
  EXPECT_THROW((void)pool.map(&spin_forever, iota_input(10)), mpdemo::MapTimeout);
  const double took = monotonic_seconds() - start;
  EXPECT_GE(took, 0.2);
  EXPECT_LT(took, 1.0);
  RecordProperty("timeout_200ms_total_ms", static_cast<int>(took * 1e3));
  for (const auto& pid : before) EXPECT_FALSE(process_exists(pid.value())) << "a timed-out worker lives on";
  EXPECT_EQ(pool.map([](int x) { return x + 7; }, iota_input(100))[99], 106);  // replaced, and within time
}

TEST(Promptness, TerminateFromAnotherThreadStopsARunningMapAndThePool) {
  mpdemo::ProcessPool pool(2);
  const auto pids = pool.worker_pids();
  std::thread terminator([&] {
    std::this_thread::sleep_for(150ms);
    pool.terminate();
  });
  const double start = monotonic_seconds();
  EXPECT_THROW((void)pool.map(&spin_forever, iota_input(10)), mpdemo::PoolTerminated);
  const double took = monotonic_seconds() - start;
  terminator.join();
  EXPECT_LT(took, 1.0);
  RecordProperty("terminate_after_150ms_total_ms", static_cast<int>(took * 1e3));
  EXPECT_TRUE(pool.terminated());
  for (const auto& pid : pids) EXPECT_FALSE(process_exists(pid.value()));
  EXPECT_THROW((void)pool.map([](int x) { return x; }, iota_input(10)), mpdemo::PoolTerminated);
  pool.terminate();  // again: a no-op
}

TEST(Promptness, TerminateOnAnIdlePoolKillsItsWorkersAtOnce) {
  mpdemo::ProcessPool pool(2);
  const auto pids = pool.worker_pids();
  pool.terminate();
  for (const auto& pid : pids) EXPECT_FALSE(process_exists(pid.value())) << "terminate() left a worker running";
  EXPECT_THROW((void)pool.map([](int x) { return x; }, iota_input(10)), mpdemo::PoolTerminated);
}

TEST(Promptness, ADeadlineStopsTheLoopThreadsAndProcessesAlike) {
  const auto input = iota_input(2000);
  std::vector<int> output(input.size());
  mpdemo::ProcessPool processes(2);
  mpdemo::ThreadPool threads(2);
  // Threads cannot be killed, so the kernel's checks (every kCheckBlockElements elements) must be
  // what stops them and the loop: 1 ms per element is 2 s of work, and a check every 0.5 s.
  static_assert(mpdemo::kCheckBlockElements <= 512);
  const auto slow = [](int x) {
    ::usleep(1'000);
    return x;
  };
  for (int mode = 0; mode < 3; ++mode) {
    const double start = monotonic_seconds();
    {
      const mpdemo::ScopedDeadline deadline(std::chrono::steady_clock::now() + 150ms);
      if (mode == 0) {
        EXPECT_THROW(mpdemo::sequential_map_into(slow, input, output), mpdemo::DeadlineExceeded);
      } else if (mode == 1) {
        EXPECT_THROW(threads.map_into(slow, input, output), mpdemo::DeadlineExceeded);
      } else {
        EXPECT_THROW(processes.map_into(&spin_forever, input, output), mpdemo::DeadlineExceeded);
      }
    }
    EXPECT_LT(monotonic_seconds() - start, 1.5) << "mode " << mode;
  }
  // No deadline left behind: everything works again.
  mpdemo::sequential_map_into(slow, std::vector<int>{1, 2}, std::vector<int>(2));
  EXPECT_EQ(threads.map([](int x) { return x + 1; }, input)[63], 64);
  EXPECT_EQ(processes.map([](int x) { return x + 1; }, input)[63], 64);
}

TEST(Promptness, AnInterruptStopsASequentialLoopWithinABlock) {
  const mpdemo::InterruptGuard guard;
  std::vector<int> input(100'000, 1);
  std::vector<int> output(input.size());
  std::thread interrupter([] {
    std::this_thread::sleep_for(100ms);
    ::kill(::getpid(), SIGINT);
  });
  const double start = monotonic_seconds();
  // 100 us per element: 10 s without the kernel's checks.
  EXPECT_THROW(mpdemo::sequential_map_into(
                   [](int x) {
                     ::usleep(100);
                     return x;
                   },
                   input, output),
               mpdemo::Interrupted);
  interrupter.join();
  EXPECT_LT(monotonic_seconds() - start, 1.0);
  EXPECT_THROW((void)mpdemo::interruptible_vector<double>(1000), mpdemo::Interrupted) << "still pending";
  mpdemo::clear_interrupt();
  EXPECT_EQ(mpdemo::interruptible_vector<double>(1000).size(), 1000u);
}

// A child forked by the pool stops itself before it can say it is ready: the master must not wait for
// it forever, nor ignore Ctrl-C meanwhile.
TEST(Promptness, AWorkerStoppedBeforeItIsReadyTimesOutAndIsKilled) {
  mpdemo::ProcessPoolOptions options;
  options.workers = 1;
  options.start_timeout = 300ms;
  (void)mpdemo::SharedArena::process_default();  // its tmpfs helper, a child too, is not the worker under test
  const double start = monotonic_seconds();
  try {
    const mpdemo::testing::StopNewChildren stopped;
    mpdemo::ProcessPool pool(options);
    FAIL() << "a stopped worker was taken for a ready one";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("did not say it was ready within 300 ms"));
  }
  EXPECT_LT(monotonic_seconds() - start, 1.0);
  EXPECT_TRUE(children_of(::getpid()).empty()) << "the stopped worker was left behind";
}

TEST(Promptness, AnInterruptDuringStartUpIsAnsweredAtOnce) {
  const mpdemo::InterruptGuard guard;
  (void)mpdemo::SharedArena::process_default();  // its tmpfs helper, a child too, is not the worker under test
  std::optional<mpdemo::testing::StopNewChildren> stopped(std::in_place);
  std::thread interrupter([] {
    std::this_thread::sleep_for(150ms);
    ::kill(::getpid(), SIGINT);
  });
  const double start = monotonic_seconds();
  EXPECT_THROW(mpdemo::ProcessPool pool(1), mpdemo::Interrupted);  // start_timeout is 10 s by default
  stopped.reset();
  interrupter.join();
  EXPECT_LT(monotonic_seconds() - start, 1.0);
  EXPECT_TRUE(children_of(::getpid()).empty());
  mpdemo::clear_interrupt();
}

// exit() in the function: the master's atexit handlers must not run in the worker, and what the
// master had buffered for stdout must not be written a second time. Checked in a forked "master"
// whose stdout is a pipe (fully buffered, as when redirected to a file).
// Counts, in memory shared by every process forked from the test, how often the master's atexit
// handler ran: the workers close every descriptor they were not given, so a pipe could not tell.
std::atomic<int>* g_atexit_runs = nullptr;
TEST(Promptness, ExitInAWorkerRunsNoneOfTheMastersHandlersNorItsBufferedOutput) {
  void* shared = ::mmap(nullptr, sizeof(std::atomic<int>), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(shared, MAP_FAILED);
  g_atexit_runs = new (shared) std::atomic<int>(0);
  mpdemo::Pipe out = mpdemo::Pipe::create();
  mpdemo::SpawnOptions options;
  options.stdout_to = out.write_end.get();
  mpdemo::ChildProcess master_process = mpdemo::spawn("a master", options, []() noexcept {
    std::atexit([] { ++*g_atexit_runs; });
    std::printf("buffered-once;");  // no newline, no flush: still in the master's buffer at fork
    int status = 1;
    try {
      mpdemo::ProcessPool pool(2);
      (void)pool.map(
          [](int x) {
            if (x == 3) std::exit(0);
            return x;
          },
          iota_input(100), 1);
    } catch (const mpdemo::WorkerError& e) {
      std::printf("[%s]", e.cause().c_str());
      status = 0;
    } catch (...) {
    }
    std::fflush(stdout);
    return status;  // spawn leaves with _exit: this copy of the test process runs no gtest handler
  });
  out.write_end.reset();
  std::string printed;
  char buffer[4096];
  for (ssize_t n; (n = ::read(out.read_end.get(), buffer, sizeof(buffer))) > 0;)
    printed.append(buffer, static_cast<std::size_t>(n));
  EXPECT_TRUE(master_process.wait().success()) << printed;
  EXPECT_EQ(printed, "buffered-once;[its function called exit() or quick_exit() in the worker]");
  EXPECT_EQ(g_atexit_runs->load(), 0) << "the master's atexit handler ran in a worker";
  ::munmap(shared, sizeof(std::atomic<int>));
}

TEST(WorkerFailure, AnInitializerThatFailsInOneWorkerLeavesNoWorkerBehind) {
  // The workers are all forked before any is waited for: when the second to start fails, the others
  // (ready or still starting) must be stopped and reaped too, not left holding a "ready" nobody reads.
  int* started =
      static_cast<int*>(::mmap(nullptr, sizeof(int), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(started, MAP_FAILED);
  *started = 0;
  mpdemo::ProcessPoolOptions options;
  options.workers = 3;
  options.initializer = [started] {
    if (std::atomic_ref<int>(*started).fetch_add(1) == 1) throw std::runtime_error("the second one fails");
  };
  EXPECT_THROW(
      {
        try {
          mpdemo::ProcessPool pool(options);
        } catch (const mpdemo::WorkerError& e) {
          EXPECT_THAT(e.what(), HasSubstr("the second one fails"));
          throw;
        }
      },
      mpdemo::WorkerError);
  EXPECT_GE(std::atomic_ref<int>(*started).load(), 2);
  EXPECT_TRUE(children_of(::getpid()).empty()) << "a worker outlived the failed start";
  ::munmap(started, sizeof(int));
}

class Replacements : public ::testing::TestWithParam<Control> {};

TEST_P(Replacements, AReplacementWhoseInitializerFailsLeavesThePoolUsable) {
  // A map times out and both its workers are killed; their two replacements are forked together by
  // the next map, and worker 0's (the one pinned to the first worker CPU, waited for first) fails its
  // initializer. The map says so; worker 1's replacement, ready but its "ready" unread, must go too;
  // the next maps start what is missing and give every result, through shared memory and the pipes.
  struct Switch {
    int armed;
    int fired;
  };
  auto* failure =
      static_cast<Switch*>(::mmap(nullptr, sizeof(Switch), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(failure, MAP_FAILED);
  *failure = {0, 0};
  const std::vector<int>& cpus = mpdemo::system_topology().worker_cpus;
  const int first_cpu = cpus.empty() ? -1 : cpus[0];
  mpdemo::ProcessPoolOptions options = two_workers(GetParam());
  options.map_timeout = 200ms;
  options.initializer = [failure, first_cpu] {
    if (std::atomic_ref<int>(failure->armed).load() == 0) return;
    if (first_cpu >= 0 && ::sched_getcpu() != first_cpu) return;
    if (std::atomic_ref<int>(failure->fired).fetch_add(1) == 0) throw std::runtime_error("replacement fails");
  };
  mpdemo::ProcessPool pool(options);
  const auto input = iota_input(1000);
  EXPECT_THROW((void)pool.map(spin_forever, iota_input(2), 1), mpdemo::MapTimeout);
  failure->armed = 1;
  EXPECT_THROW((void)pool.map([](int x) { return x * 3; }, input, 10), mpdemo::WorkerError);
  // Results read from a reply pipe would begin with a stale "ready".
  const auto piped = pool.map_through_pipes([](int x) { return x * 3; }, input, 10);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(piped[static_cast<std::size_t>(i)], 3 * i) << i;
  const auto shared = pool.map([](int x) { return x * 5; }, input, 10);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(shared[static_cast<std::size_t>(i)], 5 * i) << i;
  EXPECT_EQ(pool.worker_pids().size(), 2u);
  ::munmap(failure, sizeof(Switch));
}

INSTANTIATE_TEST_SUITE_P(Controls, Replacements, ::testing::Values(Control::shared_memory, Control::pipes),
                         [](const auto& param) { return control_name(param.param); });

TEST(ApiHazards, AMovedFromPoolSaysSoInsteadOfCrashing) {
  mpdemo::ProcessPool processes(1);
  mpdemo::ProcessPool taken(std::move(processes));
  EXPECT_EQ(processes.size(), 0u);  // NOLINT(bugprone-use-after-move): what this test is about
  EXPECT_THROW((void)processes.map([](int x) { return x; }, iota_input(3)), std::logic_error);
  EXPECT_THROW((void)processes.worker_pids(), std::logic_error);
  EXPECT_THROW((void)processes.arena(), std::logic_error);
  processes.terminate();  // harmless
  EXPECT_EQ(taken.map([](int x) { return x + 1; }, iota_input(3))[2], 3);

  mpdemo::ThreadPool threads(1);
  mpdemo::ThreadPool taken_threads(std::move(threads));
  EXPECT_EQ(threads.size(), 0u);  // NOLINT(bugprone-use-after-move)
  EXPECT_THROW((void)threads.map([](int x) { return x; }, iota_input(3)), std::logic_error);
  EXPECT_EQ(taken_threads.map([](int x) { return x + 1; }, iota_input(3))[2], 3);
}

// CPU time a process has used so far (utime + stime from /proc/PID/stat), in seconds.
double cpu_seconds_of(pid_t pid) {
  const std::optional<mpdemo::ProcStat> stat = mpdemo::ProcStat::of(pid);
  if (!stat) ADD_FAILURE() << "process " << pid << " is gone";
  return stat ? stat->cpu_seconds() : 0;
}

TEST(Idle, IdleWorkersSleepInsteadOfSpinning) {
  mpdemo::ProcessPool pool(2);  // spin: 50 us, then poll() blocks
  (void)pool.map([](int x) { return x; }, iota_input(1000));
  std::vector<double> before;
  for (const auto& pid : pool.worker_pids()) before.push_back(cpu_seconds_of(pid.value()));
  std::this_thread::sleep_for(500ms);
  const auto pids = pool.worker_pids();
  for (std::size_t w = 0; w < pids.size(); ++w) {
    // A spinning worker would use ~0.5 s of CPU here; a sleeping one about none (the clock ticks at
    // 1/CLK_TCK, 10 ms, so allow a few ticks).
    EXPECT_LT(cpu_seconds_of(pids[w].value()) - before[w], 0.05) << "worker " << w << " spun while idle";
  }
}

TEST(PipePath, OutputsOfAnotherSizeThanTheInputComeBackWhole) {
  mpdemo::ProcessPool pool(2);
  std::vector<std::uint8_t> input(10'007);
  for (std::size_t i = 0; i < input.size(); ++i) input[i] = static_cast<std::uint8_t>(i * 7);
  const auto widened =
      pool.map_through_pipes([](std::uint8_t x) { return static_cast<std::uint64_t>(x) * 1'000'003; }, input, 100);
  ASSERT_EQ(widened.size(), input.size());
  for (std::size_t i = 0; i < input.size(); ++i)
    ASSERT_EQ(widened[i], static_cast<std::uint64_t>(input[i]) * 1'000'003) << i;
  const auto narrowed =
      pool.map_through_pipes([](std::uint64_t x) { return static_cast<std::uint8_t>(x % 251); }, widened, 333);
  for (std::size_t i = 0; i < input.size(); ++i) ASSERT_EQ(narrowed[i], widened[i] % 251) << i;
}

TEST(ApiHazards, ASystemCallThatHitALimitSaysWhichLimit) {
  EXPECT_THAT(mpdemo::limit_hint(EAGAIN), HasSubstr("ulimit -u"));
  EXPECT_THAT(mpdemo::limit_hint(EMFILE), HasSubstr("ulimit -n"));
  EXPECT_THAT(mpdemo::limit_hint(ENOMEM), HasSubstr("ulimit -v"));
  EXPECT_EQ(mpdemo::limit_hint(ENOENT), "");
  errno = EMFILE;
  try {
    mpdemo::throw_errno_with_limits("create a pipe");
    FAIL();
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code().value(), EMFILE);
    EXPECT_THAT(e.what(), HasSubstr("create a pipe (this process's open-file limit was reached (ulimit -n = "));
  }
}

TEST(ApiHazards, EveryErrorOfMpdemosOwnIsAnMpdemoError) {
  static_assert(std::is_base_of_v<mpdemo::Error, mpdemo::WorkerError>);
  static_assert(std::is_base_of_v<mpdemo::Error, mpdemo::MapTimeout>);
  static_assert(std::is_base_of_v<mpdemo::Error, mpdemo::PoolTerminated>);
  static_assert(std::is_base_of_v<mpdemo::Error, mpdemo::Interrupted>);
  static_assert(std::is_base_of_v<mpdemo::Error, mpdemo::DeadlineExceeded>);
  mpdemo::ProcessPool pool(1);
  EXPECT_THROW((void)pool.map(
                   [](int x) {
                     if (x == 1) throw std::runtime_error("no");
                     return x;
                   },
                   iota_input(3)),
               mpdemo::Error);
  pool.terminate();
  EXPECT_THROW((void)pool.map([](int x) { return x; }, iota_input(3)), mpdemo::Error);
}

TEST(ApiHazards, AnEmptyChildProcessHasNoPidToHandOut) {
  mpdemo::ChildProcess empty;
  EXPECT_FALSE(empty.running());
  EXPECT_THROW((void)empty.pid(), std::logic_error);
  EXPECT_FALSE(empty.send_signal(SIGKILL));  // never kill(-1, ...)
  const mpdemo::ExitStatus status = empty.wait_or_kill(10ms);
  EXPECT_FALSE(status.started());
  EXPECT_FALSE(status.success()) << "a child that never ran is not a success";
  EXPECT_EQ(status.str(), "never started");
  EXPECT_FALSE(mpdemo::ChildProcess::adopt(-1).running()) << "adopting -1 must give an empty owner";
}

}  // namespace
