// PoolOptions::caller_computes: the thread that calls map computes a share itself, as OpenMP's
// primary thread does. The same tests on both pools: exact results against an independent loop, the
// caller seen computing while a worker is held back, its failures named, and the process pool's
// failure paths (a worker killed, an interrupt in the caller's own share) still prompt and clean.
#include "mpdemo/lab/kernels.hpp"
#include "mpdemo/pool/process_pool.hpp"
#include "mpdemo/pool/thread_pool.hpp"
#include "mpdemo/sys/errors.hpp"
#include "mpdemo/sys/interrupt.hpp"
#include "mpdemo/sys/topology.hpp"
#include "support/expected.hpp"
#include "support/flags.hpp"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sys/syscall.h>
#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <numeric>
#include <set>
#include <thread>
#include <type_traits>
#include <vector>

namespace {

using namespace std::chrono_literals;
using mpdemo::testing::raise_flag;
using mpdemo::testing::raise_flag_first;
using mpdemo::testing::random_doubles;
using mpdemo::testing::squares_of;
using mpdemo::testing::wait_for_flag;
using ::testing::HasSubstr;

/// Who is running: the process for a process pool's workers, the thread for a thread pool's.
long runner_id(bool processes) { return processes ? static_cast<long>(::getpid()) : ::syscall(SYS_gettid); }

template <class Pool>
class CallerShare : public ::testing::Test {
 public:
  static constexpr bool kProcesses = std::is_same_v<Pool, mpdemo::ProcessPool>;
  using Options = std::conditional_t<kProcesses, mpdemo::ProcessPoolOptions, mpdemo::PoolOptions>;
  static Options options(std::size_t workers) {
    Options chosen;
    chosen.workers = workers;
    chosen.caller_computes = true;
    return chosen;
  }
  static Pool make(std::size_t workers) { return Pool(options(workers)); }
  /// Memory the workers share with the caller: the pool's arena, mapped before any fork.
  static mpdemo::SharedArray<long> shared_cells(std::size_t n) {
    mpdemo::SharedArray<long> cells(mpdemo::SharedArena::process_default(), n);
    for (long& cell : cells) cell = 0;
    return cells;
  }
};

struct PoolNames {
  template <class T>
  static std::string GetName(int) {
    return std::is_same_v<T, mpdemo::ProcessPool> ? "ProcessPool" : "ThreadPool";
  }
};
using Pools = ::testing::Types<mpdemo::ProcessPool, mpdemo::ThreadPool>;
TYPED_TEST_SUITE(CallerShare, Pools, PoolNames);

TYPED_TEST(CallerShare, ByDefaultTheCallersCoreTakesTheLastWorkersPlace) {
  const std::size_t cores = mpdemo::system_topology().default_workers();
  auto pool = TypeParam(this->options(0));
  EXPECT_EQ(pool.size(), cores > 1 ? cores - 1 : 1);
  TypeParam waiting(std::size_t{0});  // the caller only waits: one per core
  EXPECT_EQ(waiting.size(), cores);
}

TYPED_TEST(CallerShare, EverySizeChunksizeAndTeamGivesTheLoopsAnswer) {
  for (const std::size_t workers : std::initializer_list<std::size_t>{1, 2, 3}) {
    auto pool = this->make(workers);
    for (const std::size_t n : std::initializer_list<std::size_t>{0, 1, 2, 3, 4, 7919, 300'007}) {
      const auto input = random_doubles(n);
      const auto expected = squares_of(input);
      for (const std::size_t chunksize : std::initializer_list<std::size_t>{0, 1, 333, 1'000'000}) {
        if (chunksize == 1 && n > 10'000) continue;  // 300k one-element tasks say nothing more
        EXPECT_EQ(pool.map(mpdemo::squared, input, chunksize), expected)
            << workers << " workers, n " << n << ", chunksize " << chunksize;
        std::vector<double> out(n, -1.0);
        (void)pool.map_into(mpdemo::squared, input, out, chunksize);
        EXPECT_EQ(out, expected) << "map_into: " << workers << " workers, n " << n << ", chunksize " << chunksize;
      }
    }
  }
}

TYPED_TEST(CallerShare, RepeatedMapsOverTheSameSharedArraysStayExact) {
  // The process pool remembers which member ran which chunk of these arrays, the caller among them.
  auto pool = this->make(1);
  auto input = mpdemo::SharedArray<double>(mpdemo::SharedArena::process_default(), 100'003);
  auto output = mpdemo::SharedArray<double>(mpdemo::SharedArena::process_default(), 100'003);
  const auto values = random_doubles(input.size());
  std::copy(values.begin(), values.end(), input.begin());
  const auto expected = squares_of(values);
  for (int round = 0; round < 20; ++round) {
    std::fill(output.begin(), output.end(), -1.0);
    (void)pool.map_into(mpdemo::squared, input, output, 997);
    ASSERT_TRUE(std::equal(output.begin(), output.end(), expected.begin())) << "round " << round;
  }
}

/// Writes who ran each element. The caller's first element and a worker's first element each wait
/// (20 s at most) until the other side has run one: both are seen computing at the same time, and
/// neither can take the other's whole region before the other starts.
struct WhoRan {
  long* started;  ///< shared: [0] the caller has run an element, [1] a worker has
  long caller;
  bool processes;
  long operator()(int) const {
    const long me = runner_id(processes);
    const bool is_caller = me == caller;
    raise_flag(&started[is_caller ? 0 : 1]);
    wait_for_flag(&started[is_caller ? 1 : 0], 20s);
    return me;
  }
};

TYPED_TEST(CallerShare, TheCallerComputesBesideTheWorkers) {
  auto pool = this->make(1);
  auto cells = this->shared_cells(2);
  const long caller = runner_id(this->kProcesses);
  std::vector<int> input(1000);
  const auto writers = pool.map(WhoRan{cells.data(), caller, this->kProcesses}, input, 10);
  const std::set<long> distinct(writers.begin(), writers.end());
  EXPECT_EQ(distinct.size(), 2u) << "the caller and the one worker";
  EXPECT_EQ(distinct.count(caller), 1u) << "the caller computed nothing";
  // Each began at its own region's front: the worker's is the first, the caller's the last.
  EXPECT_NE(writers.front(), caller) << "element 0 is in the worker's region";
  EXPECT_EQ(writers[500], caller) << "element 500 begins the caller's region";
}

TYPED_TEST(CallerShare, TheOrdinaryPoolsCallerComputesNothing) {
  TypeParam pool(std::size_t{1});
  const long caller = runner_id(this->kProcesses);
  std::vector<int> input(1000);
  struct Who {
    bool processes;
    long operator()(int) const { return runner_id(processes); }
  };
  const auto writers = pool.map(Who{this->kProcesses}, input, 10);
  EXPECT_EQ(std::count(writers.begin(), writers.end(), caller), 0);
}

/// Throws in the caller only. The workers wait (20 s at most) until the caller has begun, so that they
/// cannot take every chunk, the caller's included, before it starts.
struct FailsInCaller {
  long* caller_started;
  long caller;
  bool processes;
  int operator()(int x) const {
    if (runner_id(processes) == caller) {
      raise_flag(caller_started);
      throw std::runtime_error("the caller's share failed");
    }
    wait_for_flag(caller_started, 20s);
    return x;
  }
};

TYPED_TEST(CallerShare, AnExceptionInTheCallersShareIsAWorkerErrorNamingTheCaller) {
  auto pool = this->make(2);
  auto cells = this->shared_cells(1);
  std::vector<int> input(3000);
  std::iota(input.begin(), input.end(), 0);
  try {
    (void)pool.map(FailsInCaller{cells.data(), runner_id(this->kProcesses), this->kProcesses}, input, 100);
    FAIL() << "expected WorkerError";
  } catch (const mpdemo::WorkerError& e) {
    EXPECT_EQ(e.worker(), pool.size()) << "the caller's share is worker size()";
    EXPECT_TRUE(e.in_caller());
    EXPECT_THAT(e.what(),
                HasSubstr(fmt::format("the caller (pid {}), computing its share, failed on elements [", ::getpid())));
    EXPECT_EQ(e.pid(), ::getpid());
    EXPECT_EQ(e.cause(), "the caller's share failed");
    EXPECT_EQ(e.chunk_end() - e.chunk_begin(), 100u);
  }
  const auto again = pool.map([](int x) { return x + 1; }, input, 100);
  for (std::size_t i = 0; i < input.size(); ++i) ASSERT_EQ(again[i], input[i] + 1) << i;
}

TYPED_TEST(CallerShare, SeveralThreadsMapOnOnePoolAtOnce) {
  // Each caller computes its own map's share, or leaves it to the workers when another thread drives.
  auto pool = this->make(2);
  const auto input = random_doubles(200'003);
  const auto expected = squares_of(input);
  std::atomic<int> wrong{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t) {
    callers.emplace_back([&] {
      for (int round = 0; round < 25; ++round) {
        if (pool.map(mpdemo::squared, input, 5000) != expected) ++wrong;
      }
    });
  }
  for (std::thread& caller : callers) caller.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(pool.map(mpdemo::squared, input), expected) << "the pool goes on";
}

// ---- Processes only: a worker's death and an interrupt, with the caller computing ----------------

bool process_exists(pid_t pid) { return ::kill(pid, 0) == 0 || errno != ESRCH; }

/// Runs `fn` over `input` (chunks of 10) on `pool`, a pool of one worker and the caller, in which the
/// worker kills itself: the map must fail within 10 s with a WorkerError naming worker 0 and its
/// SIGKILL, the dead worker be reaped and replaced, and the pool go on. Returns the chunk's first
/// element the error names.
template <class Fn>
std::size_t expect_the_killed_worker_named(mpdemo::ProcessPool& pool, Fn fn, const std::vector<int>& input) {
  const auto pids = pool.worker_pids();
  const auto start = std::chrono::steady_clock::now();
  std::size_t chunk_begin = input.size();
  try {
    (void)pool.map(fn, input, 10);
    ADD_FAILURE() << "expected WorkerError";
  } catch (const mpdemo::WorkerError& e) {
    EXPECT_EQ(e.worker(), 0u);
    EXPECT_FALSE(e.in_caller());
    EXPECT_EQ(e.pid(), pids[0].value());
    EXPECT_THAT(e.what(), HasSubstr(fmt::format("worker 0 (pid {})", pids[0].value())));
    EXPECT_THAT(e.what(), HasSubstr("killed by signal 9 (SIGKILL)"));
    chunk_begin = e.chunk_begin();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  EXPECT_FALSE(process_exists(pids[0].value())) << "the dead worker was not reaped";
  std::vector<int> doubled(input.size());
  std::transform(input.begin(), input.end(), doubled.begin(), [](int x) { return 2 * x; });
  EXPECT_EQ(pool.map([](int x) { return 2 * x; }, input, 10), doubled) << "the pool goes on";
  EXPECT_NE(pool.worker_pids(), pids) << "a replacement was forked";
  return chunk_begin;
}

/// A worker SIGKILLs itself at element `victim`, once the caller has started its own share.
struct WorkerDiesAt {
  long* caller_started;
  pid_t caller;
  int victim;
  int operator()(int x) const {
    if (::getpid() == caller) {
      raise_flag(caller_started);
      ::usleep(200);  // the caller's share is still running when the worker dies
    } else if (x == victim) {
      wait_for_flag(caller_started, 20s);
      ::raise(SIGKILL);
    }
    return x;
  }
};

TEST(CallerShareProcesses, AWorkerKilledMidMapIsNamedAndReplacedWhileTheCallerComputes) {
  using Suite = CallerShare<mpdemo::ProcessPool>;
  mpdemo::ProcessPool pool(Suite::options(1));
  auto cells = Suite::shared_cells(1);
  std::vector<int> input(2000);
  std::iota(input.begin(), input.end(), 0);
  // Element 5: the worker's region.
  EXPECT_EQ(expect_the_killed_worker_named(pool, WorkerDiesAt{cells.data(), ::getpid(), 5}, input), 0u);
}

/// The caller interrupts itself (SIGINT) in its own share; the rest of the map is slow.
struct CallerInterruptsItself {
  pid_t caller;
  int operator()(int x) const {
    if (::getpid() == caller) {
      ::kill(caller, SIGINT);
    } else {
      ::usleep(100);
    }
    return x + 1;
  }
};

TEST(CallerShareProcesses, AnInterruptInTheCallersShareStopsTheMapKillsItsWorkersAndThePoolGoesOn) {
  using Suite = CallerShare<mpdemo::ProcessPool>;
  mpdemo::ProcessPool pool(Suite::options(2));
  std::vector<int> input(4000);
  std::iota(input.begin(), input.end(), 0);
  {
    const mpdemo::InterruptGuard guard;
    const auto pids = pool.worker_pids();
    EXPECT_THROW((void)pool.map(CallerInterruptsItself{::getpid()}, input, 50), mpdemo::Interrupted);
    for (const auto& pid : pids) {
      EXPECT_FALSE(process_exists(pid.value())) << "worker " << *pid << " outlived the interrupt";
    }
    mpdemo::clear_interrupt();
  }
  for (int round = 0; round < 3; ++round) {
    const auto out = pool.map([](int x) { return 3 * x; }, input, 50);
    for (std::size_t i = 0; i < input.size(); ++i) ASSERT_EQ(out[i], 3 * input[i]) << i;
  }
}

/// The workers hang (until the gate opens, 30 s at most); the caller's first element waits until a
/// worker has begun one (20 s at most, once), its others return at once. Without that wait a caller
/// done with its share before its worker woke would take back the worker's first task and finish the
/// map itself, as it should.
struct WorkersHang {
  long* flags;  ///< shared: [0] the gate, [1] a worker has begun an element, [2] the caller has waited
  pid_t caller;
  int operator()(int x) const {
    if (::getpid() == caller) {
      if (raise_flag_first(&flags[2])) wait_for_flag(&flags[1], 20s);
      return x;
    }
    raise_flag(&flags[1]);
    wait_for_flag(&flags[0], 30s);
    return x;
  }
};

TEST(CallerShareProcesses, TerminateFromAnotherThreadEndsAMapWhoseCallerHasDoneItsShare) {
  using Suite = CallerShare<mpdemo::ProcessPool>;
  mpdemo::ProcessPool pool(Suite::options(1));
  auto flags = Suite::shared_cells(3);
  std::vector<int> input(4000);
  const auto start = std::chrono::steady_clock::now();
  std::thread terminator([&pool] {
    std::this_thread::sleep_for(300ms);
    pool.terminate();
  });
  EXPECT_THROW((void)pool.map(WorkersHang{flags.data(), ::getpid()}, input, 100), mpdemo::PoolTerminated);
  terminator.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s) << "the map waited for its hung workers";
  for (const auto& pid : pool.worker_pids()) EXPECT_FALSE(pid.has_value()) << "a worker outlived terminate()";
  raise_flag(&flags[0]);
}

/// Waits at the gate (30 s at most), then returns x.
struct AtGate {
  long* gate;
  int operator()(int x) const {
    wait_for_flag(gate, 30s);
    return x;
  }
};

struct Pid {
  long operator()(long) const { return static_cast<long>(::getpid()); }
};

/// Pid, but the caller's first element waits (20 s at most, once) until a worker has run an element.
struct PidOnceTheWorkerRan {
  long* flags;  ///< shared: [0] a worker ran an element, [1] the caller has waited
  pid_t caller;
  long operator()(long) const {
    if (::getpid() != caller) {
      raise_flag(&flags[0]);
    } else if (raise_flag_first(&flags[1])) {
      wait_for_flag(&flags[0], 20s);
    }
    return static_cast<long>(::getpid());
  }
};

TEST(CallerShareProcesses, AfterAMapTheCallerRanAloneTheNextOneStillUsesTheWorker) {
  using Suite = CallerShare<mpdemo::ProcessPool>;
  mpdemo::ProcessPool pool(Suite::options(1));
  auto gate = Suite::shared_cells(1);
  auto input = pool.make_shared_array<long>(2000);
  auto output = pool.make_shared_array<long>(2000);
  // The worker holds two tasks of another job, so the caller runs every chunk of the first map, and
  // the pool remembers the caller as the owner of every chunk of these arrays.
  auto busy = pool.map_async(AtGate{gate.data()}, std::vector<int>{1, 2}, 1);
  (void)pool.map_into(Pid{}, input, output, 100);
  EXPECT_EQ(std::count(output.begin(), output.end(), static_cast<long>(::getpid())), 2000) << "the worker was busy";
  raise_flag(&gate[0]);
  EXPECT_EQ(busy.get(10s), (std::vector<int>{1, 2}));
  // Every chunk now starts in the caller's region: an idle worker must still be handed one. (The
  // caller waits until the worker has run an element, 20 s at most: a caller with nothing left takes
  // back a task the worker has not begun, and a worker still waking up would otherwise lose it.)
  auto flags = Suite::shared_cells(2);
  (void)pool.map_into(PidOnceTheWorkerRan{flags.data(), ::getpid()}, input, output, 100);
  EXPECT_GT(std::count(output.begin(), output.end(), static_cast<long>(pool.worker_pids()[0].value())), 0);
}

/// Chunks of 10 elements, one worker and the caller: the worker's region is chunks 0-3, the caller's
/// 4-7, and the worker is handed chunks 0 and 1 at once. The caller waits (20 s at most) until the
/// worker has begun chunk 0; the worker holds chunk 0 at its first element until the caller runs an
/// element of chunk 1 (20 s at most). So chunk 1 can only be the caller's by being taken back from the
/// worker, which holds it behind chunk 0, not begun; and then the worker `dies` in chunk 0, or not.
struct WorkerBusyUntilCallerRunsChunkOne {
  long* flags;  ///< shared: [0] the caller ran an element of chunk 1, [1] the worker began chunk 0
  pid_t caller;
  bool dies;
  long operator()(int x) const {
    if (::getpid() == caller) {
      wait_for_flag(&flags[1], 20s);
      if (x >= 10 && x < 20) raise_flag(&flags[0]);
    } else if (x == 0) {
      raise_flag(&flags[1]);
      wait_for_flag(&flags[0], 20s);
      if (dies) ::raise(SIGKILL);
    }
    return static_cast<long>(::getpid());
  }
};

TEST(CallerShareProcesses, ACallerWithNothingLeftTakesBackATaskItsBusyWorkerHasNotBegun) {
  using Suite = CallerShare<mpdemo::ProcessPool>;
  mpdemo::ProcessPoolOptions options = Suite::options(1);
  options.maxtasksperchild = 2;  // the worker is handed two tasks: it stays only if one was taken back
  mpdemo::ProcessPool pool(options);
  auto flags = Suite::shared_cells(2);
  const auto pids = pool.worker_pids();
  const long worker = pids[0].value();
  const long caller = ::getpid();
  std::vector<int> input(80);
  std::iota(input.begin(), input.end(), 0);
  const auto start = std::chrono::steady_clock::now();
  const auto ran = pool.map(WorkerBusyUntilCallerRunsChunkOne{flags.data(), ::getpid(), false}, input, 10);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s) << "the worker waited for its limit";
  for (std::size_t i = 0; i < ran.size(); ++i) EXPECT_EQ(ran[i], i < 10 ? worker : caller) << "element " << i;
  EXPECT_EQ(pool.worker_pids(), pids) << "a task taken back counted towards maxtasksperchild";
  // The worker passed over the task it lost, and takes the next ones as before.
  const auto values = random_doubles(100'003);
  for (int round = 0; round < 5; ++round) ASSERT_EQ(pool.map(mpdemo::squared, values, 997), squares_of(values));
}

TEST(CallerShareProcesses, AWorkerThatDiesAfterATaskWasTakenBackIsNamedForTheChunkItHadBegun) {
  using Suite = CallerShare<mpdemo::ProcessPool>;
  mpdemo::ProcessPool pool(Suite::options(1));
  auto flags = Suite::shared_cells(2);
  std::vector<int> input(80);
  std::iota(input.begin(), input.end(), 0);
  const WorkerBusyUntilCallerRunsChunkOne fn{flags.data(), ::getpid(), /*dies=*/true};
  EXPECT_EQ(expect_the_killed_worker_named(pool, fn, input), 0u) << "the chunk the worker had begun";
}

TEST(CallerShareProcesses, ThePipeDataPathStaysTheWorkersAlone) {
  using Suite = CallerShare<mpdemo::ProcessPool>;
  mpdemo::ProcessPool pool(Suite::options(1));
  std::vector<int> input(1000);
  struct Who {
    int operator()(int) const { return static_cast<int>(::getpid()); }
  };
  const auto writers = pool.map_through_pipes(Who{}, input, 10);
  EXPECT_EQ(std::count(writers.begin(), writers.end(), static_cast<int>(::getpid())), 0);
}

}  // namespace
