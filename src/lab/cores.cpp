#include "mpdemo/lab/cores.hpp"

#include "mpdemo/pool/shared_arena.hpp"
#include "mpdemo/sys/detail/system_call.hpp"
#include "mpdemo/sys/errors.hpp"
#include "mpdemo/sys/fd.hpp"
#include "mpdemo/sys/interrupt.hpp"
#include "mpdemo/sys/spawn.hpp"
#include "mpdemo/sys/topology.hpp"
#include "mpdemo/sys/trace.hpp"

#include <fmt/format.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <span>
#include <thread>
#include <utility>

namespace mpdemo {

const char* runner_name(Runner runner) noexcept { return runner == Runner::threads ? "threads" : "processes"; }

const char* placement_name(Placement placement) noexcept {
  switch (placement) {
    case Placement::alone:
      return "alone";
    case Placement::one_core:
      return "one core";
    case Placement::two_cores:
      return "two cores";
    case Placement::unpinned:
      return "unpinned";
    case Placement::smt_siblings:
      return "SMT siblings";
    case Placement::shared_cpus:
      return "shared CPUs";
  }
  return "?";
}

std::vector<int> TaskRun::cpus_seen() const {
  std::set<int> seen;
  for (const TaskSample& sample : samples) seen.insert(sample.cpu);
  return {seen.begin(), seen.end()};
}

const TaskGroupRun* PairExperiment::find(Placement placement) const noexcept {
  for (const TaskGroupRun& run : runs) {
    if (run.placement == placement) return &run;
  }
  return nullptr;
}

double ManyTasksRun::rounds_prediction() const noexcept {
  if (cpus == 0) return 0;
  return std::ceil(static_cast<double>(tasks) / static_cast<double>(cpus)) * solo;
}

double ManyTasksRun::fair_share_prediction() const noexcept {
  if (cpus == 0) return 0;
  return std::max(1.0, static_cast<double>(tasks) / static_cast<double>(cpus)) * solo;
}

std::vector<Stretch> stretches_of(std::int64_t begin_ns, const std::vector<TaskSample>& samples, std::int64_t unit_ns,
                                  std::int64_t gap_ns) {
  std::vector<Stretch> stretches;
  std::int64_t previous = begin_ns;
  for (const TaskSample& sample : samples) {
    const bool continues =
        !stretches.empty() && sample.at_ns - previous <= gap_ns && stretches.back().cpu == sample.cpu;
    if (continues) {
      stretches.back().end_ns = sample.at_ns;
    } else {
      // The first unit began at the go signal; a later one, a unit before it ended (as near as we know).
      const std::int64_t began =
          stretches.empty() ? begin_ns : std::max(previous, sample.at_ns - std::min(unit_ns, sample.at_ns - previous));
      stretches.push_back({began, sample.at_ns, sample.cpu});
    }
    previous = sample.at_ns;
  }
  return stretches;
}

double together_seconds(const std::vector<TaskRun>& tasks) {
  std::vector<std::pair<std::int64_t, int>> edges;
  for (const TaskRun& task : tasks) {
    for (const Stretch& stretch : task.stretches) {
      edges.emplace_back(stretch.begin_ns, +1);
      edges.emplace_back(stretch.end_ns, -1);
    }
  }
  std::sort(edges.begin(), edges.end());  // at one instant, ends (-1) come before beginnings
  std::int64_t together = 0;
  int running = 0;
  std::int64_t since = 0;
  for (const auto& [at, change] : edges) {
    if (running >= 2) together += at - since;
    running += change;
    since = at;
  }
  return static_cast<double>(together) * 1e-9;
}

// ---- verdicts ------------------------------------------------------------------------------------

ClaimCheck one_thing_at_a_time(const TaskGroupRun& one_core) {
  double shortest = std::numeric_limits<double>::infinity();
  for (const TaskRun& task : one_core.tasks) shortest = std::min(shortest, task.seconds());
  const double fraction = one_core.tasks.size() < 2 || shortest <= 0 ? 0 : one_core.together_seconds / shortest;
  return {fraction <= kClaimTolerance, fraction, 0};
}

ClaimCheck takes_turns(const TaskGroupRun& one_core, double solo_a, double solo_b) {
  const double sum = solo_a + solo_b;
  return {one_core.wall_seconds >= sum * (1 - kClaimTolerance), one_core.wall_seconds, sum};
}

ClaimCheck runs_at_once(const TaskGroupRun& two_cores, double solo_a, double solo_b) {
  const double longest = std::max(solo_a, solo_b);
  return {two_cores.wall_seconds <= longest * (1 + kClaimTolerance), two_cores.wall_seconds, longest};
}

ClaimCheck siblings_share_a_core(const TaskGroupRun& siblings, const TaskGroupRun& two_cores) {
  return {siblings.wall_seconds > two_cores.wall_seconds * (1 + kClaimTolerance), siblings.wall_seconds,
          two_cores.wall_seconds};
}

ClaimCheck rounds_of_tasks(const ManyTasksRun& run) {
  const double low = run.fair_share_prediction() * (1 - kClaimTolerance);
  const double high = run.rounds_prediction() * (1 + kClaimTolerance);
  return {run.run.wall_seconds >= low && run.run.wall_seconds <= high, run.run.wall_seconds, run.rounds_prediction()};
}

namespace {

constexpr double kUnitSeconds = 100e-6;  // the sampling interval the issue asks for: ~100 us of work
constexpr int kTaskPinFailed = 3;
constexpr int kTaskNotStarted = 4;
constexpr int kTaskInterrupted = 5;

// Waits until every child has ended, without waking the master while they run (it would take CPU
// time from the tasks it measures); an interrupt kills them all and throws Interrupted.
std::vector<ExitStatus> wait_for_all(std::vector<ChildProcess>& children) {
  std::vector<ExitStatus> statuses(children.size(), ExitStatus::never_started());
  std::vector<FileDescriptor> pidfds;
  for (ChildProcess& child : children) {
    pidfds.push_back(FileDescriptor::adopt(static_cast<int>(::syscall(SYS_pidfd_open, child.pid(), 0))));
  }
  for (std::size_t left = children.size(); left > 0;) {
    std::vector<pollfd> watched{{interrupt_wake_fd(), POLLIN, 0}};
    for (std::size_t i = 0; i < children.size(); ++i) {
      if (!children[i].running()) continue;
      // Without a pidfd (a kernel before 5.3) this child is waited for in turn, blocking.
      if (pidfds[i].get() < 0) {
        statuses[i] = children[i].wait();
        --left;
        continue;
      }
      watched.push_back({pidfds[i].get(), POLLIN, 0});
    }
    if (left == 0) break;
    if (::poll(watched.data(), watched.size(), -1) < 0 && errno != EINTR) throw_errno("wait for the tasks");
    if (pending_interrupt() != 0) {
      for (ChildProcess& child : children) child.kill_and_wait();
      throw_if_interrupted();
    }
    for (std::size_t i = 0; i < children.size(); ++i) {
      if (!children[i].running() || pidfds[i].get() < 0) continue;
      pollfd ended{pidfds[i].get(), POLLIN, 0};
      if (::poll(&ended, 1, 0) == 1) {
        statuses[i] = children[i].wait();
        --left;
      }
    }
  }
  return statuses;
}

// The work: a chain of dependent multiply-adds, each waiting for the last, so it runs at the same
// speed whatever the compiler and the memory do, and only a core can make it go faster.
[[gnu::noinline]] double arithmetic(double x, std::uint64_t steps) noexcept {
  for (std::uint64_t i = 0; i < steps; ++i) x = x * 0.999999999 + 1e-9;
  return x;
}

// What a task writes about itself, in shared memory (a forked task's answer).
struct TaskRecord {
  std::int64_t begin_ns;
  std::int64_t end_ns;
  pid_t pid;
  pid_t tid;
  double cpu_seconds;
  long voluntary_switches;
  long involuntary_switches;
  double checksum;  // the arithmetic's result, so that it cannot be left out
};

double cpu_seconds_of(const rusage& usage) {
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) * 1e-6;
}

struct TaskSpec {
  std::string name;
  double work = 1;
  std::vector<int> cpus;  // allowed on these (one: pinned)
};

// One task's life, the same in a thread and in a forked process: system calls and arithmetic only.
int run_task(int go_fd, std::span<const int> cpus, std::uint64_t units, std::uint64_t steps, TaskRecord& record,
             TaskSample* samples) noexcept {
  if (!pin_calling_thread(cpus)) return kTaskPinFailed;
  char go = 0;
  if (read_whole(go_fd, &go, 1) != ReadOutcome::complete) return kTaskNotStarted;  // the run was called off
  rusage before{};
  ::getrusage(RUSAGE_THREAD, &before);
  record.pid = ::getpid();
  record.tid = current_tid();
  record.begin_ns = monotonic_ns();
  double x = 1.0;
  for (std::uint64_t u = 0; u < units; ++u) {
    // Ctrl-C stops a thread within a unit (a forked task is killed by the master instead).
    if (detail::g_stop_requested.load(std::memory_order_relaxed) != 0) return kTaskInterrupted;
    x = arithmetic(x, steps);
    samples[u] = {monotonic_ns(), current_cpu()};
  }
  record.end_ns = monotonic_ns();
  rusage after{};
  ::getrusage(RUSAGE_THREAD, &after);
  record.cpu_seconds = cpu_seconds_of(after) - cpu_seconds_of(before);
  record.voluntary_switches = after.ru_nvcsw - before.ru_nvcsw;
  record.involuntary_switches = after.ru_nivcsw - before.ru_nivcsw;
  record.checksum = x;
  return 0;
}

struct Unit {
  std::uint64_t steps = 1;
  double seconds = kUnitSeconds;
};

// How many steps make ~100 us on this machine: the fastest of several timings on the first core in
// use (the fastest is the least disturbed).
Unit calibrate(int cpu) {
  Unit unit;
  std::thread timing([&] {
    pin_calling_thread(cpu);
    constexpr std::uint64_t kSteps = 20'000;
    double best = std::numeric_limits<double>::infinity();
    double x = 1.0;
    for (int i = 0; i < 9; ++i) {
      const std::int64_t begin = monotonic_ns();
      x = arithmetic(x, kSteps);
      best = std::min(best, static_cast<double>(monotonic_ns() - begin) * 1e-9 / kSteps);
    }
    unit.steps = std::max<std::uint64_t>(1, static_cast<std::uint64_t>(kUnitSeconds / std::max(best, 1e-12)));
    unit.seconds = static_cast<double>(unit.steps) * best;
    if (x == 0) unit.steps += 1;  // never true: keeps x alive
  });
  timing.join();
  return unit;
}

class GroupRunner {
 public:
  GroupRunner(const Unit& unit, double task_seconds, Trace* trace)
      : unit_(unit),
        units_per_1x_(
            std::max<std::uint64_t>(1, static_cast<std::uint64_t>(std::llround(task_seconds / unit.seconds)))),
        trace_(trace) {}

