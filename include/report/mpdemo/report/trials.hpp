// Renderers for the experiment's trials: `mpdemo run` (table and JSON) and the pieces of the lesson
// (its introduction, the lesson's boxes, the phase table, the verdicts).
#pragma once

#include "mpdemo/lab/trials.hpp"
#include "mpdemo/report/verdict.hpp"
#include "mpdemo/sys/topology.hpp"

#include <span>
#include <string>

namespace mpdemo::report {

/// `mpdemo run`'s table: one line per method (total median [min - max], the median run's phases,
/// verified), the warm pool's one-time start, then the verdicts.
std::string run_table(const TrialResults& results);
/// `mpdemo run --format json`: size, workers, chunksize, seed, unit, warm_pool_startup and, per method,
/// name, function, repeats, total {median, min, max}, phases (with total) and verified.
std::string run_json(const TrialResults& results);

/// The timings of `results` as the verdicts read them, each method named as the lesson names it
/// ("array_squared_mp") or, without `lesson_names`, as `run --mode` does ("proc").
std::vector<MethodTiming> method_timings(const TrialResults& results, bool lesson_names);

/// What the lesson says before it measures: the task, this machine, the workers, how boxes are timed.
/// `fork_server`: the process pools' workers are forked by a fork server (--start-method forkserver).
std::string lesson_introduction(const Topology& topology, std::size_t workers, std::size_t repeats,
                                bool fork_server = false);
/// The lesson's heading for one array size: "=== 10,000,000 numbers ===".
std::string lesson_size_heading(std::size_t size);
/// Said before the warm pools' boxes: what warm means, and what starting the processes cost once.
std::string lesson_warm_note(double warm_pool_startup_seconds);
/// The lesson's phase table ("where the time went"), the verification line and the verdicts.
std::string lesson_summary(std::span<const MethodTiming> methods, bool verified);

}  // namespace mpdemo::report
