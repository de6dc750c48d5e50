// `mpdemo cores`: the lesson's opening claims about cores, measured on this machine.
//
//  1. a core does one thing at a time;
//  2. tasks sharing one core take turns, so together they take at least as long as one after the other;
//  3. on two cores they really run at once, and together take as long as the longest;
//  4. a pool should count physical cores, not logical CPUs (SMT siblings share one core).
//
// Tasks are a fixed amount of dependent arithmetic (nothing to vectorise, nothing in memory), split
// into units of ~100 us; after each unit a task notes the time and its CPU. From those samples come
// when each task actually ran (its stretches), how long two tasks ran at the same moment, and which
// CPUs they used; getrusage(RUSAGE_THREAD) gives each task's CPU time and context switches. Tasks
// run as threads of this process and as forked processes, started together by one pipe write.
#pragma once

#include <sys/types.h>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mpdemo {

class Trace;

enum class Runner { threads, processes };
enum class Placement {
  alone,         ///< one task by itself, pinned to one core: the solo time
  one_core,      ///< both tasks pinned to the same CPU
  two_cores,     ///< each task pinned to a CPU of a different physical core
  unpinned,      ///< both allowed on every CPU in use: where the scheduler puts them
  smt_siblings,  ///< each pinned to a different hardware thread of the same core
  shared_cpus,   ///< N tasks allowed on M CPUs, the scheduler choosing
};
const char* runner_name(Runner runner) noexcept;
const char* placement_name(Placement placement) noexcept;

struct CoresOptions {
  double task_seconds = 0.05;       ///< how long the 1x task runs alone (the 2x task, twice that)
  std::optional<std::size_t> cpus;  ///< use the first N physical cores this process may use; none: all
  std::size_t max_tasks = 0;        ///< N tasks on M cores for N = 1 .. this (0: 2M)
  Trace* trace = nullptr;           ///< where each task's stretches of running go; null: nowhere
};

/// When a task finished one unit of work, and on which CPU.
struct TaskSample {
  std::int64_t at_ns = 0;  ///< monotonic_ns()
  std::int32_t cpu = -1;
};

/// A stretch of time a task ran without being taken off its CPU for longer than a few units.
struct Stretch {
  std::int64_t begin_ns = 0;
  std::int64_t end_ns = 0;
  int cpu = -1;
};

struct TaskRun {
  std::string name;  ///< "A (1x)"
  double work = 1;   ///< in 1x tasks
  pid_t pid = 0;
  pid_t tid = 0;
  std::int64_t begin_ns = 0;  ///< the go signal read
  std::int64_t end_ns = 0;    ///< the last unit done
  double cpu_seconds = 0;     ///< user + system CPU time of the task's thread
  long voluntary_switches = 0;
  long involuntary_switches = 0;  ///< taken off its CPU by the scheduler: the turns it had to wait
  std::vector<TaskSample> samples;
  std::vector<Stretch> stretches;  ///< from the samples (see stretches_of)
  double seconds() const noexcept { return static_cast<double>(end_ns - begin_ns) * 1e-9; }
  std::vector<int> cpus_seen() const;
};

struct TaskGroupRun {
  Runner runner = Runner::processes;
  Placement placement = Placement::alone;
  std::vector<int> cpus;  ///< the CPUs the tasks were allowed on
  std::vector<TaskRun> tasks;
  double wall_seconds = 0;      ///< first task's start to last task's end
  double together_seconds = 0;  ///< time two or more tasks were running at the same moment
};

/// Two unequal tasks, A (1x) and B (2x), by one runner: alone, then side by side.
struct PairExperiment {
  Runner runner = Runner::processes;
  double solo_a = 0;
  double solo_b = 0;
  std::vector<TaskGroupRun> runs;  ///< one per placement that could run here
  const TaskGroupRun* find(Placement placement) const noexcept;
};

/// N equal 1x tasks allowed on M CPUs.
struct ManyTasksRun {
  std::size_t tasks = 0;
  std::size_t cpus = 0;
  double solo = 0;  ///< one 1x task alone, measured in the same experiment
  TaskGroupRun run;
  /// The lesson's rule: ceil(N/M) rounds of one task.
  double rounds_prediction() const noexcept;
  /// A perfectly fair scheduler that moves tasks between cores: N/M tasks' worth on each core.
  double fair_share_prediction() const noexcept;
};

struct SkippedExperiment {
  std::string experiment;
  std::string reason;
};

struct CoresResult {
  CoresOptions options;
  std::vector<int> cpus;                     ///< one CPU per physical core in use
  double unit_seconds = 0;                   ///< one unit of work alone (the sampling interval)
  std::uint64_t unit_iterations = 0;         ///< arithmetic steps per unit, calibrated
  std::vector<PairExperiment> pairs;         ///< threads, then processes
  std::optional<TaskGroupRun> smt_siblings;  ///< claim 4, where the machine has SMT
  std::optional<TaskGroupRun> smt_two_cores;
  std::vector<ManyTasksRun> many;
  std::vector<SkippedExperiment> skipped;
};

/// Runs every experiment this machine allows (a machine with one core runs what needs one, and says
/// why the rest cannot run). Throws BadArgument for options it cannot honour (more cores than this
/// process may use, a task time out of range), Interrupted on Ctrl-C (within one task's time: every
/// task is stopped and reaped).
CoresResult run_cores(const CoresOptions& options);

/// A task's stretches: consecutive samples no more than `gap_ns` apart (a unit's time, a few times)
/// belong to one stretch, on one CPU; a longer gap, or a move to another CPU, starts the next. A
/// stretch begins one unit before its first sample, when that unit began.
std::vector<Stretch> stretches_of(std::int64_t begin_ns, const std::vector<TaskSample>& samples, std::int64_t unit_ns,
                                  std::int64_t gap_ns);

/// Total time during which at least two of the tasks' stretches overlap.
double together_seconds(const std::vector<TaskRun>& tasks);

// ---- the verdicts: pure functions of the numbers, so tests can give them any timings -------------

/// How far a measurement may stray from what a claim predicts and still count as agreeing with it.
/// Generous on purpose: a VM's neighbours, timer ticks and the scheduler's own work are in every run.
inline constexpr double kClaimTolerance = 0.15;

struct ClaimCheck {
  bool holds = false;
  double measured = 0;   ///< seconds, or a fraction
  double predicted = 0;  ///< what the claim says it should be
};

/// Claim 1: on one core the tasks are never running at the same moment (together <= tolerance of the
/// shorter task's time).
ClaimCheck one_thing_at_a_time(const TaskGroupRun& one_core);
/// Claim 2: sharing one core, the wall time is at least the sum of the solo times (less tolerance).
ClaimCheck takes_turns(const TaskGroupRun& one_core, double solo_a, double solo_b);
/// Claim 3: on two cores, the wall time is the longest solo time (within tolerance).
ClaimCheck runs_at_once(const TaskGroupRun& two_cores, double solo_a, double solo_b);
/// Claim 4: two tasks on SMT siblings take longer than on two cores (by more than the tolerance).
ClaimCheck siblings_share_a_core(const TaskGroupRun& siblings, const TaskGroupRun& two_cores);
/// N tasks on M cores take about ceil(N/M) rounds (between the fair share and the rounds, within
/// tolerance).
ClaimCheck rounds_of_tasks(const ManyTasksRun& run);

}  // namespace mpdemo