  TaskGroupRun run(Runner runner, Placement placement, const std::vector<TaskSpec>& specs) {
    throw_if_interrupted();
    const auto arena = SharedArena::process_default();
    SharedArray<TaskRecord> records(arena, specs.size());
    std::vector<SharedArray<TaskSample>> samples;
    std::vector<std::uint64_t> units;
    for (std::size_t i = 0; i < specs.size(); ++i) {
      records.data()[i] = TaskRecord{};
      units.push_back(std::max<std::uint64_t>(
          1, static_cast<std::uint64_t>(std::llround(specs[i].work * static_cast<double>(units_per_1x_)))));
      samples.emplace_back(arena, units.back());
    }
    Pipe go = Pipe::create();
    const int go_fd = go.read_end.get();
    auto body = [&](std::size_t i) noexcept {
      return run_task(go_fd, specs[i].cpus, units[i], unit_.steps, records.data()[i], samples[i].data());
    };
    std::vector<int> statuses(specs.size(), kTaskNotStarted);
    if (runner == Runner::processes) {
      std::vector<ChildProcess> children;
      SpawnOptions options;
      options.keep_descriptors = {go_fd};
      options.ignore_interrupts = true;  // Ctrl-C: the master stops them (ChildProcess kills on the way out)
      for (std::size_t i = 0; i < specs.size(); ++i) {
        children.push_back(spawn("task " + specs[i].name, options, [&body, i]() noexcept { return body(i); }));
      }
      release(go, specs.size());
      const std::vector<ExitStatus> ended = wait_for_all(children);
      for (std::size_t i = 0; i < children.size(); ++i) {
        const ExitStatus& status = ended[i];
        statuses[i] = status.exited() ? status.exit_code() : -1;
        if (!status.exited()) {
          throw std::runtime_error(fmt::format("cores: task {} ({} {}) {}", specs[i].name, runner_name(runner),
                                               placement_name(placement), status.str()));
        }
      }
    } else {
      std::vector<std::thread> threads;
      try {
        for (std::size_t i = 0; i < specs.size(); ++i) threads.emplace_back([&, i] { statuses[i] = body(i); });
        release(go, specs.size());
      } catch (...) {
        go.write_end.reset();  // end-of-file: the threads not yet released leave without working
        for (std::thread& thread : threads) thread.join();
        throw;
      }
      for (std::thread& thread : threads) thread.join();
    }
    throw_if_interrupted();
    for (std::size_t i = 0; i < specs.size(); ++i) {
      if (statuses[i] == kTaskPinFailed) {
        throw std::runtime_error(fmt::format("cores: the kernel refused to pin task {} to CPU {}", specs[i].name,
                                             format_cpu_list(specs[i].cpus)));
      }
      if (statuses[i] != 0) {
        throw std::runtime_error(fmt::format("cores: task {} did not run (status {})", specs[i].name, statuses[i]));
      }
    }
    return collect(runner, placement, specs, records, samples);
  }

