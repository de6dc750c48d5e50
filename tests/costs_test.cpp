#include "mpdemo/lab/costs.hpp"
#include "mpdemo/report/costs.hpp"
#include "mpdemo/sys/errors.hpp"
#include "support/run_program.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using mpdemo::CostMeasurement;
using mpdemo::Summary;

// Small on purpose: these tests check that each probe works and reports sane numbers, never how fast.
constexpr std::size_t kRepeats = 3;
constexpr std::size_t kOperations = 5;
constexpr std::size_t kBytes = std::size_t{1} << 20;

void expect_positive_and_finite(const Summary& summary) {
  for (double seconds : {summary.min, summary.median, summary.max}) {
    EXPECT_TRUE(std::isfinite(seconds)) << seconds;
    EXPECT_GT(seconds, 0.0);
  }
  EXPECT_LE(summary.min, summary.median);
  EXPECT_LE(summary.median, summary.max);
}

// A probe timed by the test's own clock as well: a sample of `operations` operations cannot have
// taken longer than the whole call that measured it.
template <class Probe>
void expect_within_the_call(Probe probe, std::size_t operations) {
  const auto before = std::chrono::steady_clock::now();
  const Summary summary = probe();
  const double call = std::chrono::duration<double>(std::chrono::steady_clock::now() - before).count();
  expect_positive_and_finite(summary);
  EXPECT_LE(summary.max * static_cast<double>(operations), call);
}

// Every probe reaps what it forked: this process has no child left, not even a zombie.
void expect_no_children_left() { EXPECT_TRUE(mpdemo::testing::no_child_left()); }

TEST(CostProbes, ForkFitInTheCallThatMeasuredThem) {
  expect_within_the_call([&] { return mpdemo::measure_fork(kRepeats, kOperations); }, kOperations);
  expect_no_children_left();
}

TEST(CostProbes, ForkHoldingMemoryFitInTheCallThatMeasuredThem) {
  expect_within_the_call([&] { return mpdemo::measure_fork_holding(4 * kBytes, kRepeats, 2); }, 2);
  expect_no_children_left();
}

TEST(CostProbes, ABareTeamIsHeardFromAndReapedWithinTheCall) {
  const auto before = std::chrono::steady_clock::now();
  const mpdemo::BareTeamTimes team = mpdemo::time_bare_team(3);
  const double call = std::chrono::duration<double>(std::chrono::steady_clock::now() - before).count();
  EXPECT_GT(team.start, 0.0);
  EXPECT_GT(team.stop, 0.0);
  EXPECT_LE(team.start + team.stop, call);
  expect_no_children_left();
}

TEST(CostProbes, ThreadStartFitInTheCallThatMeasuredThem) {
  expect_within_the_call([&] { return mpdemo::measure_thread_start(kRepeats, kOperations); }, kOperations);
}

TEST(CostProbes, ProcessRoundTripFitInTheCallThatMeasuredThem) {
  expect_within_the_call([&] { return mpdemo::measure_process_round_trip(kRepeats, kOperations); }, kOperations);
  expect_no_children_left();
}

TEST(CostProbes, ProcessRoundTripPinnedToOneCpuFitInTheCallThatMeasuredThem) {
  const int cpu = mpdemo::system_topology().allowed_cpus.front();
  expect_within_the_call(
      [&] {
        return mpdemo::measure_process_round_trip(kRepeats, kOperations, {cpu, cpu});
      },
      kOperations);
  expect_no_children_left();
}

TEST(CostProbes, ProcessRoundTripOnTwoCoresFitInTheCallThatMeasuredThem) {
  const auto pair = mpdemo::cpus_on_two_cores(mpdemo::system_topology());
  if (!pair) GTEST_SKIP() << "this process may use only one physical core";
  EXPECT_NE(pair->first, pair->second);
  expect_within_the_call([&] { return mpdemo::measure_process_round_trip(kRepeats, kOperations, *pair); }, kOperations);
  expect_no_children_left();
}

// The waker's part of a wake-up is timed around its futex_wake alone: not the half-millisecond it
// waits before each one for the sleeper's core to go idle, nor the answer it waits for after.
TEST(CostProbes, AWakeOfASleeperIsTimedInTheWakerAlone) {
  // On one core the wake would switch to the sleeper inside the timed call: what mpdemo costs, too,
  // reports as not measurable there.
  const auto cpus = mpdemo::cpus_on_two_cores(mpdemo::system_topology());
  if (!cpus) GTEST_SKIP() << "this process may use only one physical core";
  const auto before = std::chrono::steady_clock::now();
  const Summary wake = mpdemo::measure_wake_of_sleeper(kRepeats, kOperations, *cpus);
  const double call = std::chrono::duration<double>(std::chrono::steady_clock::now() - before).count();
  expect_positive_and_finite(wake);
  // Every wake-up waited its pause (a warm-up batch, then kRepeats)...
  const double pause = std::chrono::duration<double>(mpdemo::kSleeperPause).count();
  EXPECT_GE(call, static_cast<double>((kRepeats + 1) * kOperations) * pause);
  // ...and no sample counted it: with the pause inside, each would be above it (the least of them is
  // compared, so that one batch slowed by a busy machine does not decide).
  EXPECT_LT(wake.min, pause);
  expect_no_children_left();
  EXPECT_THROW(mpdemo::measure_wake_of_sleeper(kRepeats, 0), mpdemo::BadArgument);
}

