#include "mpdemo/lab/costs.hpp"
#include "costs_report.hpp"

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <algorithm>
#include <cerrno>
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
void expect_no_children_left() {
  errno = 0;
  EXPECT_EQ(::waitpid(-1, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
}

TEST(CostProbes, ForkGivesPositiveFiniteTimes) {
  expect_within_the_call([&] { return mpdemo::measure_fork(kRepeats, kOperations); }, kOperations);
  expect_no_children_left();
}

TEST(CostProbes, ForkHoldingMemoryGivesPositiveFiniteTimes) {
  expect_positive_and_finite(mpdemo::measure_fork_holding(4 * kBytes, kRepeats, 2));
  expect_no_children_left();
}

TEST(CostProbes, ThreadStartGivesPositiveFiniteTimes) {
  expect_within_the_call([&] { return mpdemo::measure_thread_start(kRepeats, kOperations); }, kOperations);
}

TEST(CostProbes, ProcessRoundTripGivesPositiveFiniteTimes) {
  expect_within_the_call([&] { return mpdemo::measure_process_round_trip(kRepeats, kOperations); }, kOperations);
  expect_no_children_left();
}

TEST(CostProbes, ProcessRoundTripPinnedToOneCpuGivesPositiveFiniteTimes) {
  const int cpu = mpdemo::system_topology().allowed_cpus.front();
  expect_within_the_call(
      [&] {
        return mpdemo::measure_process_round_trip(kRepeats, kOperations, {cpu, cpu});
      },
      kOperations);
  expect_no_children_left();
}

TEST(CostProbes, ProcessRoundTripOnTwoCoresGivesPositiveFiniteTimes) {
  const auto pair = mpdemo::cpus_on_two_cores(mpdemo::system_topology());
  if (!pair) GTEST_SKIP() << "this process may use only one physical core";
  EXPECT_NE(pair->first, pair->second);
  expect_within_the_call([&] { return mpdemo::measure_process_round_trip(kRepeats, kOperations, *pair); }, kOperations);
  expect_no_children_left();
}

TEST(CostProbes, ThreadRoundTripGivesPositiveFiniteTimes) {
  expect_within_the_call([&] { return mpdemo::measure_thread_round_trip(kRepeats, kOperations); }, kOperations);
}

TEST(CostProbes, TransfersThroughPipeAndSharedMemoryGivePositiveFiniteTimes) {
  for (auto path : {mpdemo::TransferPath::pipe, mpdemo::TransferPath::shared_memory}) {
    expect_positive_and_finite(mpdemo::measure_transfer(path, kBytes + 3 /* not a whole page */, kRepeats));
  }
  expect_no_children_left();
}

TEST(CostProbes, PageWritesAfterForkGivePositiveFiniteTimes) {
  const mpdemo::PageWriteCosts costs = mpdemo::measure_page_writes_after_fork(kBytes, kRepeats);
  expect_positive_and_finite(costs.first_write_after_fork);
  expect_positive_and_finite(costs.write_to_owned_page);
  expect_no_children_left();
}

TEST(CostProbes, ZeroRepeatsIsRejected) {
  EXPECT_THROW(mpdemo::measure_thread_start(0, kOperations), std::invalid_argument);
  EXPECT_THROW(mpdemo::measure_fork(kRepeats, 0), std::invalid_argument);
}

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
  EXPECT_EQ(names, (std::vector<std::string>{"fork_small_parent", "fork_large_parent", "thread_start",
                                             "pipe_round_trip_processes", "condvar_round_trip_threads",
                                             "context_switch_same_core", "context_switch_two_cores", "transfer_pipe",
                                             "transfer_shared_memory", "page_write_after_fork", "page_write_owned"}));
  for (const CostMeasurement& cost : costs) {
    SCOPED_TRACE(cost.name);
    EXPECT_FALSE(cost.unit.empty());
    EXPECT_FALSE(cost.lesson.empty());
    EXPECT_EQ(cost.lesson.find('\n'), std::string::npos);  // one sentence, one line
    if (cost.measurable) {
      EXPECT_EQ(cost.repeats, options.repeat);
      expect_positive_and_finite(cost.summary);
    } else {
      EXPECT_EQ(cost.repeats, 0U);
    }
  }
  const bool two_cores = mpdemo::cpus_on_two_cores(mpdemo::system_topology()).has_value();
  EXPECT_EQ(find(costs, "context_switch_two_cores").measurable, two_cores);
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

TEST(MeasureCosts, RejectsZeroRepeatWithItsName) {
  mpdemo::CostOptions options = small_options();
  options.repeat = 0;
  try {
    mpdemo::measure_costs(options);
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("repeat"), std::string::npos) << e.what();
  }
}

// ---- Renderers, on fixed data -------------------------------------------------------------------

std::vector<CostMeasurement> sample_costs() {
  return {
      {"fork_small_parent",
       "seconds per fork",
       {1e-4, 9e-5, 2e-4},
       9,
       true,
       "Forking costs 100 us, \"quoted\", with commas.",
       {{"times_thread_start", 5.0}, {"bytes", 1024.0}}},
      {"context_switch_two_cores", "seconds per switch", {}, 0, false, "Not measurable here: one CPU.", {}},
  };
}

TEST(CostsJson, HasTheDocumentedFieldsAndNullTimesWhenNotMeasurable) {
  const nlohmann::json rows = nlohmann::json::parse(mpdemo::costs_json(sample_costs()));
  ASSERT_TRUE(rows.is_array());
  ASSERT_EQ(rows.size(), 2U);
  for (const char* field : {"name", "unit", "measurable", "median", "min", "max", "repeats", "lesson", "details"}) {
    EXPECT_TRUE(rows[0].contains(field)) << field;
    EXPECT_TRUE(rows[1].contains(field)) << field;
  }
  EXPECT_EQ(rows[0]["name"], "fork_small_parent");
  EXPECT_EQ(rows[0]["unit"], "seconds per fork");
  EXPECT_EQ(rows[0]["measurable"], true);
  EXPECT_DOUBLE_EQ(rows[0]["median"].get<double>(), 1e-4);
  EXPECT_DOUBLE_EQ(rows[0]["min"].get<double>(), 9e-5);
  EXPECT_DOUBLE_EQ(rows[0]["max"].get<double>(), 2e-4);
  EXPECT_EQ(rows[0]["repeats"], 9);
  EXPECT_EQ(rows[0]["lesson"], "Forking costs 100 us, \"quoted\", with commas.");
  EXPECT_DOUBLE_EQ(rows[0]["details"]["times_thread_start"].get<double>(), 5.0);
  EXPECT_EQ(rows[1]["measurable"], false);
  EXPECT_TRUE(rows[1]["median"].is_null());
  EXPECT_TRUE(rows[1]["details"].is_object());
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

TEST(CostsCsv, HasAHeaderAndQuotesFieldsThatNeedIt) {
  const std::vector<std::string> lines = lines_of(mpdemo::costs_csv(sample_costs()));
  ASSERT_EQ(lines.size(), 3U);
  EXPECT_EQ(lines[0], "name,unit,measurable,median,min,max,repeats,lesson,details");
  EXPECT_EQ(lines[1],
            "fork_small_parent,seconds per fork,true,0.0001,9e-05,0.0002,9,"
            "\"Forking costs 100 us, \"\"quoted\"\", with commas.\",times_thread_start=5;bytes=1024");
  EXPECT_EQ(lines[2], "context_switch_two_cores,seconds per switch,false,,,,0,Not measurable here: one CPU.,");
}

TEST(CostsTable, PrintsEveryRowAndOneLessonPerLine) {
  const std::string table = mpdemo::costs_table(sample_costs());
  const std::vector<std::string> lines = lines_of(table);
  EXPECT_NE(table.find("fork_small_parent"), std::string::npos);
  EXPECT_NE(table.find("100 us"), std::string::npos);
  EXPECT_NE(table.find("not measurable"), std::string::npos);
  for (const CostMeasurement& cost : sample_costs()) {
    EXPECT_NE(std::find(lines.begin(), lines.end(), "- " + cost.lesson), lines.end()) << cost.lesson;
  }
}

}  // namespace
