// Renderers for `mpdemo cores`: each claim of the lesson next to its measurement and verdict, the
// runs behind them, and the pictures (one core's time slices against two cores side by side; N tasks
// on M cores). Pure functions of a CoresResult.
#pragma once

#include "mpdemo/lab/cores.hpp"
#include "mpdemo/report/chart.hpp"

#include <string>
#include <vector>

namespace mpdemo::report {

/// One claim of the lesson, what was measured, and whether the measurement agrees.
struct ClaimFinding {
  std::string claim;        ///< the lesson's words
  std::string measurement;  ///< the figures, in a sentence
  enum class Verdict { holds, does_not_hold, not_measured } verdict = Verdict::not_measured;
  std::string why;  ///< not_measured: why it could not run here; otherwise what the verdict rests on
};
const char* verdict_word(ClaimFinding::Verdict verdict) noexcept;

/// The claims in the lesson's order, each judged on this run (threads and processes alike).
std::vector<ClaimFinding> cores_findings(const CoresResult& result);

/// Claims with measurements and verdicts, the runs (wall, time together, each task's time, CPU time,
/// context switches, CPUs), N tasks on M cores, and what could not run and why.
std::string cores_table(const CoresResult& result);

/// {"cpus", "unit_seconds", "claims": [{claim, measurement, verdict, why}], "runs": [{runner,
/// placement, cpus, wall_seconds, together_seconds, tasks: [{name, work, pid, tid, seconds,
/// cpu_seconds, voluntary_switches, involuntary_switches, cpus_seen, stretches}]}], "many": [{tasks,
/// cpus, wall_seconds, rounds_prediction, fair_share_prediction}], "skipped": [{experiment, reason}]}
std::string cores_json(const CoresResult& result);

/// One line per task of every run:
///   runner,placement,cpus,wall_seconds,together_seconds,task,work,seconds,cpu_seconds,
///   voluntary_switches,involuntary_switches,cpus_seen
std::string cores_csv(const CoresResult& result);

/// The pair runs of `runner` (alone, one core, two cores, unpinned) as one timeline: a row per task
/// per run, a bar per stretch it ran, coloured by CPU. Empty rows when nothing ran.
Timeline cores_timeline(const CoresResult& result, Runner runner);

/// Measured wall time of N tasks on M cores against the lesson's ceil(N/M) rounds and a fair share.
Chart many_tasks_chart(const CoresResult& result);

}  // namespace mpdemo::report
