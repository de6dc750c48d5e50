#include "run_command.hpp"

#include "mpdemo/lab/trials.hpp"
#include "mpdemo/report/trials.hpp"
#include "mpdemo/sys/topology.hpp"
#include "options.hpp"
#include "trace_options.hpp"

#include <fmt/format.h>
#include <algorithm>
#include <map>
#include <memory>

namespace mpdemo::cli {

namespace {

struct RunOptions {
  std::size_t size = 10'000'000;
  std::size_t workers = 0;
  std::size_t chunksize = 0;
  std::string mode = "all";
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
  };
  return table;
}

// How many arrays of N doubles a run holds at its peak: the input, the reference answer and the
// input's shared copy always; each warm method's output for the whole run; and the largest number
// a single fresh call holds at once.
struct Footprint {
  std::size_t arrays;         ///< in memory
  std::size_t shared_arrays;  ///< of those, in the pool's arena
};

Footprint footprint(const std::vector<Method>& methods) {
  Footprint persistent{3, 1};
  Footprint transient{0, 0};
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
    }
  }
  return {persistent.arrays + transient.arrays, persistent.shared_arrays + transient.shared_arrays};
}

int run(std::ostream& out, RunOptions& options) {
  const std::size_t workers = options.workers != 0 ? options.workers : system_topology().default_workers();
  const std::vector<Method>& methods = modes().at(options.mode);
  const Footprint peak = footprint(methods);
  const std::string what = fmt::format("--size {} in mode {}", options.size, options.mode);
  const auto uses = [&](Machinery machinery) {
    return std::any_of(methods.begin(), methods.end(), [&](Method m) { return machinery_of(m) == machinery; });
  };
  require_process_resources(ProcessNeeds::for_pools(workers, uses(Machinery::processes), uses(Machinery::threads)),
                            what);
  require_available_memory(peak.arrays * options.size * sizeof(double), what);
  require_arena_capacity(peak.shared_arrays * options.size * sizeof(double), what);

  Trace* trace = options.trace.start(options.format);
  const TrialResults results =
      run_trials({options.size, workers, options.chunksize, options.seed, options.repeat, methods, trace});
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
  std::vector<std::string> mode_names;
  for (const auto& [name, methods] : modes()) mode_names.push_back(name);
  app->add_option("--mode,-m", options->mode,
                  "seq: one loop; proc / thread: a pool created inside the timed call (the lesson), proc with data "
                  "made in shared memory, proc-copy from and into ordinary vectors; warm-proc / warm-thread: a "
                  "pool started beforehand, data in place; all (default)")
      ->check(CLI::IsMember(mode_names));
  add_seed_option(*app, options->seed, "random seed, for reproducible data (default 1)");
  add_repeat_option(*app, options->repeat, 1000);
  add_format_option(*app, options->format, false);
  options->trace.add_options(*app);
  return {app, [options](std::ostream& out) { return run(out, *options); }};
}

}  // namespace mpdemo::cli
