// `mpdemo cores`: the lesson's claims about cores. The experiments really pin (sched_getcpu inside
// each task says where it ran); the verdicts are pure functions, tested here on synthetic timings;
// the command's formats and bad input.
#include "mpdemo/lab/cores.hpp"

#include "mpdemo/report/cores.hpp"
#include "mpdemo/sys/errors.hpp"
#include "mpdemo/sys/topology.hpp"
#include "mpdemo/sys/trace.hpp"
#include "support/run_program.hpp"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <set>
#include <sstream>

namespace {

using mpdemo::Placement;
using mpdemo::Runner;
using mpdemo::testing::run_mpdemo;
using ::testing::HasSubstr;

constexpr std::int64_t kMs = 1'000'000;

// Short tasks: what is tested is where and how they ran, not how long.
mpdemo::CoresOptions quick(std::optional<std::size_t> cpus) {
  mpdemo::CoresOptions options;
  options.task_seconds = 0.01;
  options.cpus = cpus;
  options.max_tasks = 3;
  return options;
}

std::set<int> cpus_of(const mpdemo::TaskRun& task) {
  std::set<int> cpus;
  for (const auto& sample : task.samples) cpus.insert(sample.cpu);
  return cpus;
}

TEST(Cores, PinnedTasksRunWhereTheyArePinnedAsThreadsAndAsProcesses) {
  const std::size_t cores = mpdemo::system_topology().worker_cpus.size();
  const mpdemo::CoresResult result = mpdemo::run_cores(quick(std::min<std::size_t>(cores, 2)));
  ASSERT_EQ(result.pairs.size(), 2u);
  for (const auto& pair : result.pairs) {
    const mpdemo::TaskGroupRun* one_core = pair.find(Placement::one_core);
    ASSERT_NE(one_core, nullptr);
    ASSERT_EQ(one_core->tasks.size(), 2u);
    for (const auto& task : one_core->tasks) {
      EXPECT_EQ(cpus_of(task), std::set<int>{result.cpus[0]}) << mpdemo::runner_name(pair.runner) << " " << task.name;
      EXPECT_FALSE(task.samples.empty());
    }
    // Processes are other processes, threads are this one's.
    for (const auto& task : one_core->tasks) {
      if (pair.runner == Runner::processes) {
        EXPECT_NE(task.pid, ::getpid());
      } else {
        EXPECT_EQ(task.pid, ::getpid());
        EXPECT_NE(task.tid, task.pid);
      }
    }
    if (cores < 2) continue;
    const mpdemo::TaskGroupRun* two = pair.find(Placement::two_cores);
    ASSERT_NE(two, nullptr);
    EXPECT_EQ(cpus_of(two->tasks[0]), std::set<int>{result.cpus[0]});
    EXPECT_EQ(cpus_of(two->tasks[1]), std::set<int>{result.cpus[1]});
  }
  if (cores < 2) GTEST_SKIP() << "one physical core: the two-core placement cannot be checked here";
}

TEST(Cores, OnOneCoreTheTasksTakeTurnsAndAreTakenOffTheCpu) {
  const mpdemo::CoresResult result = mpdemo::run_cores(quick(1));
  for (const auto& pair : result.pairs) {
    const mpdemo::TaskGroupRun* one_core = pair.find(Placement::one_core);
    ASSERT_NE(one_core, nullptr);
    long taken_off = 0;
    for (const auto& task : one_core->tasks) {
      taken_off += task.involuntary_switches;
      // CPU time is the task's own: never more than the time it existed (plus a clock tick).
      EXPECT_GT(task.cpu_seconds, 0.0);
      EXPECT_LE(task.cpu_seconds, task.seconds() + 0.005) << task.name;
    }
    // Two CPU-bound tasks on one CPU for tens of milliseconds: the scheduler must preempt one.
    EXPECT_GT(taken_off, 0) << mpdemo::runner_name(pair.runner);
    // At least one task was stopped and resumed: it ran in more than one stretch.
    EXPECT_GT(one_core->tasks[0].stretches.size() + one_core->tasks[1].stretches.size(), 2u);
    EXPECT_EQ(pair.find(Placement::two_cores), nullptr) << "--cpus 1 has no second core";
  }
  ASSERT_EQ(result.many.size(), 3u);
  EXPECT_EQ(result.many[2].tasks, 3u);
  EXPECT_EQ(result.many[2].cpus, 1u);
  bool said_why = false;
  for (const auto& skipped : result.skipped) said_why = said_why || skipped.experiment.starts_with("claim 3");
  EXPECT_TRUE(said_why);
}

TEST(Cores, NoCpusRunsNothingAndSaysWhy) {
  const mpdemo::CoresResult result = mpdemo::run_cores(quick(0));
  EXPECT_TRUE(result.pairs.empty());
  EXPECT_TRUE(result.many.empty());
  ASSERT_EQ(result.skipped.size(), 3u);
  for (const auto& skipped : result.skipped) EXPECT_THAT(skipped.reason, HasSubstr("--cpus 0"));
  for (const auto& finding : mpdemo::report::cores_findings(result)) {
    EXPECT_EQ(finding.verdict, mpdemo::report::ClaimFinding::Verdict::not_measured) << finding.claim;
  }
}

TEST(Cores, MoreCoresThanAllowedOrAnAbsurdTaskTimeIsABadArgument) {
  const std::size_t cores = mpdemo::system_topology().worker_cpus.size();
  EXPECT_THROW((void)mpdemo::run_cores(quick(cores + 1)), mpdemo::BadArgument);
  mpdemo::CoresOptions options = quick(1);
  options.task_seconds = 0.0001;
  EXPECT_THROW((void)mpdemo::run_cores(options), mpdemo::BadArgument);
}

TEST(Cores, EveryTaskStretchIsInTheTraceOnTheTasksOwnTrack) {
  mpdemo::Trace trace;
  mpdemo::CoresOptions options = quick(1);
  options.trace = &trace;
  const mpdemo::CoresResult result = mpdemo::run_cores(options);
  const auto tracks = trace.tracks();
  const auto spans = trace.spans();
  std::size_t stretches = 0;
  std::size_t runs = 0;
  for (const auto& pair : result.pairs) {
    for (const auto& run : pair.runs) {
      for (const auto& task : run.tasks) stretches += task.stretches.size();
    }
  }
  for (const auto& many : result.many) {
    for (const auto& task : many.run.tasks) stretches += task.stretches.size();
  }
  std::size_t task_spans = 0;
  for (const auto& span : spans) {
    if (span.category == "experiment") ++runs;
    if (!span.category.starts_with("ran on CPU")) continue;
    ++task_spans;
    EXPECT_EQ(span.category, "ran on CPU " + std::to_string(span.cpu));
    EXPECT_LE(span.begin_ns, span.end_ns);
    EXPECT_NE(tracks.at(span.track).tid, tracks.at(0).tid) << "a task's span on the master's track";
  }
  // Solo runs are measured twice and the faster kept; the trace holds both.
  EXPECT_GE(task_spans, stretches);
  EXPECT_GE(runs, 2u * 2u + 2u + 3u);
}

// ---- stretches and overlap, on synthetic samples ----------------------------------------------------

TEST(Stretches, AGapOrAMoveToAnotherCpuStartsANewStretch) {
  const std::vector<mpdemo::TaskSample> samples{
      {1 * kMs, 0},  {2 * kMs, 0},  {3 * kMs, 0},  // running
      {10 * kMs, 0}, {11 * kMs, 0},                // after 7 ms away
      {12 * kMs, 1},                               // moved to CPU 1
  };
  const auto stretches = mpdemo::stretches_of(0, samples, kMs, 3 * kMs);
  ASSERT_EQ(stretches.size(), 3u);
  EXPECT_EQ(stretches[0].begin_ns, 0);
  EXPECT_EQ(stretches[0].end_ns, 3 * kMs);
  EXPECT_EQ(stretches[1].begin_ns, 9 * kMs) << "a unit before its first sample";
  EXPECT_EQ(stretches[1].end_ns, 11 * kMs);
  EXPECT_EQ(stretches[2].cpu, 1);
  EXPECT_EQ(stretches[2].end_ns, 12 * kMs);
}

TEST(Stretches, TogetherCountsOnlyTimeWhenTwoRanAtOnce) {
  mpdemo::TaskRun a;
  a.stretches = {{0, 10 * kMs, 0}, {20 * kMs, 30 * kMs, 0}};
  mpdemo::TaskRun b;
  b.stretches = {{5 * kMs, 25 * kMs, 1}};
  EXPECT_DOUBLE_EQ(mpdemo::together_seconds({a, b}), 0.010);  // 5-10 and 20-25
  mpdemo::TaskRun c;
  c.stretches = {{10 * kMs, 20 * kMs, 0}};  // exactly in a's gap: taking turns
  EXPECT_DOUBLE_EQ(mpdemo::together_seconds({a, c}), 0.0);
}

// ---- verdicts, on synthetic timings ---------------------------------------------------------------

mpdemo::TaskGroupRun group(double wall, double together, double shortest) {
  mpdemo::TaskGroupRun run;
  run.wall_seconds = wall;
  run.together_seconds = together;
  mpdemo::TaskRun a;
  a.begin_ns = 0;
  a.end_ns = static_cast<std::int64_t>(shortest * 1e9);
  mpdemo::TaskRun b;
  b.begin_ns = 0;
  b.end_ns = static_cast<std::int64_t>(wall * 1e9);
  run.tasks = {a, b};
  return run;
}

TEST(Verdicts, OneThingAtATime) {
  EXPECT_TRUE(mpdemo::one_thing_at_a_time(group(0.15, 0.0001, 0.1)).holds);
  EXPECT_FALSE(mpdemo::one_thing_at_a_time(group(0.1, 0.05, 0.05)).holds) << "they ran side by side";
}

TEST(Verdicts, TakingTurnsTakesTheSumAndTwoCoresTheLongest) {
  EXPECT_TRUE(mpdemo::takes_turns(group(0.15, 0, 0.1), 0.05, 0.1).holds);
  EXPECT_TRUE(mpdemo::takes_turns(group(0.14, 0, 0.1), 0.05, 0.1).holds) << "within the tolerance";
  EXPECT_FALSE(mpdemo::takes_turns(group(0.10, 0, 0.1), 0.05, 0.1).holds) << "as fast as two cores";
  EXPECT_TRUE(mpdemo::runs_at_once(group(0.105, 0.05, 0.05), 0.05, 0.1).holds);
  EXPECT_FALSE(mpdemo::runs_at_once(group(0.15, 0, 0.05), 0.05, 0.1).holds) << "took turns";
  const auto check = mpdemo::runs_at_once(group(0.11, 0.05, 0.05), 0.05, 0.1);
  EXPECT_DOUBLE_EQ(check.predicted, 0.1);
  EXPECT_DOUBLE_EQ(check.measured, 0.11);
}

TEST(Verdicts, SiblingsAndRounds) {
  EXPECT_TRUE(mpdemo::siblings_share_a_core(group(0.08, 0, 0.08), group(0.05, 0, 0.05)).holds);
  EXPECT_FALSE(mpdemo::siblings_share_a_core(group(0.052, 0, 0.05), group(0.05, 0, 0.05)).holds);
  mpdemo::ManyTasksRun three_on_two;
  three_on_two.tasks = 3;
  three_on_two.cpus = 2;
  three_on_two.solo = 0.05;
  EXPECT_DOUBLE_EQ(three_on_two.rounds_prediction(), 0.10);
  EXPECT_DOUBLE_EQ(three_on_two.fair_share_prediction(), 0.075);
  three_on_two.run.wall_seconds = 0.08;
  EXPECT_TRUE(mpdemo::rounds_of_tasks(three_on_two).holds);
  three_on_two.run.wall_seconds = 0.15;  // a whole round more than ceil(N/M)
  EXPECT_FALSE(mpdemo::rounds_of_tasks(three_on_two).holds);
  three_on_two.run.wall_seconds = 0.05;  // faster than the cores allow
  EXPECT_FALSE(mpdemo::rounds_of_tasks(three_on_two).holds);
}

// ---- the command ------------------------------------------------------------------------------------

TEST(CoresCommand, JsonHasEveryClaimAndTheRuns) {
  const auto result = run_mpdemo({"cores", "--task-seconds", "0.005", "--tasks", "2", "--format", "json"});
  ASSERT_EQ(result.exit_code(), 0) << result.err;
  const auto json = nlohmann::json::parse(result.out);
  ASSERT_EQ(json.at("claims").size(), 5u);
  for (const auto& claim : json.at("claims")) {
    EXPECT_THAT((std::vector<std::string>{"holds", "does NOT hold", "not measured"}),
                ::testing::Contains(claim.at("verdict").get<std::string>()));
  }
  EXPECT_GE(json.at("runs").size(), 2u * 3u);  // per runner: A alone, B alone, one core (at least)
  for (const auto& run : json.at("runs")) {
    EXPECT_LE(run.at("wall_seconds").get<double>(), result.wall_seconds);
    for (const auto& task : run.at("tasks")) EXPECT_FALSE(task.at("cpus_seen").empty());
  }
  EXPECT_EQ(json.at("many").size(), 2u);
}

TEST(CoresCommand, CsvHasTheDocumentedColumnsAndTheTableTheClaims) {
  const auto csv = run_mpdemo({"cores", "--task-seconds", "0.005", "--tasks", "1", "--format", "csv"});
  ASSERT_EQ(csv.exit_code(), 0) << csv.err;
  std::istringstream lines(csv.out);
  std::string header;
  std::getline(lines, header);
  EXPECT_EQ(header,
            "runner,placement,cpus,wall_seconds,together_seconds,task,work,seconds,cpu_seconds,voluntary_switches,"
            "involuntary_switches,cpus_seen");
  const auto table = run_mpdemo({"cores", "--task-seconds", "0.005", "--tasks", "1", "--cpus", "1"});
  ASSERT_EQ(table.exit_code(), 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr("1. A core is a small calculator"));
  EXPECT_THAT(table.out, HasSubstr("verdict:"));
  EXPECT_THAT(table.out, HasSubstr("not run: claim 3"));
}

TEST(CoresCommand, ZeroCpusSaysWhatCannotRun) {
  const auto result = run_mpdemo({"cores", "--cpus", "0"});
  ASSERT_EQ(result.exit_code(), 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("--cpus 0 leaves no CPU"));
}

TEST(CoresCommand, BadInputExitsWith2) {
  for (const std::vector<std::string>& args : {std::vector<std::string>{"cores", "--cpus", "100000"},
                                               {"cores", "--cpus", "4000"},
                                               {"cores", "--task-seconds", "0"},
                                               {"cores", "--task-seconds", "0.0001"},
                                               {"cores", "--task-seconds", "x"},
                                               {"cores", "--tasks", "0"},
                                               {"cores", "--tasks", "65"},
                                               {"cores", "--format", "xml"},
                                               {"cores", "--trace", "/nonexistent-dir/t.json"},
                                               {"cores", "--trace", "t.txt"},
                                               {"cores", "--timeline", "x.pdf"},
                                               {"cores", "--timeline", "-", "--format", "json"}}) {
    const auto result = run_mpdemo(args);
    EXPECT_EQ(result.exit_code(), 2) << fmt::format("{}", fmt::join(args, " ")) << "\n" << result.err;
    EXPECT_FALSE(result.err.empty());
  }
}

}  // namespace