  double unit_seconds() const noexcept { return unit_.seconds; }

 private:
  static void release(Pipe& go, std::size_t tasks) {
    const std::string bytes(tasks, 'g');
    write_all(go.write_end.get(), bytes.data(), bytes.size(), "start the tasks");
  }

  TaskGroupRun collect(Runner runner, Placement placement, const std::vector<TaskSpec>& specs,
                       const SharedArray<TaskRecord>& records, const std::vector<SharedArray<TaskSample>>& samples) {
    TaskGroupRun group;
    group.runner = runner;
    group.placement = placement;
    std::set<int> allowed;
    for (const TaskSpec& spec : specs) allowed.insert(spec.cpus.begin(), spec.cpus.end());
    group.cpus.assign(allowed.begin(), allowed.end());
    const auto unit_ns = static_cast<std::int64_t>(unit_.seconds * 1e9);
    std::int64_t first = std::numeric_limits<std::int64_t>::max();
    std::int64_t last = std::numeric_limits<std::int64_t>::min();
    for (std::size_t i = 0; i < specs.size(); ++i) {
      const TaskRecord& record = records.data()[i];
      TaskRun task;
      task.name = specs[i].name;
      task.work = specs[i].work;
      task.pid = record.pid;
      task.tid = record.tid;
      task.begin_ns = record.begin_ns;
      task.end_ns = record.end_ns;
      task.cpu_seconds = record.cpu_seconds;
      task.voluntary_switches = record.voluntary_switches;
      task.involuntary_switches = record.involuntary_switches;
      task.samples.assign(samples[i].begin(), samples[i].end());
      // A gap of more than a few units: the task was not running.
      task.stretches = stretches_of(task.begin_ns, task.samples, unit_ns, 4 * unit_ns);
      first = std::min(first, task.begin_ns);
      last = std::max(last, task.end_ns);
      group.tasks.push_back(std::move(task));
    }
    group.wall_seconds = static_cast<double>(last - first) * 1e-9;
    group.together_seconds = together_seconds(group.tasks);
    record_in_trace(group, first, last);
    return group;
  }