TEST(CostProbes, ThreadRoundTripFitInTheCallThatMeasuredThem) {
  expect_within_the_call([&] { return mpdemo::measure_thread_round_trip(kRepeats, kOperations); }, kOperations);
}

TEST(CostProbes, TransfersThroughPipeAndSharedMemoryFitInTheCallThatMeasuredThem) {
  for (auto path : {mpdemo::DataPath::pipe, mpdemo::DataPath::shared_memory}) {
    // One transfer per sample.
    expect_within_the_call([&] { return mpdemo::measure_transfer(path, kBytes + 3 /* not a whole page */, kRepeats); },
                           1);
  }
  expect_no_children_left();
}

TEST(CostProbes, PageWritesAfterForkFitInTheCallThatMeasuredThem) {
  // Each sample is seconds per page over every page of kBytes, written twice (after fork, then
  // owned): both passes of every sample fit in the call that measured them.
  const std::size_t pages = kBytes / mpdemo::page_size();
  const auto before = std::chrono::steady_clock::now();
  const mpdemo::PageWriteCosts costs = mpdemo::measure_page_writes_after_fork(kBytes, kRepeats);
  const double call = std::chrono::duration<double>(std::chrono::steady_clock::now() - before).count();
  expect_positive_and_finite(costs.first_write_after_fork);
  expect_positive_and_finite(costs.write_to_owned_page);
  EXPECT_LE((costs.first_write_after_fork.max + costs.write_to_owned_page.max) * static_cast<double>(pages), call);
  expect_no_children_left();
}

TEST(CostProbes, ZeroRepeatsIsRejected) {
  EXPECT_THROW(mpdemo::measure_thread_start(0, kOperations), mpdemo::BadArgument);
  EXPECT_THROW(mpdemo::measure_fork(kRepeats, 0), mpdemo::BadArgument);
}

TEST(CostProbes, ABareTeamOfNoChildrenIsRejected) { EXPECT_THROW(mpdemo::time_bare_team(0), mpdemo::BadArgument); }

TEST(CopyOnWrite, ChildWriteStaysInTheChildWhileThreadAndSharedWritesAreSeen) {
  const mpdemo::CopyOnWriteDemo demo = mpdemo::show_copy_on_write();
  ASSERT_NE(demo.before, demo.written);
  EXPECT_EQ(demo.child_read, demo.written);                      // the child saw its own write
  EXPECT_EQ(demo.parent_read_after_child, demo.before);          // ... in its own copy of the page
  EXPECT_EQ(demo.parent_read_after_child_shared, demo.written);  // a MAP_SHARED page is one page
  EXPECT_EQ(demo.parent_read_after_thread, demo.written);        // a thread writes the parent's memory
  expect_no_children_left();
}

mpdemo::CostOptions small_options() {
  mpdemo::CostOptions options;
  options.repeat = 2;
  options.operations = 3;
  options.large_parent_bytes = 4 * kBytes;
  options.transfer_bytes = kBytes;
  options.page_probe_bytes = kBytes;
  return options;
}

const CostMeasurement& find(const std::vector<CostMeasurement>& costs, const std::string& name) {
  for (const CostMeasurement& cost : costs) {
    if (cost.name == name) return cost;
  }
  throw std::out_of_range("no row named " + name);
}

double detail(const CostMeasurement& cost, const std::string& name) {
  for (const mpdemo::CostDetail& d : cost.details) {
    if (d.name == name) return d.value;
  }
  throw std::out_of_range("no detail " + name + " in " + cost.name);
}

