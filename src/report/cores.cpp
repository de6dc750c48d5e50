#include "mpdemo/report/cores.hpp"

#include "mpdemo/report/format.hpp"
#include "mpdemo/sys/topology.hpp"

#include <fmt/format.h>
#include <algorithm>
#include <nlohmann/json.hpp>
#include <sstream>

namespace mpdemo::report {

namespace {

using Verdict = ClaimFinding::Verdict;

Verdict verdict_of(const ClaimCheck& check) { return check.holds ? Verdict::holds : Verdict::does_not_hold; }

// The worse of two verdicts: a claim holds only if it holds for threads and for processes.
Verdict both(Verdict a, Verdict b) {
  if (a == Verdict::does_not_hold || b == Verdict::does_not_hold) return Verdict::does_not_hold;
  if (a == Verdict::not_measured || b == Verdict::not_measured) return Verdict::not_measured;
  return Verdict::holds;
}

std::string percent(double fraction) { return fmt::format("{:.1f}%", 100 * fraction); }

std::string cpus_of(const std::vector<int>& cpus) { return cpus.empty() ? "-" : format_cpu_list(cpus); }

const std::string kNotMeasuredAlone = "it needs two tasks on one core, which ran in no experiment here";

ClaimFinding claim_one(const CoresResult& result) {
  ClaimFinding finding{"1. A core is a small calculator that does one operation at a time.", "", Verdict::not_measured,
                       kNotMeasuredAlone};
  std::vector<std::string> parts;
  Verdict verdict = Verdict::holds;
  for (const PairExperiment& pair : result.pairs) {
    const TaskGroupRun* one_core = pair.find(Placement::one_core);
    if (one_core == nullptr) return finding;
    const ClaimCheck check = one_thing_at_a_time(*one_core);
    verdict = both(verdict, verdict_of(check));
    parts.push_back(fmt::format("{} on CPU {} ran at the same moment for {} of {} ({} of the shorter task)",
                                runner_name(pair.runner), cpus_of(one_core->cpus),
                                format_duration(one_core->together_seconds), format_duration(one_core->wall_seconds),
                                percent(check.measured)));
  }
  if (parts.empty()) return finding;
  const TaskGroupRun* two = result.pairs.back().find(Placement::two_cores);
  finding.measurement = fmt::format("Two tasks pinned to one CPU: {}", fmt::join(parts, "; "));
  if (two != nullptr) {
    finding.measurement += fmt::format(". On two cores, processes ran together for {} of {}",
                                       format_duration(two->together_seconds), format_duration(two->wall_seconds));
  }
  finding.measurement += ".";
  finding.verdict = verdict;
  finding.why = fmt::format(
      "each task notes the time and its CPU every ~{} of work: on one core the stretches it ran never overlap "
      "(at most {} of the shorter task may, for the sampling's grain)",
      format_duration(result.unit_seconds), percent(kClaimTolerance));
  return finding;
}

ClaimFinding claim_two(const CoresResult& result) {
  ClaimFinding finding{
      "2. Several threads can share one core, which alternates between them: two programs on one core take at "
      "least as long as one after the other.",
      "", Verdict::not_measured, kNotMeasuredAlone};
  std::vector<std::string> parts;
  Verdict verdict = Verdict::holds;
  for (const PairExperiment& pair : result.pairs) {
    const TaskGroupRun* one_core = pair.find(Placement::one_core);
    if (one_core == nullptr) return finding;
    const ClaimCheck check = takes_turns(*one_core, pair.solo_a, pair.solo_b);
    verdict = both(verdict, verdict_of(check));
    long switches = 0;
    for (const TaskRun& task : one_core->tasks) switches += task.involuntary_switches;
    parts.push_back(fmt::format("{}: {} against {} + {} = {} one after the other ({}), {} turns taken away",
                                runner_name(pair.runner), format_duration(check.measured), format_duration(pair.solo_a),
                                format_duration(pair.solo_b), format_duration(check.predicted),
                                times(ratio(check.measured, check.predicted)), switches));
  }
  if (parts.empty()) return finding;
  finding.measurement = fmt::format("A (1x) and B (2x) on one CPU: {}.", fmt::join(parts, "; "));
  finding.verdict = verdict;
  finding.why =
      fmt::format("holds when the wall time is at least the sum of the solo times, less {}", percent(kClaimTolerance));
  return finding;
}

ClaimFinding claim_three(const CoresResult& result) {
  ClaimFinding finding{
      "3. On two different cores they really run at the same time, and the total is the time of the longest one.", "",
      Verdict::not_measured, "only one physical core is in use here, so nothing can run side by side"};
  std::vector<std::string> parts;
  Verdict verdict = Verdict::holds;
  for (const PairExperiment& pair : result.pairs) {
    const TaskGroupRun* two = pair.find(Placement::two_cores);
    if (two == nullptr) return finding;
    const ClaimCheck check = runs_at_once(*two, pair.solo_a, pair.solo_b);
    verdict = both(verdict, verdict_of(check));
    std::string unpinned;
    if (const TaskGroupRun* free = pair.find(Placement::unpinned)) {
      unpinned = fmt::format("; unpinned {} (CPUs used: A {}, B {})", format_duration(free->wall_seconds),
                             cpus_of(free->tasks[0].cpus_seen()), cpus_of(free->tasks[1].cpus_seen()));
    }
    parts.push_back(fmt::format("{}: {} against the longest alone, {} ({}){}", runner_name(pair.runner),
                                format_duration(check.measured), format_duration(check.predicted),
                                times(ratio(check.measured, check.predicted)), unpinned));
  }
  if (parts.empty()) return finding;
  finding.measurement =
      fmt::format("A (1x) and B (2x) on CPUs {}: {}.", cpus_of(result.pairs.back().find(Placement::two_cores)->cpus),
                  fmt::join(parts, "; "));
  finding.verdict = verdict;
  finding.why = fmt::format("holds when the wall time is within {} of the longer solo time", percent(kClaimTolerance));
  return finding;
}

ClaimFinding claim_four(const CoresResult& result) {
  ClaimFinding finding{"4. Count physical cores, not logical CPUs: cpu_count(logical=False) is what a pool should use.",
                       "", Verdict::not_measured, ""};
  for (const SkippedExperiment& skipped : result.skipped) {
    if (skipped.experiment.starts_with("claim 4")) finding.why = skipped.reason;
  }
  if (!result.smt_siblings || !result.smt_two_cores) return finding;
  const ClaimCheck check = siblings_share_a_core(*result.smt_siblings, *result.smt_two_cores);
  finding.measurement = fmt::format(
      "Two 1x tasks on the SMT siblings {} of one core took {}; on two cores ({}) {}: {}.",
      cpus_of(result.smt_siblings->cpus), format_duration(check.measured), cpus_of(result.smt_two_cores->cpus),
      format_duration(check.predicted), compared_with(check.measured, check.predicted));
  finding.verdict = verdict_of(check);
  finding.why = fmt::format("holds when siblings are more than {} slower than two cores: they share one core's units",
                            percent(kClaimTolerance));
  return finding;
}

ClaimFinding claim_many(const CoresResult& result) {
  ClaimFinding finding{"N tasks on M cores take ceil(N/M) times as long as one task.", "", Verdict::not_measured,
                       "no task could run here"};
  if (result.many.empty()) return finding;
  std::vector<std::string> parts;
  Verdict verdict = Verdict::holds;
  for (const ManyTasksRun& many : result.many) {
    const ClaimCheck check = rounds_of_tasks(many);
    verdict = both(verdict, verdict_of(check));
    parts.push_back(fmt::format("{} on {}: {} (rounds {}, fair share {}: {})", many.tasks, many.cpus,
                                format_duration(many.run.wall_seconds), format_duration(many.rounds_prediction()),
                                format_duration(many.fair_share_prediction()), check.holds ? "agrees" : "off"));
  }
  finding.measurement =
      fmt::format("One 1x task alone: {}. {}.", format_duration(result.many.front().solo), fmt::join(parts, "; "));
  finding.verdict = verdict;
  finding.why = fmt::format(
      "holds when the time lies between a fair share (N/M tasks' work on each core, the scheduler moving tasks "
      "between cores) and ceil(N/M) rounds (tasks staying where they started), within {}",
      percent(kClaimTolerance));
  return finding;
}

}  // namespace

const char* verdict_word(ClaimFinding::Verdict verdict) noexcept {
  switch (verdict) {
    case Verdict::holds:
      return "holds";
    case Verdict::does_not_hold:
      return "does NOT hold";
    case Verdict::not_measured:
      return "not measured";
  }
  return "?";
}

std::vector<ClaimFinding> cores_findings(const CoresResult& result) {
  return {claim_one(result), claim_two(result), claim_three(result), claim_four(result), claim_many(result)};
}

std::string cores_table(const CoresResult& result) {
  std::ostringstream out;
  out << fmt::format("Cores in use: {} (one CPU each: {}); the 1x task runs {} alone, sampled every {}.\n\n",
                     result.cpus.size(), cpus_of(result.cpus), format_duration(result.options.task_seconds),
                     format_duration(result.unit_seconds));
  for (const ClaimFinding& finding : cores_findings(result)) {
    out << finding.claim << "\n";
    if (!finding.measurement.empty()) out << "  measured: " << finding.measurement << "\n";
    out << "  verdict:  " << verdict_word(finding.verdict) << (finding.why.empty() ? "" : " -- " + finding.why)
        << "\n\n";
  }
  bool any_runs = false;
  for (const PairExperiment& pair : result.pairs) any_runs = any_runs || !pair.runs.empty();
  if (any_runs) {
    out << fmt::format("{:<10} {:<13} {:<6} {:>10} {:>10}  {:<7} {:>10} {:>10} {:>6} {:>8}  {}\n", "runner",
                       "placement", "CPUs", "wall", "together", "task", "time", "CPU time", "vol", "invol",
                       "CPUs seen");
    auto row = [&](const TaskGroupRun& run) {
      for (std::size_t t = 0; t < run.tasks.size(); ++t) {
        const TaskRun& task = run.tasks[t];
        out << fmt::format("{:<10} {:<13} {:<6} {:>10} {:>10}  {:<7} {:>10} {:>10} {:>6} {:>8}  {}\n",
                           t == 0 ? runner_name(run.runner) : "", t == 0 ? placement_name(run.placement) : "",
                           t == 0 ? cpus_of(run.cpus) : "", t == 0 ? format_duration(run.wall_seconds) : "",
                           t == 0 ? format_duration(run.together_seconds) : "", task.name,
                           format_duration(task.seconds()), format_duration(task.cpu_seconds), task.voluntary_switches,
                           task.involuntary_switches, cpus_of(task.cpus_seen()));
      }
    };
    for (const PairExperiment& pair : result.pairs) {
      for (const TaskGroupRun& run : pair.runs) row(run);
    }
    if (result.smt_siblings) row(*result.smt_siblings);
    if (result.smt_two_cores) row(*result.smt_two_cores);
    out << "(together: time two tasks ran at the same moment; vol/invol: context switches the task asked for / "
           "suffered)\n\n";
  }
  if (!result.many.empty()) {
    out << fmt::format("{:>5} {:>5} {:>10} {:>14} {:>12}  {}\n", "tasks", "cores", "wall", "ceil(N/M) x 1",
                       "fair share", "CPUs seen");
    for (const ManyTasksRun& many : result.many) {
      std::vector<int> seen;
      for (const TaskRun& task : many.run.tasks) {
        for (int cpu : task.cpus_seen()) seen.push_back(cpu);
      }
      std::sort(seen.begin(), seen.end());
      seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
      out << fmt::format("{:>5} {:>5} {:>10} {:>14} {:>12}  {}\n", many.tasks, many.cpus,
                         format_duration(many.run.wall_seconds), format_duration(many.rounds_prediction()),
                         format_duration(many.fair_share_prediction()), cpus_of(seen));
    }
    out << "\n";
  }
  for (const SkippedExperiment& skipped : result.skipped) {
    out << fmt::format("not run: {}: {}\n", skipped.experiment, skipped.reason);
  }
  return out.str();
}

namespace {

nlohmann::json run_json(const TaskGroupRun& run) {
  nlohmann::json tasks = nlohmann::json::array();
  for (const TaskRun& task : run.tasks) {
    nlohmann::json stretches = nlohmann::json::array();
    for (const Stretch& stretch : task.stretches) {
      stretches.push_back({{"begin_ns", stretch.begin_ns}, {"end_ns", stretch.end_ns}, {"cpu", stretch.cpu}});
    }
    tasks.push_back({{"name", task.name},
                     {"work", task.work},
                     {"pid", task.pid},
                     {"tid", task.tid},
                     {"seconds", task.seconds()},
                     {"cpu_seconds", task.cpu_seconds},
                     {"voluntary_switches", task.voluntary_switches},
                     {"involuntary_switches", task.involuntary_switches},
                     {"cpus_seen", task.cpus_seen()},
                     {"stretches", stretches}});
  }
  return {{"runner", runner_name(run.runner)}, {"placement", placement_name(run.placement)}, {"cpus", run.cpus},
          {"wall_seconds", run.wall_seconds},  {"together_seconds", run.together_seconds},   {"tasks", tasks}};
}

}  // namespace

std::string cores_json(const CoresResult& result) {
  nlohmann::json claims = nlohmann::json::array();
  for (const ClaimFinding& finding : cores_findings(result)) {
    claims.push_back({{"claim", finding.claim},
                      {"measurement", finding.measurement},
                      {"verdict", verdict_word(finding.verdict)},
                      {"why", finding.why}});
  }
  nlohmann::json runs = nlohmann::json::array();
  for (const PairExperiment& pair : result.pairs) {
    for (const TaskGroupRun& run : pair.runs) runs.push_back(run_json(run));
  }
  if (result.smt_siblings) runs.push_back(run_json(*result.smt_siblings));
  if (result.smt_two_cores) runs.push_back(run_json(*result.smt_two_cores));
  nlohmann::json many = nlohmann::json::array();
  for (const ManyTasksRun& run : result.many) {
    many.push_back({{"tasks", run.tasks},
                    {"cpus", run.cpus},
                    {"wall_seconds", run.run.wall_seconds},
                    {"solo_seconds", run.solo},
                    {"rounds_prediction", run.rounds_prediction()},
                    {"fair_share_prediction", run.fair_share_prediction()}});
  }
  nlohmann::json skipped = nlohmann::json::array();
  for (const SkippedExperiment& s : result.skipped)
    skipped.push_back({{"experiment", s.experiment}, {"reason", s.reason}});
  const nlohmann::json document{{"cpus", result.cpus},
                                {"task_seconds", result.options.task_seconds},
                                {"unit_seconds", result.unit_seconds},
                                {"unit_iterations", result.unit_iterations},
                                {"claims", claims},
                                {"runs", runs},
                                {"many", many},
                                {"skipped", skipped}};
  return document.dump(2) + "\n";
}

std::string cores_csv(const CoresResult& result) {
  std::ostringstream out;
  out << "runner,placement,cpus,wall_seconds,together_seconds,task,work,seconds,cpu_seconds,voluntary_switches,"
         "involuntary_switches,cpus_seen\n";
  auto rows = [&](const TaskGroupRun& run) {
    for (const TaskRun& task : run.tasks) {
      out << fmt::format("{},{},{},{},{},{},{},{},{},{},{},{}\n", runner_name(run.runner),
                         csv_field(placement_name(run.placement)), csv_field(cpus_of(run.cpus)), run.wall_seconds,
                         run.together_seconds, csv_field(task.name), task.work, task.seconds(), task.cpu_seconds,
                         task.voluntary_switches, task.involuntary_switches, csv_field(cpus_of(task.cpus_seen())));
    }
  };
  for (const PairExperiment& pair : result.pairs) {
    for (const TaskGroupRun& run : pair.runs) rows(run);
  }
  if (result.smt_siblings) rows(*result.smt_siblings);
  if (result.smt_two_cores) rows(*result.smt_two_cores);
  for (const ManyTasksRun& many : result.many) rows(many.run);
  return out.str();
}

Timeline cores_timeline(const CoresResult& result, Runner runner) {
  Timeline timeline;
  timeline.title = fmt::format("Two tasks as {}: alone, on one core (they take turns), on two cores (side by side)",
                               runner_name(runner));
  timeline.x_label = "seconds since the run's start (each run on its own clock)";
  for (const PairExperiment& pair : result.pairs) {
    if (pair.runner != runner) continue;
    // Newest run at the bottom is harder to read: rows go bottom-up, so add the runs in reverse.
    for (auto run = pair.runs.rbegin(); run != pair.runs.rend(); ++run) {
      if (run->placement == Placement::alone) continue;
      std::int64_t origin = run->tasks.empty() ? 0 : run->tasks.front().begin_ns;
      for (const TaskRun& task : run->tasks) origin = std::min(origin, task.begin_ns);
      for (auto task = run->tasks.rbegin(); task != run->tasks.rend(); ++task) {
        const std::size_t row = timeline.rows.size();
        timeline.rows.push_back(fmt::format("{}: {}", placement_name(run->placement), task->name));
        for (const Stretch& stretch : task->stretches) {
          timeline.bars.push_back({row, static_cast<double>(stretch.begin_ns - origin) * 1e-9,
                                   static_cast<double>(stretch.end_ns - origin) * 1e-9,
                                   fmt::format("on CPU {}", stretch.cpu)});
        }
      }
    }
  }
  return timeline;
}

Chart many_tasks_chart(const CoresResult& result) {
  Chart chart;
  chart.title = fmt::format("N equal tasks on {} cores", result.cpus.size());
  chart.x_label = "tasks (N)";
  chart.y_label = "seconds until the last one is done";
  chart.reference_y.reset();
  chart.log_scale = false;
  Series measured{"measured", {}, {}};
  Series rounds{"ceil(N/M) x one task (the lesson)", {}, {}};
  Series fair{"N/M x one task (a fair share)", {}, {}};
  for (const ManyTasksRun& many : result.many) {
    const auto n = static_cast<double>(many.tasks);
    measured.x.push_back(n);
    measured.y.push_back(many.run.wall_seconds);
    rounds.x.push_back(n);
    rounds.y.push_back(many.rounds_prediction());
    fair.x.push_back(n);
    fair.y.push_back(many.fair_share_prediction());
  }
  chart.series = {measured, rounds, fair};
  return chart;
}

}  // namespace mpdemo::report
