#include "lesson_command.hpp"

#include "mpdemo/lab/trials.hpp"
#include "mpdemo/report/format.hpp"
#include "mpdemo/report/trials.hpp"
#include "mpdemo/sys/interrupt.hpp"
#include "mpdemo/sys/topology.hpp"
#include "options.hpp"
#include "trace_options.hpp"

#include <fmt/format.h>
#include <memory>

namespace mpdemo::cli {

namespace {

constexpr std::size_t kRepeats = 3;  // each box shows the median of this many calls

struct LessonOptions {
  std::size_t large_size = 10'000'000;
  std::uint64_t seed = 1;
  bool fork_server = false;  ///< --start-method forkserver
  TraceOutputs trace;
};

int run_lesson(std::ostream& out, LessonOptions& options) {
  const Topology& topology = system_topology();
  const std::size_t workers = topology.default_workers();
  // At most: input, reference, shared input, two warm outputs and a copying pool's three arrays;
  // of them, four at once in the pool's arena.
  const std::string what = fmt::format("the lesson at {} numbers", report::with_commas(options.large_size));
  require_fork_server_support(options.fork_server);
  require_process_resources(ProcessNeeds::for_pools(workers, true, true, options.fork_server), what);
  require_available_memory(8 * options.large_size * sizeof(double), what);
  require_arena_capacity(4 * options.large_size * sizeof(double), what);
  Trace* trace = options.trace.start(Format::table);
  // Before any array: the server stays small, and so do the forks it makes.
  const std::shared_ptr<ForkServer> server = options.fork_server ? ProcessPool::start_fork_server() : nullptr;
  out << report::lesson_introduction(topology, workers, kRepeats, server != nullptr);

  for (const std::size_t size : {std::size_t{10}, options.large_size}) {
    out << report::lesson_size_heading(size);
    const std::vector<double> input = uniform_random_array(size, options.seed);
    const std::vector<double> reference = reference_squares(input);
    MethodRunner runner(input, workers, 0, trace, nullptr, {.caller_computes = false, .fork_server = server});

    std::vector<Method> methods{Method::sequential, Method::fresh_processes, Method::fresh_processes_copy,
                                Method::fresh_threads};
    if (size == options.large_size) {
      methods.push_back(Method::warm_processes);
      methods.push_back(Method::warm_threads);
    }
    std::vector<report::MethodTiming> timings;
    bool all_verified = true;
    for (const Method method : methods) {
      std::vector<Trial> trials;
      for (std::size_t r = 0; r < kRepeats; ++r) {
        trials.push_back(runner.run(method, reference));
        throw_if_interrupted();
      }
      const TrialSummary summary = summarize(trials);
      all_verified = all_verified && summary.verified;
      if (method == Method::warm_processes) out << report::lesson_warm_note(runner.warm_pool_startup_seconds());
      out << report::benchmark_box(lesson_function_name(method), summary.median_run.total());
      timings.push_back(
          report::MethodTiming::of(method, std::string(lesson_function_name(method)), summary.median_run, workers));
    }
    out << report::lesson_summary(timings, all_verified);
    if (!all_verified) return 1;
  }
  options.trace.finish(out, "The lesson: every call's workers, when they ran and on which CPU");
  return 0;
}

}  // namespace

Command add_lesson_command(CLI::App& root) {
  auto options = std::make_shared<LessonOptions>();
  add_count_option(root, "--large-size", options->large_size, 11, kMaxElements,
                   "the lesson's large array (default 10,000,000)");
  add_seed_option(root, options->seed, "random seed of the lesson's arrays (default 1)");
  add_start_method_option(root, options->fork_server);
  options->trace.add_options(root);
  return {&root, [options](std::ostream& out) { return run_lesson(out, *options); }};
}

}  // namespace mpdemo::cli
