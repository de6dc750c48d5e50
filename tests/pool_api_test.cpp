// The whole of Python's Pool, on both pools, modelled on CPython's own tests (Lib/test/
// _test_multiprocessing.py: _TestPool, _TestPoolWorkerErrors, _TestPoolWorkerLifetime,
// TestInitializers; test_concurrent_futures: broken pools, max_tasks_per_child). Every result is
// checked against an answer computed here, independently. Where a test needs a task to be "still
// running", the task waits on a gate in shared memory that the test opens: no sleeps as
// synchronisation, and no timing thresholds but generous bounds on promptness.
#include "mpdemo/pool/process_pool.hpp"
#include "mpdemo/pool/thread_pool.hpp"
#include "mpdemo/sys/errors.hpp"
#include "mpdemo/sys/huge_pages.hpp"
#include "support/mappings.hpp"
#include "support/pools.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <unistd.h>
#include <atomic>
#include <chrono>
#include <csignal>
#include <map>
#include <numeric>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <vector>

namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

// ---- Tasks (all TaskFunctions: captureless, or small trivially copyable objects) ----------------

int add(int a, int b) { return a + b; }
std::string repeat(const std::string& text, int times) {
  std::string out;
  for (int i = 0; i < times; ++i) out += text;
  return out;
}
int twice(int x) { return 2 * x; }
int fails_on_five(int x) {
  if (x == 5) throw std::runtime_error("five is not allowed");
  return 2 * x;
}
pid_t whose_pid(int) { return ::getpid(); }
bool is_odd(int x) { return x % 2 != 0; }
double halved(double x) { return x / 2; }
// Not trivially copyable (std::tuple assigns through its own operator=): a process pool serializes it.
std::tuple<double> halved_in_a_tuple(double x) { return {x / 2}; }
std::size_t length(const std::string& text) { return text.size(); }

/// Memory every worker shares with the test: the pool's arena is mapped before any worker is forked.
struct Shared {
  explicit Shared(std::size_t n = 8) : cells(mpdemo::SharedArena::process_default(), n) {
    for (int& cell : cells) cell = 0;
  }
  int* at(std::size_t i) { return &cells[i]; }
  static int load(const int* cell) { return std::atomic_ref<int>(*const_cast<int*>(cell)).load(); }
  static void store(int* cell, int value) { std::atomic_ref<int>(*cell).store(value); }
  mpdemo::SharedArray<int> cells;
};

/// Returns 2x, but element `slow` first waits until the test opens the gate.
struct WaitAtGate {
  int* gate;
  int slow;
  int operator()(int x) const {
    if (x == slow) {
      while (Shared::load(gate) == 0) std::this_thread::sleep_for(1ms);
    }
    return 2 * x;
  }
};

/// Waits until the gate opens, then returns x (apply).
struct Blocked {
  int* gate;
  int operator()(int x) const {
    while (Shared::load(gate) == 0) std::this_thread::sleep_for(1ms);
    return x;
  }
};

/// A struct that is not trivially copyable, serialized with its serialize() member.
struct Order {
  std::string customer;
  std::vector<double> amounts;
  template <class Archive>
  void serialize(Archive& archive) {
    archive(customer, amounts);
  }
};
double order_total(const Order& order) { return std::accumulate(order.amounts.begin(), order.amounts.end(), 0.0); }

