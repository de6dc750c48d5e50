#include "run_command.hpp"

#include "mpdemo/lab/mpi_methods.hpp"
#include "mpdemo/lab/trials.hpp"
#include "mpdemo/report/trials.hpp"
#include "mpdemo/sys/topology.hpp"
#include "options.hpp"
#include "trace_options.hpp"

#include <fmt/format.h>
#include <algorithm>
#include <iostream>
#include <map>
#include <memory>

namespace mpdemo::cli {

namespace {

struct RunOptions {
  std::size_t size = 10'000'000;
  std::size_t workers = 0;
  std::size_t chunksize = 0;
  bool caller_computes = false;
  bool fork_server = false;  ///< --start-method forkserver
  std::string mode = "all";
  std::string backend = "local";
  int ranks_per_node = 0;
  std::uint64_t seed = 1;
  std::size_t repeat = 5;
  Format format = Format::table;
  TraceOutputs trace;
};

const std::map<std::string, std::vector<Method>>& modes() {
  static const std::map<std::string, std::vector<Method>> table{
      {"seq", {Method::sequential}},
      {"proc", {Method::fresh_processes}},
      {"proc-copy", {Method::fresh_processes_copy}},
      {"thread", {Method::fresh_threads}},
      {"warm-proc", {Method::warm_processes}},
      {"warm-thread", {Method::warm_threads}},
      {"all",
       {Method::sequential, Method::fresh_processes, Method::fresh_processes_copy, Method::fresh_threads,
        Method::warm_processes, Method::warm_threads}},
      {"mpi-scatter", {Method::mpi_scatter}},
      {"mpi-window", {Method::mpi_shared_window}},
      {"mpi-hybrid", {Method::mpi_hybrid}},
      {"mpi", {Method::mpi_scatter, Method::mpi_shared_window, Method::mpi_hybrid}},
  };
  return table;
}

// `--backend mpi --mode all`: the lesson's comparison on one machine, every contender warm: the loop,
// the fork pool and threads on the root, then the three MPI paths over every rank.
const std::vector<Method>& mpi_comparison() {
  static const std::vector<Method> methods{Method::sequential,  Method::warm_processes,    Method::warm_threads,
                                           Method::mpi_scatter, Method::mpi_shared_window, Method::mpi_hybrid};
  return methods;
}

bool over_mpi(Method method) { return machinery_of(method) == Machinery::mpi_ranks; }

// How many arrays of N doubles a run holds at its peak: the input, the reference answer and the
// input's shared copy always; each warm method's output for the whole run; and the largest number
// a single fresh call holds at once.
struct Footprint {
  std::size_t arrays;             ///< in memory
  std::size_t shared_arrays;      ///< of those, in the pool's arena
  std::size_t window_arrays = 0;  ///< of those, in MPI's shared windows (files in /dev/shm)
};

Footprint footprint(const std::vector<Method>& methods) {
  Footprint persistent{3, 1, 0};
  Footprint transient{0, 0, 0};
  for (const Method method : methods) {
    switch (method) {
      case Method::warm_processes:
        persistent.arrays += 1;
        persistent.shared_arrays += 1;
        break;
      case Method::warm_threads:
        persistent.arrays += 1;
        break;
      case Method::fresh_processes:
        transient = {std::max<std::size_t>(transient.arrays, 1), std::max<std::size_t>(transient.shared_arrays, 1)};
        break;
      case Method::fresh_processes_copy:
        transient = {std::max<std::size_t>(transient.arrays, 3), std::max<std::size_t>(transient.shared_arrays, 2)};
        break;
      case Method::sequential:
      case Method::fresh_threads:
        transient.arrays = std::max<std::size_t>(transient.arrays, 1);
        break;
      // On one host, the ranks' buffers add up in the same memory.
      case Method::mpi_scatter:
        persistent.arrays += 3;  // the root's output, and the other ranks' slices in and out
        break;
      case Method::mpi_hybrid:
        persistent.arrays += 3;  // the root's output, the node's window in and out
        persistent.window_arrays += 2;
        break;
      case Method::mpi_shared_window:
        persistent.arrays += 2;  // input and output in the node's window (MPI's, not the pool's arena)
        persistent.window_arrays += 2;
        break;
    }
  }
  return {persistent.arrays + transient.arrays, persistent.shared_arrays + transient.shared_arrays,
          persistent.window_arrays};
}

// What rank 0 had verified when the job was stopped, kept as the runs end.
class VerifiedSoFar {
 public:
  void add(Method method, const Trial& trial) {
    auto& [runs, verified] = counts_[method];
    ++runs;
    verified += trial.verified ? 1 : 0;
  }
  std::string said() const {
    std::string text;
    for (const auto& [method, count] : counts_) {
      text += fmt::format("{}{} {} of {} verified", text.empty() ? "" : ", ", method_name(method), count.second,
                          count.first);
    }
    return text.empty() ? "no run had finished" : text;
  }

