#include "mpdemo/pool/process_pool.hpp"

#include "mpdemo/lab/kernels.hpp"
#include "mpdemo/sys/huge_pages.hpp"
#include "mpdemo/sys/proc_files.hpp"
#include "mpdemo/sys/topology.hpp"

#include "support/expected.hpp"
#include "support/flags.hpp"
#include "support/mappings.hpp"

#include <gtest/gtest.h>

#include <unistd.h>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <set>
#include <thread>

namespace {

using mpdemo::testing::raise_flag;
using mpdemo::testing::random_doubles;
using mpdemo::testing::squares_of;
using mpdemo::testing::wait_for_flag;
using namespace std::chrono_literals;

using mpdemo::ProcessPool;

std::size_t cores() { return mpdemo::system_topology().default_workers(); }

class ProcessPoolSizes : public ::testing::TestWithParam<std::size_t> {};

TEST_P(ProcessPoolSizes, MapEqualsTheSequentialAnswerExactly) {
  ProcessPool pool;
  const auto input = random_doubles(GetParam());
  EXPECT_EQ(pool.map(mpdemo::squared, input), squares_of(input));
}

std::vector<std::size_t> interesting_sizes() {
  const std::size_t w = cores();
  return {0, 1, w > 1 ? w - 1 : 1, w + 1, 7919 /* a prime */, 1'000'000};
}
INSTANTIATE_TEST_SUITE_P(Sizes, ProcessPoolSizes, ::testing::ValuesIn(interesting_sizes()));

class ProcessPoolChunksizes : public ::testing::TestWithParam<std::size_t> {};

TEST_P(ProcessPoolChunksizes, AnyChunksizeGivesTheSameAnswer) {
  ProcessPool pool;
  const auto input = random_doubles(10'007);
  EXPECT_EQ(pool.map(mpdemo::squared, input, GetParam()), squares_of(input));
}
// 1, the default (0), a middling one, and larger than N.
INSTANTIATE_TEST_SUITE_P(Chunksizes, ProcessPoolChunksizes, ::testing::Values(1, 0, 333, 50'000));

class ProcessPoolWorkerCounts : public ::testing::TestWithParam<std::size_t> {};

TEST_P(ProcessPoolWorkerCounts, AnyWorkerCountGivesTheSameAnswer) {
  const std::size_t workers = GetParam();
  ProcessPool pool(workers);
  ASSERT_EQ(pool.size(), workers);
  const auto input = random_doubles(4099);
  EXPECT_EQ(pool.map(mpdemo::squared, input, 17), squares_of(input));
}

std::vector<std::size_t> worker_counts() {
  std::vector<std::size_t> counts;
  for (std::size_t w = 1; w <= 2 * cores(); ++w) counts.push_back(w);
  return counts;
}
INSTANTIATE_TEST_SUITE_P(Workers, ProcessPoolWorkerCounts, ::testing::ValuesIn(worker_counts()));

std::int64_t collatz_steps(std::int64_t n) {
  std::int64_t steps = 0;
  while (n > 1) {
    n = n % 2 == 0 ? n / 2 : 3 * n + 1;
    ++steps;
  }
  return steps;
}

TEST(ProcessPool, MapsOtherFunctionsAndIntegerTypes) {
  ProcessPool pool;
  std::vector<std::int64_t> numbers(5000);
  std::iota(numbers.begin(), numbers.end(), 1);
  const auto steps = pool.map(&collatz_steps, numbers, 7);
  ASSERT_EQ(steps.size(), numbers.size());
  EXPECT_EQ(steps[0], 0);     // 1
  EXPECT_EQ(steps[26], 111);  // 27 takes 111 steps, the classic long one
  for (std::size_t i = 0; i < numbers.size(); ++i) EXPECT_EQ(steps[i], collatz_steps(numbers[i])) << i;

  const auto input = random_doubles(999);
  const auto roots = pool.map([](double x) { return std::sqrt(x) + 1.0; }, input);
  for (std::size_t i = 0; i < input.size(); ++i) EXPECT_EQ(roots[i], std::sqrt(input[i]) + 1.0);

  // The result type may differ from the input type.
  const auto as_float = pool.map([](std::int64_t x) { return static_cast<float>(x) / 2.0f; }, numbers);
  EXPECT_EQ(as_float[9], 5.0f);
}

// Every slot's pid; fails the test if a slot has no live worker.
std::vector<pid_t> live_pids(const ProcessPool& pool) {
  std::vector<pid_t> pids;
  for (const std::optional<pid_t>& pid : pool.worker_pids()) {
    EXPECT_TRUE(pid.has_value()) << "a slot without a live worker";
    if (pid) pids.push_back(*pid);
  }
  return pids;
}

TEST(ProcessPool, WorkersAreSeparateProcessesForkedByThisOne) {
  ProcessPool pool(3);
  const auto pids = live_pids(pool);
  ASSERT_EQ(pids.size(), 3u);
  EXPECT_EQ(std::set<pid_t>(pids.begin(), pids.end()).size(), 3u) << "pids must be distinct";
  for (pid_t pid : pids) {
    EXPECT_NE(pid, ::getpid());
    // Each worker's parent, read from the kernel's own account of it.
    const std::optional<mpdemo::ProcStat> stat = mpdemo::ProcStat::of(pid);
    ASSERT_TRUE(stat) << "worker " << pid << " is not alive";
    EXPECT_EQ(stat->parent, ::getpid());
  }
}

// Which process wrote each element: the function reads getpid() in whichever process runs it.
TEST(ProcessPool, ResultsAreComputedInTheWorkersNotTheMaster) {
  ProcessPool pool(2);
  std::vector<int> input(1000, 0);
  const auto writers = pool.map([](int) { return static_cast<int>(::getpid()); }, input, 10);
  const auto pids = live_pids(pool);
  const std::set<int> workers(pids.begin(), pids.end());
  for (int writer : writers) EXPECT_TRUE(workers.count(writer) == 1) << writer << " is not a worker";
}

TEST(ProcessPool, ZeroCopyMapWritesStraightIntoSharedMemory) {
  ProcessPool pool;
  const std::size_t n = 100'003;
  auto input = pool.make_shared_array<double>(n);
  auto output = pool.make_shared_array<double>(n);
  const auto values = random_doubles(n);
  std::copy(values.begin(), values.end(), input.begin());
  const mpdemo::MapStats stats = pool.map_into(mpdemo::squared, input, output);
  const auto expected = squares_of(values);
  EXPECT_TRUE(std::equal(output.begin(), output.end(), expected.begin()));
  EXPECT_EQ(stats.traffic.copied_in_bytes, 0u) << "nothing to move: both arrays were already shared";
}

// Reports whether the element it is given lives inside [begin, end): the kernel passes each element
// by reference, so this tells where the worker read it from.
struct ReadFrom {
  const double* begin;
  const double* end;
  double operator()(const double& x) const {
    const auto at = reinterpret_cast<std::uintptr_t>(&x);
    return at >= reinterpret_cast<std::uintptr_t>(begin) && at < reinterpret_cast<std::uintptr_t>(end) ? 1.0 : 0.0;
  }
};

TEST(ProcessPool, SharedArraysAreReadInPlaceAndResultsWrittenInPlace) {
  ProcessPool pool(2);
  const std::size_t n = 50'000;
  auto input = pool.make_shared_array<double>(n);
  auto output = pool.make_shared_array<double>(n);
  std::fill(input.begin(), input.end(), 0.5);
  const auto traffic = pool.map_into(ReadFrom{input.data(), input.data() + n}, input, output).traffic;
  EXPECT_EQ(std::count(output.begin(), output.end(), 1.0), static_cast<long>(n)) << "a worker read a copy";
  EXPECT_EQ(traffic.copied_in_bytes, 0u);
  EXPECT_EQ(traffic.copied_out_bytes, 0u);
  // Only control messages crossed the pipes: far fewer bytes than the data itself.
  EXPECT_GT(traffic.pipe_bytes, 0u);
  EXPECT_LT(traffic.pipe_bytes, n * sizeof(double) / 10);
}

TEST(ProcessPool, OrdinaryVectorsAreCopiedAndThePipesStillCarryNoData) {
  ProcessPool pool(2);
  const std::vector<double> input(50'000, 0.5);
  mpdemo::MapStats stats;
  const auto where = pool.map(ReadFrom{input.data(), input.data() + input.size()}, input, 0, &stats);
  EXPECT_EQ(std::count(where.begin(), where.end(), 0.0), static_cast<long>(input.size()))
      << "workers cannot see the master's private vector: they must read a copy";
  const mpdemo::MapTraffic& traffic = stats.traffic;
  EXPECT_EQ(traffic.copied_in_bytes, input.size() * sizeof(double));
  EXPECT_EQ(traffic.copied_out_bytes, input.size() * sizeof(double));
  EXPECT_LT(traffic.pipe_bytes, input.size() * sizeof(double) / 10);
  mpdemo::MapStats piped;
  (void)pool.map_through_pipes(mpdemo::squared, input, 0, &piped);
  EXPECT_GE(piped.traffic.pipe_bytes, 2 * input.size() * sizeof(double)) << "the pipe path sends it all";
  EXPECT_EQ(piped.traffic.copied_in_bytes, 0u);
  EXPECT_EQ(stats.traffic.copied_in_bytes, input.size() * sizeof(double)) << "each call's figures are its own";
}

TEST(ProcessPool, MapIntoAnOrdinaryBufferCopiesOut) {
  ProcessPool pool;
  const auto input = random_doubles(5000);
  std::vector<double> output(input.size());
  pool.map_into(mpdemo::squared, input, output);
  EXPECT_EQ(output, squares_of(input));
  std::vector<double> wrong_size(3);
  EXPECT_THROW(pool.map_into(mpdemo::squared, input, wrong_size), mpdemo::BadArgument);
}

TEST(ProcessPool, DataTooLargeForTheArenaIsAnMpdemoErrorAndThePoolStaysUsable) {
  mpdemo::ProcessPoolOptions options;
  options.workers = 2;
  options.arena = std::make_shared<mpdemo::SharedArena>(std::size_t{1} << 20);
  ProcessPool pool(options);
  const auto input = random_doubles(200'000);  // 1.6 MB in and out: staged, it cannot fit in 1 MiB
  try {
    (void)pool.map(mpdemo::squared, input);
    FAIL() << "expected ArenaExhausted";
  } catch (const mpdemo::Error& error) {  // one catch for everything mpdemo refuses
    EXPECT_NE(dynamic_cast<const mpdemo::ArenaExhausted*>(&error), nullptr) << error.what();
    EXPECT_NE(std::string(error.what()).find("shared arena exhausted"), std::string::npos) << error.what();
  }
  const auto small = random_doubles(1000);
  EXPECT_EQ(pool.map(mpdemo::squared, small), squares_of(small));
  EXPECT_EQ(options.arena->free_bytes(), mpdemo::SharedArena(std::size_t{1} << 20).free_bytes())
      << "the failed map returned what it had staged";
}

TEST(ProcessPool, ReusedAcrossManyMapsWithoutNewWorkers) {
  ProcessPool pool;
  const auto pids = pool.worker_pids();
  for (std::size_t n : {10u, 1000u, 0u, 77u, 100'000u}) {
    const auto input = random_doubles(n, n);
    EXPECT_EQ(pool.map(mpdemo::squared, input), squares_of(input)) << n;
  }
  EXPECT_EQ(pool.worker_pids(), pids) << "a warm pool forks its workers once";
}

/// Chunks of 10 elements over two workers: worker 0's region is chunks 0-1, worker 1's 2-3, and each
/// worker is handed both of its chunks at once. Worker 0 waits at its first element until worker 1
/// has begun chunk 2 (so that chunk 3 is behind a task its worker is busy with); worker 1 waits at
/// chunk 2's first element until an element of chunk 3 has run (20 s at most each). So chunk 3 can
/// run before then only by being taken back from worker 1 and handed to worker 0, idle once its own
/// two chunks are done.
struct HeldUntilChunkThreeRuns {
  long* flags;  ///< shared: [0] an element of chunk 3 ran, [1] worker 1 began chunk 2
  long operator()(long x) const {
    if (x >= 30) raise_flag(&flags[0]);
    if (x == 0) wait_for_flag(&flags[1], 20s);
    if (x == 20) {
      raise_flag(&flags[1]);
      wait_for_flag(&flags[0], 20s);
    }
    return static_cast<long>(::getpid());
  }
};

TEST(ProcessPool, AWorkerLeftWithNothingTakesATaskABusyWorkerHoldsAndHasNotBegun) {
  ProcessPool pool(2);
  const long first = pool.worker_pids()[0].value();
  const long second = pool.worker_pids()[1].value();
  mpdemo::SharedArray<long> flags(mpdemo::SharedArena::process_default(), 2);
  std::fill(flags.begin(), flags.end(), 0);
  std::vector<long> input(40);
  std::iota(input.begin(), input.end(), 0);
  const auto start = std::chrono::steady_clock::now();
  const std::vector<long> ran_by = pool.map(HeldUntilChunkThreeRuns{flags.data()}, input, 10);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s) << "chunk 3 waited behind chunk 2 for its worker";
  for (std::size_t i = 0; i < input.size(); ++i) {
    EXPECT_EQ(ran_by[i], i < 20 || i >= 30 ? first : second) << "element " << i;
  }
  EXPECT_EQ(pool.worker_pids()[0].value(), first);
  EXPECT_EQ(pool.worker_pids()[1].value(), second);
}

TEST(ProcessPool, ThePipeDataPathGivesTheSameAnswers) {
  ProcessPool pool;
  for (std::size_t n : {0u, 1u, 5u, 7919u, 300'000u}) {
    const auto input = random_doubles(n);
    EXPECT_EQ(pool.map_through_pipes(mpdemo::squared, input), squares_of(input)) << n;
  }
  // Chunks larger than a pipe's 64 KiB buffer, and tiny ones, and another type.
  const auto input = random_doubles(100'000);
  EXPECT_EQ(pool.map_through_pipes(mpdemo::squared, input, 50'000), squares_of(input));
  EXPECT_EQ(pool.map_through_pipes(mpdemo::squared, input, 1), squares_of(input));
  std::vector<std::int64_t> numbers(1000);
  std::iota(numbers.begin(), numbers.end(), 1);
  const auto steps = pool.map_through_pipes(&collatz_steps, numbers, 3);
  for (std::size_t i = 0; i < numbers.size(); ++i) EXPECT_EQ(steps[i], collatz_steps(numbers[i]));
  // And the shared-memory path still works on the same workers afterwards.
  EXPECT_EQ(pool.map(mpdemo::squared, input), squares_of(input));
}

// A function that takes at least 10 ms per element, wherever it runs.
double slow_identity(double x) {
  std::this_thread::sleep_for(std::chrono::milliseconds(10));
  return x;
}

// The phases against a clock of the test's own: compute cannot be shorter than the work the workers
// were given (8 elements of 10 ms on 2 workers), and no phase, nor their sum, can be longer than the
// whole call as the test measured it.
TEST(ProcessPool, PhasesAgreeWithAnIndependentClock) {
  const auto before_start = std::chrono::steady_clock::now();
  ProcessPool pool(2);
  const double start_wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - before_start).count();
  EXPECT_GT(pool.startup_seconds(), 0.0);
  EXPECT_LE(pool.startup_seconds(), start_wall);

  const std::vector<double> input(8, 1.5);
  mpdemo::MapStats stats;
  const auto before_map = std::chrono::steady_clock::now();
  EXPECT_EQ(pool.map(slow_identity, input, 1, &stats), input);
  const double map_wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - before_map).count();
  const mpdemo::PhaseTimes& t = stats.phases;
  EXPECT_GE(t.compute, 8 * 0.010 / 2) << "compute ended before the workers could have finished";
  EXPECT_GE(t.move_in, 0.0);
  EXPECT_GE(t.collect, 0.0);
  EXPECT_LE(t.move_in + t.compute + t.collect, map_wall);
  EXPECT_EQ(t.start_workers, 0.0) << "starting workers is the pool's cost, not a map's";
  EXPECT_EQ(t.stop_workers, 0.0);
}

}  // namespace

namespace {

TEST(SharedArena, AsksForHugePagesAndGetsThemWhereTheKernelOffersThem) {
  const mpdemo::HugePages pages = mpdemo::huge_pages();
  if (pages.shared_setting.empty()) {
    GTEST_SKIP() << "this kernel has no transparent huge pages: madvise(MADV_HUGEPAGE) fails, and nothing is marked";
  }
  const auto arena = std::make_shared<mpdemo::SharedArena>(std::size_t{64} << 20);
  // The arena's first block lies in its first 2 MiB, beside the allocator's own header.
  constexpr std::size_t kSmallBytes = std::size_t{1} << 20;
  mpdemo::SharedArray<std::byte> first(arena, kSmallBytes);
  const mpdemo::testing::MappingFacts asked = mpdemo::testing::mapping_holding(first.data());
  EXPECT_TRUE(asked.flags.contains("hg")) << "madvise(MADV_HUGEPAGE) marks the mapping 'hg' whatever the setting";
  EXPECT_TRUE(asked.flags.contains("dd")) << "and MADV_DONTDUMP 'dd'";

  EXPECT_EQ(arena->source(),
            pages.own_tmpfs ? mpdemo::SharedMemorySource::own_tmpfs : mpdemo::SharedMemorySource::anonymous)
      << "the system's shared memory where it has huge pages, or where mpdemo's own tmpfs cannot be made";
  if (!pages.arena_huge()) {
    GTEST_SKIP() << "no huge pages for shared memory here (" << mpdemo::setting_file_name(pages.shared_setting_file)
                 << ": " << pages.shared_setting << "; " << pages.own_tmpfs_failure
                 << "): the arena asked, and that is checked";
  }
  // Asked before the allocator wrote its header, the spans it and the first block touch are huge
  // pages once the block is written. (Asked after, as before a3f3eb7, the header's small page kept
  // them in 4 KiB pages: 0 kB here.) Nothing else of the arena is touched yet.
  std::fill(first.begin(), first.end(), std::byte{1});
  const std::size_t around_the_header = mpdemo::testing::mapping_holding(first.data()).shmem_pmd_mapped_kb;
  EXPECT_GE(around_the_header, 2048u) << "the first block's spans, from " << mpdemo::describe(arena->source());

  constexpr std::size_t kBytes = std::size_t{16} << 20;
  mpdemo::SharedArray<std::byte> block(arena, kBytes);
  std::fill(block.begin(), block.end(), std::byte{1});
  // 16 MiB written hold at least seven whole 2 MiB spans; the kernel may still fall back to small
  // pages when it finds no free 2 MiB of memory, so one more huge page is what can be demanded.
  EXPECT_GE(mpdemo::testing::mapping_holding(block.data()).shmem_pmd_mapped_kb, around_the_header + 2048)
      << "from " << mpdemo::describe(arena->source());

  // Freeing a block of kTrimThreshold or more gives back its whole 2 MiB spans, and only those:
  // punching out part of a huge page would split it, the neighbouring blocks' half included.
  mpdemo::SharedArray<std::byte> large(arena, mpdemo::SharedArena::kTrimThreshold + (std::size_t{3} << 20));
  mpdemo::SharedArray<std::byte> after(arena, kSmallBytes);
  std::fill(large.begin(), large.end(), std::byte{1});
  std::fill(after.begin(), after.end(), std::byte{1});
  const auto begin = reinterpret_cast<std::uintptr_t>(large.data());
  const std::uintptr_t first_whole =
      (begin + mpdemo::kHugePageBytes - 1) / mpdemo::kHugePageBytes * mpdemo::kHugePageBytes;
  const std::uintptr_t end_whole = (begin + large.size()) / mpdemo::kHugePageBytes * mpdemo::kHugePageBytes;
  ASSERT_TRUE(first_whole != begin || end_whole != begin + large.size()) << "the test needs a block edge inside a span";
  const std::size_t whole_kb = (end_whole - first_whole) / 1024;
  const std::size_t before_kb = mpdemo::testing::mapping_holding(after.data()).shmem_pmd_mapped_kb;
  large = {};
  const std::size_t after_kb = mpdemo::testing::mapping_holding(after.data()).shmem_pmd_mapped_kb;
  EXPECT_LT(after_kb, before_kb) << "the freed block's memory went back to the system";
  EXPECT_GE(after_kb + whole_kb, before_kb) << "no more than its whole spans: its neighbours' huge pages stay whole";
  EXPECT_TRUE(std::all_of(block.begin(), block.end(), [](std::byte b) { return b == std::byte{1}; }));
  EXPECT_TRUE(std::all_of(after.begin(), after.end(), [](std::byte b) { return b == std::byte{1}; }));
}

}  // namespace