std::vector<int> iota(int n) {
  std::vector<int> values(static_cast<std::size_t>(n));
  std::iota(values.begin(), values.end(), 0);
  return values;
}
std::vector<int> doubled(const std::vector<int>& values) {
  std::vector<int> out;
  for (int v : values) out.push_back(2 * v);
  return out;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// ---- The same tests on both pools ---------------------------------------------------------------

template <class Pool>
class PoolApi : public ::testing::Test {
 protected:
  static Pool make(std::size_t workers = 2) { return Pool(workers); }
  static constexpr bool kProcesses = std::is_base_of_v<mpdemo::ProcessPool, Pool>;
};

struct PoolNames {
  template <class T>
  static std::string GetName(int) {
    if (std::is_same_v<T, mpdemo::testing::ProcessPoolOverPipes>) return "ProcessPoolOverPipes";
    return std::is_same_v<T, mpdemo::ProcessPool> ? "ProcessPool" : "ThreadPool";
  }
};
using Pools = ::testing::Types<mpdemo::ProcessPool, mpdemo::testing::ProcessPoolOverPipes, mpdemo::ThreadPool>;
TYPED_TEST_SUITE(PoolApi, Pools, PoolNames);

// A large new result, from map or map_async, is made as the loop's is (interruptible_vector): asking
// for 2 MiB pages. madvise(MADV_HUGEPAGE) marks its mapping "hg" whatever the kernel then gives.
TYPED_TEST(PoolApi, ALargeResultAsksForHugePages) {
  if (mpdemo::huge_pages().private_setting.empty()) {
    GTEST_SKIP() << "this kernel has no transparent huge pages: madvise(MADV_HUGEPAGE) fails, and nothing is marked";
  }
  constexpr std::size_t kElements = std::size_t{4} << 20;  // 32 MiB of doubles
  const std::vector<double> input(kElements, 3.0);
  auto pool = TestFixture::make();
  auto asked = [&](const std::vector<double>& result) {
    EXPECT_EQ(result.size(), kElements);
    EXPECT_EQ(result[kElements / 2], 1.5);
    return mpdemo::testing::mapping_holding(result.data() + kElements / 2).flags.contains("hg");
  };
  EXPECT_TRUE(asked(pool.map(halved, input))) << "map";
  EXPECT_TRUE(asked(pool.map_async(halved, input).get(60s))) << "map_async";
  // Values that come back serialized (a process pool's SerializedJob) are kept in a vector made alike.
  const std::vector<std::tuple<double>> tuples = pool.map(halved_in_a_tuple, input);
  ASSERT_EQ(tuples.size(), kElements);
  EXPECT_EQ(std::get<0>(tuples[kElements / 2]), 1.5);
  EXPECT_TRUE(mpdemo::testing::mapping_holding(tuples.data() + kElements / 2).flags.contains("hg"))
      << "map, serialized";
}

// std::vector<bool> packs its elements 64 to a word: results of type bool come back whole and right
// from every call, though chunks of 3 put two or three chunks' results in every word.
TYPED_TEST(PoolApi, BoolResultsComeBackPacked) {
  auto pool = TestFixture::make();
  const std::vector<int> input = iota(10'000);
  std::vector<bool> expected;
  for (int x : input) expected.push_back(x % 2 != 0);
  EXPECT_TRUE(pool.apply(is_odd, 3));
  EXPECT_EQ(pool.map(is_odd, input, 3), expected);
  EXPECT_EQ(pool.map_async(is_odd, input, 3).get(60s), expected);
}

TYPED_TEST(PoolApi, ApplyReturnsWhatTheFunctionReturns) {
  auto pool = this->make();
  EXPECT_EQ(pool.apply(add, 3, 4), 7);
  EXPECT_EQ(pool.apply(repeat, std::string("ab"), 3), "ababab");  // values that must be serialized
  EXPECT_EQ(pool.apply([](double x) { return x * x; }, 1.5), 2.25);
}

TYPED_TEST(PoolApi, ApplyAsyncIsReadyOnlyOnceTheTaskEnds) {
  auto pool = this->make();
  Shared shared;
  const mpdemo::AsyncResult<int> result = pool.apply_async(Blocked{shared.at(0)}, 41);
  EXPECT_FALSE(result.ready());
  EXPECT_THROW((void)result.successful(), std::logic_error) << "successful() is only for a ready result";
  EXPECT_FALSE(result.wait(20ms));
  Shared::store(shared.at(0), 1);
  EXPECT_EQ(result.get(), 41);
  EXPECT_TRUE(result.ready());
  EXPECT_TRUE(result.successful());
  EXPECT_EQ(result.get(), 41) << "get() may be called again";
}

TYPED_TEST(PoolApi, GetWithATimeoutThrowsAndTheTaskGoesOn) {
  auto pool = this->make();
  Shared shared;
  const auto result = pool.apply_async(Blocked{shared.at(0)}, 9);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_THROW((void)result.get(100ms), mpdemo::ResultTimeout);
  EXPECT_GE(seconds_since(start), 0.1) << "it waited the time it was given";
  EXPECT_LT(seconds_since(start), 5.0) << "and did not hang";
  Shared::store(shared.at(0), 1);
  EXPECT_EQ(result.get(10s), 9) << "the task kept running and its result came";
}

TYPED_TEST(PoolApi, MapAsyncCallsItsCallbackOnceWithTheWholeResult) {
  auto pool = this->make();
  const std::vector<int> input = iota(1000);
  int calls = 0;
  std::vector<int> seen;
  bool error_called = false;
  mpdemo::Callbacks<std::vector<int>> callbacks{[&](const std::vector<int>& values) {
                                                  ++calls;
                                                  seen = values;
                                                },
                                                [&](const std::exception_ptr&) { error_called = true; }};
  const auto result = pool.map_async(twice, input, 7, callbacks);
  EXPECT_EQ(result.get(), doubled(input));
  EXPECT_EQ(calls, 1) << "the callback runs before get() returns, once";
  EXPECT_EQ(seen, doubled(input));
  EXPECT_FALSE(error_called);
}

TYPED_TEST(PoolApi, MapAsyncErrorCallbackGetsTheTasksFailure) {
  auto pool = this->make();
  bool callback_called = false;
  std::string failure;
  const auto result = pool.map_async(fails_on_five, iota(20), 2,
                                     {[&](const std::vector<int>&) { callback_called = true; },
                                      [&](const std::exception_ptr& error) {
                                        try {
                                          std::rethrow_exception(error);
                                        } catch (const mpdemo::WorkerError& e) {
                                          failure = e.cause();
                                        }
                                      }});
  try {
    (void)result.get();
    FAIL() << "expected WorkerError";
  } catch (const mpdemo::WorkerError& e) {
    EXPECT_EQ(e.cause(), "five is not allowed");
    EXPECT_EQ(e.chunk_begin(), 4u);
    EXPECT_EQ(e.chunk_end(), 6u);
  }
  EXPECT_FALSE(result.successful());
  EXPECT_FALSE(callback_called);
  EXPECT_EQ(failure, "five is not allowed");
}

TYPED_TEST(PoolApi, StarmapUnpacksTuplesAndPairs) {
  auto pool = this->make();
  const std::vector<std::tuple<int, int>> tuples{{1, 2}, {3, 4}, {10, -10}};
  EXPECT_EQ(pool.starmap(add, tuples), (std::vector<int>{3, 7, 0}));
  const std::vector<std::pair<std::string, int>> pairs{{"x", 3}, {"yz", 2}};
  EXPECT_EQ(pool.starmap_async(repeat, pairs, 1).get(), (std::vector<std::string>{"xxx", "yzyz"}));
}

TYPED_TEST(PoolApi, MapsValuesThatAreNotTriviallyCopyable) {
  auto pool = this->make();
  std::vector<std::string> lines;
  std::vector<std::size_t> expected;
  for (int i = 0; i < 300; ++i) {
    lines.push_back(std::string(static_cast<std::size_t>(i % 37), 'a' + static_cast<char>(i % 26)));
    expected.push_back(lines.back().size());
  }
  EXPECT_EQ(pool.map(length, lines), expected);
  EXPECT_EQ(pool.map([](const std::string& s) { return s + "!"; }, std::vector<std::string>{"a", ""}),
            (std::vector<std::string>{"a!", "!"}));
  const std::vector<Order> orders{{"ann", {1.5, 2.5}}, {"bob", {}}, {"cy", {10, 20, 30}}};
  EXPECT_EQ(pool.map(order_total, orders), (std::vector<double>{4.0, 0.0, 60.0}));
  // A large result: more than a worker's result buffer holds at first (it then comes through the pipe).
  const std::string big = pool.apply(repeat, std::string(1 << 20, 'q'), 3);
  EXPECT_EQ(big.size(), std::size_t{3} << 20);
  EXPECT_EQ(big.find_first_not_of('q'), std::string::npos);
}

TYPED_TEST(PoolApi, ImapYieldsEachResultBeforeTheMapEnds) {
  auto pool = this->make();
  Shared shared;
  // Element 3 waits for the gate; the test reads 0, 1 and 2 first, and only then opens it. If imap
  // waited for the whole map, next() would time out.
  auto results = pool.imap(WaitAtGate{shared.at(0), 3}, iota(4), 1);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(results.next(10s), std::optional<int>(2 * i));
  EXPECT_THROW((void)results.next(50ms), mpdemo::ResultTimeout) << "element 3 is still behind the gate";
  Shared::store(shared.at(0), 1);
  EXPECT_EQ(results.next(10s), std::optional<int>(6));
  EXPECT_EQ(results.next(10s), std::nullopt) << "the end";
}

TYPED_TEST(PoolApi, ImapIsInInputOrderAndImapUnorderedInCompletionOrder) {
  auto pool = this->make();
  const std::vector<int> input = iota(500);
  std::vector<int> ordered;
  for (const int r : pool.imap(twice, input, 7)) ordered.push_back(r);
  EXPECT_EQ(ordered, doubled(input));

  Shared shared;
  std::vector<int> unordered;
  for (const int r : pool.imap_unordered(WaitAtGate{shared.at(0), 0}, iota(6), 1)) {
    unordered.push_back(r);
    if (unordered.size() == 5) Shared::store(shared.at(0), 1);  // element 0 can only come last
  }
  EXPECT_EQ(unordered.back(), 0) << "element 0 ended last, so it comes last";
  std::sort(unordered.begin(), unordered.end());
  EXPECT_EQ(unordered, doubled(iota(6)));
}

TYPED_TEST(PoolApi, ImapThrowsAtTheFailedChunkAndGoesOnAfterIt) {
  auto pool = this->make();
  auto results = pool.imap(fails_on_five, iota(10), 2);  // chunk [4, 6) fails
  std::vector<int> seen;
  auto it = results.begin();
  seen.push_back(*it);
  for (int i = 0; i < 3; ++i) seen.push_back(*++it);
  EXPECT_EQ(seen, (std::vector<int>{0, 2, 4, 6}));
  EXPECT_THROW(++it, mpdemo::WorkerError) << "the failure is raised at its place";
  for (; it != results.end(); ++it) seen.push_back(*it);
  EXPECT_EQ(seen, (std::vector<int>{0, 2, 4, 6, 12, 14, 16, 18})) << "then the results after the failed chunk";
}

/// Counts its calls (in memory the test shares), then waits at the gate.
struct CountThenWait {
  int* calls;
  int* gate;
  int operator()(int x) const {
    std::atomic_ref<int>(*calls).fetch_add(1);
    while (Shared::load(gate) == 0) std::this_thread::sleep_for(1ms);
    return 2 * x;
  }
};

TYPED_TEST(PoolApi, AbandoningImapHalfWayLeavesThePoolUsable) {
  auto pool = this->make();
  Shared shared;
  {
    auto results = pool.imap(WaitAtGate{shared.at(0), 50}, iota(100), 1);
    auto it = results.begin();
    EXPECT_EQ(*it, 0);
    ++it;
    EXPECT_EQ(*it, 2);
  }  // abandoned: no more of its chunks are handed out
  Shared::store(shared.at(0), 1);
  EXPECT_EQ(pool.map(twice, iota(300)), doubled(iota(300)));
  EXPECT_EQ(pool.apply(add, 1, 1), 2);
}

TYPED_TEST(PoolApi, AnAbandonedImapHandsOutNothingMore) {
  auto pool = this->make(2);
  Shared shared;
  { auto results = pool.imap(CountThenWait{shared.at(0), shared.at(1)}, iota(100), 1); }  // not even begun
  Shared::store(shared.at(1), 1);  // the tasks already out may finish now
  pool.close();
  pool.join();  // everything given has ended
  EXPECT_LE(Shared::load(shared.at(0)), 4) << "at most the tasks that were out when it was abandoned ran";
}

TYPED_TEST(PoolApi, AMapsFirstFailureStopsTheHandingOut) {
  auto pool = this->make(2);
  Shared shared;
  struct FailFirstCountTheRest {
    int* calls;
    int* gate;
    int operator()(int x) const {
      if (x == 0) throw std::runtime_error("the first element fails");
      return CountThenWait{calls, gate}(x);
    }
  };
  EXPECT_THROW((void)pool.map_async(FailFirstCountTheRest{shared.at(0), shared.at(1)}, iota(200), 1).get(10s),
               mpdemo::WorkerError);
  Shared::store(shared.at(1), 1);
  pool.close();
  pool.join();
  EXPECT_LE(Shared::load(shared.at(0)), 4) << "after the failure, no chunk was handed out";
}

TYPED_TEST(PoolApi, WorkGivenWhileAnotherThreadWaitsGoesOutAtOnce) {
  auto pool = this->make(2);
  Shared shared;
  const auto blocked = pool.apply_async(Blocked{shared.at(0)}, 1);
  std::thread waiter([&] { EXPECT_EQ(blocked.get(), 1); });  // waits (and drives) for a long time
  std::this_thread::sleep_for(20ms);                         // let it start waiting; the test holds either way
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(pool.apply_async(add, 2, 3).get(10s), 5) << "handed out while the other thread waited";
  EXPECT_LT(seconds_since(start), 5.0);
  Shared::store(shared.at(0), 1);
  waiter.join();
}

TYPED_TEST(PoolApi, ImapRefusesChunksizeZero) {
  auto pool = this->make();
  EXPECT_THROW((void)pool.imap(twice, iota(3), 0), mpdemo::BadArgument);
  EXPECT_THROW((void)pool.imap_unordered(twice, iota(3), 0), mpdemo::BadArgument);
}

TYPED_TEST(PoolApi, EmptyInputsWorkEverywhere) {
  auto pool = this->make();
  const std::vector<int> none;
  EXPECT_TRUE(pool.map(twice, none).empty());
  EXPECT_TRUE(pool.map_async(twice, none, 1).get(5s).empty());
  EXPECT_TRUE(pool.starmap(add, std::vector<std::tuple<int, int>>{}).empty());
  auto ordered = pool.imap(twice, none);
  EXPECT_EQ(ordered.begin(), ordered.end());
  auto unordered = pool.imap_unordered(twice, none);
  EXPECT_EQ(unordered.begin(), unordered.end());
  EXPECT_TRUE(pool.map(length, std::vector<std::string>{}).empty());
}

TYPED_TEST(PoolApi, SeveralJobsInFlightFromOneThreadEachCompleteIndependently) {
  auto pool = this->make();
  Shared shared;
  const auto blocked = pool.apply_async(Blocked{shared.at(0)}, 1);
  const auto quick = pool.apply_async(add, 20, 22);
  auto stream = pool.imap(twice, iota(50), 5);
  std::vector<int> streamed;
  for (const int r : stream) streamed.push_back(r);
  EXPECT_EQ(streamed, doubled(iota(50))) << "the imap finished while another job was still blocked";
  EXPECT_EQ(quick.get(10s), 42);
  EXPECT_FALSE(blocked.ready());
  Shared::store(shared.at(0), 1);
  EXPECT_EQ(blocked.get(10s), 1);
}

TYPED_TEST(PoolApi, CloseLetsQueuedWorkFinishAndRefusesNewWork) {
  auto pool = this->make();
  std::vector<mpdemo::AsyncResult<int>> results;
  for (int i = 0; i < 8; ++i) results.push_back(pool.apply_async(add, i, i));
  EXPECT_THROW(pool.join(), std::logic_error) << "join() before close() or terminate()";
  pool.close();
  EXPECT_TRUE(pool.closed());
  EXPECT_THROW((void)pool.apply_async(add, 1, 2), mpdemo::PoolClosed);
  EXPECT_THROW((void)pool.map(twice, iota(3)), mpdemo::PoolClosed);
  pool.join();
  for (int i = 0; i < 8; ++i) {
    ASSERT_TRUE(results[static_cast<std::size_t>(i)].ready());
    EXPECT_EQ(results[static_cast<std::size_t>(i)].get(), 2 * i);
  }
}

TYPED_TEST(PoolApi, TerminateFailsPendingResultsPromptly) {
  auto pool = this->make(2);
  Shared shared;
  // Two tasks that never end by themselves occupy both workers; four more wait behind them.
  std::vector<mpdemo::AsyncResult<int>> results;
  for (int i = 0; i < 6; ++i) results.push_back(pool.apply_async(Blocked{shared.at(0)}, i));
  const auto start = std::chrono::steady_clock::now();
  pool.terminate();
  EXPECT_TRUE(pool.terminated());
  for (std::size_t i = 2; i < results.size(); ++i) {
    EXPECT_THROW((void)results[i].get(10s), mpdemo::PoolTerminated) << i;
  }
  EXPECT_LT(seconds_since(start), 5.0);
  EXPECT_THROW((void)pool.apply_async(add, 1, 2), mpdemo::PoolTerminated);
  if constexpr (TestFixture::kProcesses) {
    // Processes are killed: even the running tasks fail at once.
    EXPECT_THROW((void)results[0].get(10s), mpdemo::PoolTerminated);
  }
  Shared::store(shared.at(0), 1);  // threads cannot be killed: the two running ones finish now
  pool.join();
}

TYPED_TEST(PoolApi, ResultsOfADestroyedPoolFailInsteadOfHanging) {
  Shared shared;
  mpdemo::AsyncResult<int> orphan;
  {
    auto pool = this->make();
    orphan = pool.apply_async(Blocked{shared.at(0)}, 5);
    for (int i = 0; i < 4; ++i) (void)pool.apply_async(Blocked{shared.at(0)}, i);
    if constexpr (!TestFixture::kProcesses) {
      std::thread opener([&] {
        std::this_thread::sleep_for(50ms);  // threads cannot be killed: the running ones are let go
        Shared::store(shared.at(0), 1);
      });
      opener.detach();
    }
  }  // the destructor terminates pending work, as Python's context manager does
  if constexpr (TestFixture::kProcesses) {
    EXPECT_THROW((void)orphan.get(5s), mpdemo::PoolTerminated);
  } else {
    EXPECT_TRUE(orphan.ready()) << "its destructor waited for the running chunk";
  }
}

TYPED_TEST(PoolApi, ATasksExceptionReachesGetWithItsMessage) {
  auto pool = this->make();
  try {
    (void)pool.apply(fails_on_five, 5);
    FAIL() << "expected WorkerError";
  } catch (const mpdemo::WorkerError& e) {
    EXPECT_EQ(e.cause(), "five is not allowed");
    EXPECT_LT(e.worker(), pool.size());
    EXPECT_GT(e.pid(), 0);
    EXPECT_THAT(e.what(), HasSubstr("five is not allowed"));
  }
  EXPECT_EQ(pool.apply(fails_on_five, 4), 8) << "the pool goes on";
}

TYPED_TEST(PoolApi, MapReportsItsFirstFailureWithoutWaitingForAHungSibling) {
  auto pool = this->make(2);
  Shared shared;
  struct FailOrHang {
    int* gate;
    int operator()(int x) const {
      if (x == 0) throw std::runtime_error("first element fails");
      while (Shared::load(gate) == 0) std::this_thread::sleep_for(1ms);
      return x;
    }
  };
  const auto start = std::chrono::steady_clock::now();
  EXPECT_THROW((void)pool.map_async(FailOrHang{shared.at(0)}, iota(2), 1).get(10s), mpdemo::WorkerError);
  EXPECT_LT(seconds_since(start), 5.0) << "the hung sibling was not waited for";
  Shared::store(shared.at(0), 1);
  EXPECT_EQ(pool.apply(add, 2, 3), 5);
}

TYPED_TEST(PoolApi, TheInitializerRunsOnceInEveryWorkerBeforeItsFirstTask) {
  Shared shared;
  int* runs = shared.at(0);
  mpdemo::ProcessPoolOptions options;  // PoolOptions, and for processes a little more
  options.workers = 3;
  options.initializer = [runs] { std::atomic_ref<int>(*runs).fetch_add(1); };
  TypeParam pool(options);
  EXPECT_EQ(Shared::load(runs), 3);
  EXPECT_EQ(pool.map(twice, iota(100), 1), doubled(iota(100)));
  EXPECT_EQ(Shared::load(runs), 3) << "once per worker, not per task";
}

TYPED_TEST(PoolApi, AnInitializerThatThrowsFailsTheConstructorWithItsMessage) {
  mpdemo::ProcessPoolOptions options;
  options.workers = 2;
  options.initializer = [] { throw std::runtime_error("no database"); };
  try {
    TypeParam pool(options);
    FAIL() << "expected WorkerError";
  } catch (const mpdemo::WorkerError& e) {
    EXPECT_THAT(e.what(), HasSubstr("initializer"));
    EXPECT_THAT(e.what(), HasSubstr("no database"));
  }
}

TYPED_TEST(PoolApi, MaxTasksPerChildReplacesWorkersWithoutLosingATask) {
  Shared shared;
  int* initializations = shared.at(0);
  mpdemo::ProcessPoolOptions options;
  options.workers = 2;
  options.maxtasksperchild = 3;
  options.initializer = [initializations] { std::atomic_ref<int>(*initializations).fetch_add(1); };
  TypeParam pool(options);
  std::vector<mpdemo::AsyncResult<int>> results;
  for (int i = 0; i < 30; ++i) results.push_back(pool.apply_async(add, i, 1));
  for (int i = 0; i < 30; ++i) EXPECT_EQ(results[static_cast<std::size_t>(i)].get(10s), i + 1);
  // 30 tasks, at most 3 each: at least 10 workers served, each initialized once.
  EXPECT_GE(Shared::load(initializations), 10);
  if constexpr (TestFixture::kProcesses) {
    std::set<pid_t> pids;
    for (const pid_t pid : pool.map(whose_pid, iota(30), 1)) pids.insert(pid);
    EXPECT_GE(pids.size(), 10u) << "a worker serves at most 3 tasks";
    EXPECT_EQ(pool.size(), 2u);
  } else {
    EXPECT_EQ(pool.thread_ids().size(), 2u);
  }
}

TYPED_TEST(PoolApi, ManyThreadsShareOnePool) {
  auto pool = this->make();
  std::atomic<int> wrong{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t) {
    callers.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        if (pool.apply(add, t, i) != t + i) ++wrong;
        if (pool.map(twice, iota(t + i)) != doubled(iota(t + i))) ++wrong;
      }
    });
  }
  for (std::thread& caller : callers) caller.join();
  EXPECT_EQ(wrong.load(), 0);
}

