// ThreadPool: the same API as ProcessPool, on threads. Also built with ThreadSanitizer in CI.
#include "mpdemo/pool/thread_pool.hpp"
#include "mpdemo/sys/errors.hpp"

#include "mpdemo/lab/kernels.hpp"

#include "support/expected.hpp"

#include <gtest/gtest.h>

#include <unistd.h>
#include <cstdint>
#include <numeric>
#include <random>
#include <set>
#include <stdexcept>
#include <thread>

namespace {

using mpdemo::testing::random_doubles;
using mpdemo::testing::squares_of;

TEST(ThreadPool, MapEqualsAnIndependentLoop) {
  mpdemo::ThreadPool pool;
  for (std::size_t n : {0u, 1u, 3u, 7919u, 1'000'000u}) {
    const auto input = random_doubles(n);
    EXPECT_EQ(pool.map(mpdemo::squared, input), squares_of(input)) << n;
  }
}

TEST(ThreadPool, SequentialMapUsesTheSameKernel) {
  const auto input = random_doubles(12345);
  EXPECT_EQ(mpdemo::sequential_map(mpdemo::squared, input), squares_of(input));
}

TEST(ThreadPool, ChunksizesAndWorkerCounts) {
  const auto input = random_doubles(4099);
  const auto expected = squares_of(input);
  for (std::size_t workers : {1u, 2u, 3u, 5u}) {
    mpdemo::ThreadPool pool(workers);
    EXPECT_EQ(pool.size(), workers);
    for (std::size_t chunksize : {0u, 1u, 64u, 10'000u}) {
      EXPECT_EQ(pool.map(mpdemo::squared, input, chunksize), expected) << workers << " " << chunksize;
    }
  }
}

TEST(ThreadPool, MapIntoACallersBufferAndOtherTypes) {
  mpdemo::ThreadPool pool(3);
  std::vector<std::int32_t> numbers(1000);
  std::iota(numbers.begin(), numbers.end(), -500);
  std::vector<std::int64_t> cubes(numbers.size());
  pool.map_into([](std::int32_t x) { return static_cast<std::int64_t>(x) * x * x; }, numbers, cubes, 9);
  for (std::size_t i = 0; i < numbers.size(); ++i) {
    EXPECT_EQ(cubes[i], static_cast<std::int64_t>(numbers[i]) * numbers[i] * numbers[i]);
  }
  std::vector<std::int64_t> too_short(2);
  EXPECT_THROW(pool.map_into([](std::int32_t x) { return std::int64_t{x}; }, numbers, too_short), mpdemo::BadArgument);
}

TEST(ThreadPool, WorkRunsOnThePoolsThreads) {
  mpdemo::ThreadPool pool(2);
  std::vector<int> input(200, 0);
  static thread_local int marker = 0;
  const auto ids = pool.map([](int) { return reinterpret_cast<std::uintptr_t>(&marker); }, input, 1);
  const std::set<std::uintptr_t> distinct(ids.begin(), ids.end());
  EXPECT_FALSE(distinct.count(reinterpret_cast<std::uintptr_t>(&marker))) << "the caller's thread did the work";
  EXPECT_LE(distinct.size(), 2u);
}

TEST(ThreadPool, AnExceptionReachesTheCallerAndThePoolStaysUsable) {
  mpdemo::ThreadPool pool(2);
  std::vector<int> input(1000);
  std::iota(input.begin(), input.end(), 0);
  const auto throws_at_500 = [](int x) {
    if (x == 500) throw std::runtime_error("element 500 is cursed");
    return x;
  };
  try {
    (void)pool.map(throws_at_500, input, 10);
    FAIL() << "map should have thrown";
  } catch (const mpdemo::WorkerError& e) {  // the same contract as ProcessPool::map
    EXPECT_EQ(e.cause(), "element 500 is cursed");
    EXPECT_EQ(e.chunk_begin(), 500u);
    EXPECT_EQ(e.chunk_end(), 510u);
    EXPECT_LT(e.worker(), 2u);
    EXPECT_EQ(e.pid(), ::getpid()) << "threads live in this process";
  }
  EXPECT_EQ(pool.map([](int x) { return x + 1; }, input)[999], 1000);
}

TEST(ThreadPool, ManyPoolsStartAndStopCleanly) {
  const auto input = random_doubles(1000);
  const auto expected = squares_of(input);
  for (int i = 0; i < 200; ++i) {
    mpdemo::ThreadPool pool(2);
    ASSERT_EQ(pool.map(mpdemo::squared, input), expected);
  }
}

}  // namespace