  void record_in_trace(const TaskGroupRun& group, std::int64_t first, std::int64_t last) {
    if (trace_ == nullptr) return;
    const std::string what = fmt::format("{}, {}", runner_name(group.runner), placement_name(group.placement));
    trace_->add(trace_->this_thread(), what, "experiment", first, last, -1);
    for (const TaskRun& task : group.tasks) {
      const std::size_t track =
          trace_->track(task.pid, task.tid,
                        fmt::format("{}: {} {} {}", what, task.name, group.runner == Runner::threads ? "tid" : "pid",
                                    group.runner == Runner::threads ? task.tid : task.pid));
      for (const Stretch& stretch : task.stretches) {
        trace_->add(track, "task " + task.name, fmt::format("ran on CPU {}", stretch.cpu), stretch.begin_ns,
                    stretch.end_ns, stretch.cpu);
      }
    }
  }

  Unit unit_;
  std::uint64_t units_per_1x_;
  Trace* trace_;
};

TaskSpec task_a(std::vector<int> cpus) { return {"A (1x)", 1, std::move(cpus)}; }
TaskSpec task_b(std::vector<int> cpus) { return {"B (2x)", 2, std::move(cpus)}; }

}  // namespace

CoresResult run_cores(const CoresOptions& options) {
  if (!(options.task_seconds >= 0.001 && options.task_seconds <= 60)) {
    throw BadArgument(
        fmt::format("cores: the 1x task must run between 0.001 and 60 seconds, not {}", options.task_seconds));
  }
  const Topology& topology = system_topology();
  CoresResult result;
  result.options = options;
  const std::size_t available = topology.worker_cpus.size();
  const std::size_t wanted = options.cpus.value_or(available);
  if (wanted > available) {
    throw BadArgument(
        fmt::format("cores: --cpus {} asks for more physical cores than this process may use ({}: CPUs {})", wanted,
                    available, format_cpu_list(topology.worker_cpus)));
  }
  result.cpus.assign(topology.worker_cpus.begin(), topology.worker_cpus.begin() + static_cast<std::ptrdiff_t>(wanted));
  const std::size_t cores = result.cpus.size();
  if (cores == 0) {
    const std::string why = "--cpus 0 leaves no CPU to run a task on";
    for (const char* experiment : {"claims 1-3: two tasks on one core, on two cores, unpinned",
                                   "claim 4: SMT siblings against two cores", "N tasks on M cores"}) {
      result.skipped.push_back({experiment, why});
    }
    return result;
  }

  const Unit unit = calibrate(result.cpus[0]);
  result.unit_iterations = unit.steps;
  result.unit_seconds = unit.seconds;
  GroupRunner groups(unit, options.task_seconds, options.trace);
  const std::vector<int> first_core{result.cpus[0]};
  const Runner runners[] = {Runner::threads, Runner::processes};

  // Solo times first, runners interleaved, each alone on the first core.
  for (const Runner runner : runners) {
    PairExperiment pair;
    pair.runner = runner;
    result.pairs.push_back(std::move(pair));
  }
  // Each solo runs twice, before the pairs and after them, and the faster is kept: a solo time is the
  // yardstick of every claim, so it should be the least disturbed (another program starting, a VM's
  // neighbour) and not depend on when the disturbance came.
  auto measure_solos = [&] {
    for (const auto& make : {task_a, task_b}) {
      for (PairExperiment& pair : result.pairs) {
        TaskGroupRun alone = groups.run(pair.runner, Placement::alone, {make(first_core)});
        double& solo = make == task_a ? pair.solo_a : pair.solo_b;
        const auto kept = std::find_if(pair.runs.begin(), pair.runs.end(), [&](const TaskGroupRun& run) {
          return run.placement == Placement::alone && run.tasks.front().name == alone.tasks.front().name;
        });
        if (kept == pair.runs.end()) {
          solo = alone.wall_seconds;
          pair.runs.push_back(std::move(alone));
        } else if (alone.wall_seconds < kept->wall_seconds) {
          solo = alone.wall_seconds;
          *kept = std::move(alone);
        }
      }
    }
  };
  measure_solos();
  std::vector<std::pair<Placement, std::vector<TaskSpec>>> placements{
      {Placement::one_core, {task_a(first_core), task_b(first_core)}}};
  if (cores >= 2) {
    placements.push_back({Placement::two_cores, {task_a(first_core), task_b({result.cpus[1]})}});
    placements.push_back({Placement::unpinned, {task_a(result.cpus), task_b(result.cpus)}});
  } else {
    result.skipped.push_back({"claim 3: two tasks on two cores, and unpinned",
                              "only one physical core is in use here, so nothing can run side by side"});
  }
  for (const auto& [placement, specs] : placements) {
    for (PairExperiment& pair : result.pairs) pair.runs.push_back(groups.run(pair.runner, placement, specs));
  }
  measure_solos();

  // Claim 4: two hardware threads of one core against two cores.
  const auto smt_core = std::find_if(topology.core_cpus.begin(), topology.core_cpus.end(),
                                     [](const std::vector<int>& siblings) { return siblings.size() >= 2; });
  if (smt_core == topology.core_cpus.end()) {
    result.skipped.push_back({"claim 4: SMT siblings against two cores",
                              fmt::format("this machine has no SMT: each of its {} CPUs this process may use is a "
                                          "core of its own, so logical and physical counts agree",
                                          topology.allowed_cpus.size())});
  } else if (cores < 2) {
    result.skipped.push_back({"claim 4: SMT siblings against two cores", "it needs two physical cores in use"});
  } else {
    const std::vector<int>& siblings = *smt_core;
    result.smt_siblings = groups.run(Runner::processes, Placement::smt_siblings,
                                     {{"A (1x)", 1, {siblings[0]}}, {"A' (1x)", 1, {siblings[1]}}});
    result.smt_two_cores = groups.run(Runner::processes, Placement::two_cores,
                                      {{"A (1x)", 1, {result.cpus[0]}}, {"A' (1x)", 1, {result.cpus[1]}}});
  }

  // N equal tasks on the M cores in use, the scheduler placing them.
  const std::size_t most = options.max_tasks != 0 ? options.max_tasks : 2 * cores;
  const double solo = result.pairs.back().solo_a;  // processes, 1x
  for (std::size_t n = 1; n <= most; ++n) {
    std::vector<TaskSpec> specs;
    for (std::size_t t = 0; t < n; ++t) specs.push_back({fmt::format("{} of {}", t + 1, n), 1, result.cpus});
    ManyTasksRun many;
    many.tasks = n;
    many.cpus = cores;
    many.solo = solo;
    many.run = groups.run(Runner::processes, Placement::shared_cpus, specs);
    result.many.push_back(std::move(many));
  }
  return result;
}

}  // namespace mpdemo