TYPED_TEST(PoolApi, APoolOfTwoHundredWorkersWorks) {
  auto pool = this->make(200);
  EXPECT_EQ(pool.size(), 200u);
  EXPECT_EQ(pool.map(twice, iota(1000), 1), doubled(iota(1000)));
}

// ---- What only processes do ----------------------------------------------------------------------

/// Records when it dies (in memory the test shares), then dies.
struct DieAndSayWhen {
  double* died_at;
  int operator()(int) const {
    *died_at = std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
    ::raise(SIGKILL);
    return 0;
  }
};

TEST(ProcessPoolApi, AWorkersDeathFailsItsResultWithin100MsAndTheWorkerIsReplaced) {
  mpdemo::ProcessPool pool(2);
  const auto before = pool.worker_pids();
  auto died_at = pool.make_shared_array<double>(1);
  died_at[0] = 0;
  Shared shared;
  const auto bystander = pool.apply_async(Blocked{shared.at(0)}, 7);  // another job, on the other worker
  const auto dying = pool.apply_async(DieAndSayWhen{died_at.data()}, 0);
  try {
    (void)dying.get(10s);
    FAIL() << "expected WorkerError";
  } catch (const mpdemo::WorkerError& e) {
    const double now = std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
    EXPECT_THAT(e.cause(), HasSubstr("SIGKILL"));
    ASSERT_GT(died_at[0], 0.0);
    EXPECT_LT(now - died_at[0], 0.1) << "from the death to the throw (the promise: 100 ms)";
  }
  EXPECT_FALSE(bystander.ready()) << "the other job is untouched";
  Shared::store(shared.at(0), 1);
  EXPECT_EQ(bystander.get(10s), 7);
  EXPECT_EQ(pool.apply(add, 2, 2), 4) << "the pool replaced its worker and goes on";
  EXPECT_NE(pool.worker_pids(), before);
}

TEST(ProcessPoolApi, GetAfterPoolMovedFromIsSafe) {
  mpdemo::ProcessPool pool(1);
  const auto result = pool.apply_async(add, 1, 2);
  mpdemo::ProcessPool moved = std::move(pool);
  EXPECT_EQ(result.get(10s), 3) << "the result follows the pool's state, not its handle";
  EXPECT_EQ(pool.size(), 0u);
}

}  // namespace