TEST(MeasureCosts, ReturnsEveryDocumentedRowWithFiguresAndALesson) {
  const mpdemo::CostOptions options = small_options();
  const std::vector<CostMeasurement> costs = mpdemo::measure_costs(options);
  std::vector<std::string> names;
  for (const CostMeasurement& cost : costs) names.push_back(cost.name);
  EXPECT_EQ(names, (std::vector<std::string>{
                       "fork_small_parent", "fork_large_parent", "thread_start", "pipe_round_trip_processes",
                       "condvar_round_trip_threads", "futex_round_trip_processes", "wake_sleeping_process",
                       "spin_round_trip_processes", "context_switch_same_core", "context_switch_two_cores",
                       "transfer_pipe", "transfer_shared_memory", "page_write_after_fork", "page_write_owned",
                       "page_read_after_fork", "page_read_owned"}));
  for (const CostMeasurement& cost : costs) {
    SCOPED_TRACE(cost.name);
    EXPECT_FALSE(cost.unit.empty());
    // Every row has a sentence of its own in the report (not the fallback "name: value (unit).").
    const std::string lesson = mpdemo::report::cost_lesson(cost, costs);
    EXPECT_EQ(lesson.rfind(cost.name + ":", 0), std::string::npos) << lesson;
    EXPECT_EQ(lesson.find('\n'), std::string::npos);  // one sentence, one line
    if (cost.measurable) {
      EXPECT_EQ(cost.repeats, options.repeat);
      expect_positive_and_finite(cost.summary);
    } else {
      EXPECT_EQ(cost.repeats, 0U);
    }
  }
  const bool two_cores = mpdemo::cpus_on_two_cores(mpdemo::system_topology()).has_value();
  EXPECT_EQ(find(costs, "context_switch_two_cores").measurable, two_cores);
  EXPECT_EQ(find(costs, "spin_round_trip_processes").measurable, two_cores);
  EXPECT_EQ(find(costs, "wake_sleeping_process").measurable, two_cores);
  EXPECT_TRUE(find(costs, "futex_round_trip_processes").measurable);
  EXPECT_TRUE(find(costs, "context_switch_same_core").measurable);
  expect_no_children_left();
}

TEST(MeasureCosts, CarriesTheCopyOnWriteObservationsAndSizes) {
  const mpdemo::CostOptions options = small_options();
  const std::vector<CostMeasurement> costs = mpdemo::measure_costs(options);
  const CostMeasurement& cow = find(costs, "page_write_after_fork");
  EXPECT_EQ(detail(cow, "parent_read_after_child"), detail(cow, "value_before"));
  EXPECT_EQ(detail(cow, "parent_read_after_thread"), detail(cow, "value_written"));
  EXPECT_EQ(detail(cow, "child_read"), detail(cow, "value_written"));
  EXPECT_NE(detail(cow, "value_before"), detail(cow, "value_written"));
  EXPECT_EQ(detail(find(costs, "fork_large_parent"), "parent_bytes"), static_cast<double>(options.large_parent_bytes));
  EXPECT_EQ(detail(find(costs, "transfer_pipe"), "bytes"), static_cast<double>(options.transfer_bytes));
}

// The child read what the parent wrote, every page of it, and the kernel took no fault for it: fork
// copied the page tables of private memory that was present (a child faulting on each page would
// mean the probe measured page faults, not reads).
TEST(MeasureCosts, AChildReadsItsParentsPagesThroughCopiedPageTables) {
  const mpdemo::CostOptions options = small_options();
  const mpdemo::PageReadCosts reads = mpdemo::measure_page_reads_after_fork(options.page_probe_bytes, 3);
  const std::uint64_t pages = (options.page_probe_bytes + mpdemo::page_size() - 1) / mpdemo::page_size();
  EXPECT_EQ(reads.child_sum, pages * reads.value_written);
  EXPECT_NE(reads.value_written, 0);
#if !defined(__SANITIZE_THREAD__)  // ThreadSanitizer records each read in shadow memory: a copy a page
  EXPECT_LT(reads.child_faults_per_page, 0.5);
#endif
  expect_positive_and_finite(reads.first_read_in_child);
  expect_positive_and_finite(reads.read_owned);
  expect_no_children_left();
}

TEST(MeasureCosts, ASharedWordRoundTripsBetweenTwoProcessesAsleepOrAwake) {
  const auto pair = mpdemo::cpus_on_two_cores(mpdemo::system_topology());
  for (const mpdemo::WordWait wait : {mpdemo::WordWait::futex, mpdemo::WordWait::spin}) {
    // Spinning on one shared CPU must yield it, or the echo never runs: both placements must finish.
    const int cpu = mpdemo::system_topology().worker_cpus.empty() ? -1 : mpdemo::system_topology().worker_cpus[0];
    for (const mpdemo::CpuPair cpus : {pair.value_or(mpdemo::CpuPair{}), mpdemo::CpuPair{cpu, cpu}}) {
      SCOPED_TRACE(testing::Message() << "wait " << static_cast<int>(wait) << ", CPUs " << cpus.first << " and "
                                      << cpus.second);
      expect_positive_and_finite(mpdemo::measure_shared_word_round_trip(3, 50, wait, cpus));
    }
  }
  expect_no_children_left();
}

TEST(MeasureCosts, RejectsZeroRepeatWithItsName) {
  mpdemo::CostOptions options = small_options();
  options.repeat = 0;
  try {
    mpdemo::measure_costs(options);
    FAIL() << "expected mpdemo::BadArgument";
  } catch (const mpdemo::BadArgument& e) {
    EXPECT_NE(std::string(e.what()).find("repeat"), std::string::npos) << e.what();
  }
}

}  // namespace