 private:
  std::map<Method, std::pair<std::size_t, std::size_t>> counts_;
};

int run(std::ostream& out, RunOptions& options) {
  const bool mpi = options.backend == "mpi";
  std::vector<Method> methods = mpi && options.mode == "all" ? mpi_comparison() : modes().at(options.mode);
  const bool any_over_mpi = std::any_of(methods.begin(), methods.end(), over_mpi);
  if (any_over_mpi && !mpi) {
    throw UsageError(fmt::format("--mode {} runs over MPI ranks: mpirun -np K mpdemo run --backend mpi --mode {}",
                                 options.mode, options.mode));
  }
  if (options.ranks_per_node != 0 && !mpi) throw UsageError("--ranks-per-node belongs to --backend mpi");
  if (options.caller_computes && mpi) {
    // Rank 0 is pinned to its first worker's core for the MPI paths, so its share would run beside
    // that worker while the core it was meant for idles: not the team the flag promises.
    throw UsageError("--caller-computes is for the local pools: run it without --backend mpi");
  }
  // A fork server forked after MPI_Init would be a process Open MPI does not know; and the MPI paths'
  // ranks are started by mpirun, not forked.
  require_fork_server_support(options.fork_server);
  if (options.fork_server && mpi) {
    throw UsageError("--start-method forkserver is for the local pools: run it without --backend mpi");
  }
  const auto uses = [&](Machinery machinery) {
    return std::any_of(methods.begin(), methods.end(), [&](Method m) { return machinery_of(m) == machinery; });
  };
  // Only a run with a pool has a caller to share its maps (`--mode seq --caller-computes` is the loop).
  options.caller_computes = options.caller_computes && (uses(Machinery::processes) || uses(Machinery::threads));
  const std::size_t workers = worker_count(options.workers, options.caller_computes);
  const Footprint peak = footprint(methods);
  const std::string what = fmt::format("--size {} in mode {}", options.size, options.mode);
  require_process_resources(
      ProcessNeeds::for_pools(workers, uses(Machinery::processes), uses(Machinery::threads), options.fork_server),
      what);
  require_available_memory(peak.arrays * options.size * sizeof(double), what);
  require_arena_capacity(peak.shared_arrays * options.size * sizeof(double), what);
  if (mpi) require_shared_memory_files(peak.window_arrays * options.size * sizeof(double), what);

  // Joined after every check of this rank's own (the trace's paths included), so that bad input
  // ends every rank before MPI starts.
  Trace* trace = options.trace.start(options.format);
  std::unique_ptr<RankedMethods> ranked;
  if (mpi) {
    // A list of every path (all, mpi) leaves out the one that cannot run on this job; a path asked
    // for by name is refused with the reason.
    const bool every_path = options.mode == "all" || options.mode == "mpi";
    ranked = start_mpi_methods({options.size, methods, options.ranks_per_node, every_path});
    if (!ranked->is_root()) speak_as_follower(ranked->rank());
    std::erase_if(methods, [&](Method m) { return over_mpi(m) && !ranked->can_run(m); });
  }
  VerifiedSoFar verified_so_far;
  TrialPlan plan;
  // Started now, before the input and the reference exist: the server stays small, and so do the forks
  // it makes (Python's "forkserver"). Only where a process pool runs.
  if (options.fork_server && uses(Machinery::processes)) {
    plan.fork_server = ProcessPool::start_fork_server();
  }
  plan.size = options.size;
  plan.workers = workers;
  plan.chunksize = options.chunksize;
  plan.caller_computes = options.caller_computes;
  plan.seed = options.seed;
  plan.repeat = options.repeat;
  plan.methods = methods;
  plan.trace = trace;
  plan.ranked = ranked.get();
  plan.on_trial = [&](Method method, const Trial& trial) { verified_so_far.add(method, trial); };
  TrialResults results;
  try {
    results = run_trials(std::move(plan));
  } catch (const Interrupted&) {
    // Under mpirun, SIGTERM is how a job whose rank died is stopped: say what was already known good.
    if (mpi && ranked->is_root()) std::cerr << "mpdemo: before the stop, rank 0 had " << verified_so_far.said() << '\n';
    throw;
  }
  if (ranked && !ranked->is_root()) return 0;  // the root reports for the job
  out << (options.format == Format::json ? report::run_json(results) : report::run_table(results));
  options.trace.finish(out,
                       fmt::format("mpdemo run --size {} --mode {}: who ran what, when", options.size, options.mode));
  return results.verified() ? 0 : 1;
}

}  // namespace

Command add_run_command(CLI::App& root) {
  CLI::App* app = root.add_subcommand("run",
                                      "One configurable run: time each method phase by phase (start workers, "
                                      "move data in, compute, collect, stop) and verify its result");
  auto options = std::make_shared<RunOptions>();
  add_size_option(*app, options->size, "elements to square (default 10,000,000; 1e7 and 10^7 work too)");
  add_workers_option(*app, options->workers);
  add_chunksize_option(*app, options->chunksize);
  app->add_flag("--caller-computes", options->caller_computes,
                "every pool's caller computes a share of each map beside its workers, as OpenMP's primary thread "
                "does (default: it waits, as Python's); the default team is then one worker fewer");
  add_start_method_option(*app, options->fork_server);
  std::vector<std::string> mode_names;
  for (const auto& [name, methods] : modes()) mode_names.push_back(name);
  app->add_option("--mode,-m", options->mode,
                  "seq: one loop; proc / thread: a pool created inside the timed call (the lesson), proc with data "
                  "made in shared memory, proc-copy from and into ordinary vectors; warm-proc / warm-thread: a "
                  "pool started beforehand, data in place; all (default). With --backend mpi: mpi-scatter, "
                  "mpi-window, mpi-hybrid, mpi (the three)")
      ->check(CLI::IsMember(mode_names));
  app->add_option("--backend,-b", options->backend,
                  "local (default): this process, its forked workers and threads; mpi: also the MPI paths "
                  "(mpi-scatter, mpi-window, mpi-hybrid) over the ranks of `mpirun -np K mpdemo run --backend mpi`, "
                  "where --mode all compares seq, warm-proc, warm-thread and the three")
      ->check(CLI::IsMember({"local", "mpi"}));
  app->add_option("--ranks-per-node", options->ranks_per_node,
                  "--backend mpi: treat every K consecutive ranks as one node, to rehearse a multi-host run on one "
                  "machine (with mpirun --mca btl self,tcp); 0 (default): the hosts' real nodes")
      ->check(CLI::Range(0, 1 << 20));
  add_seed_option(*app, options->seed, "random seed, for reproducible data (default 1)");
  add_repeat_option(*app, options->repeat, 1000);
  add_format_option(*app, options->format, false);
  options->trace.add_options(*app);
  return {app, [options](std::ostream& out) { return run(out, *options); }};
}

}  // namespace mpdemo::cli
