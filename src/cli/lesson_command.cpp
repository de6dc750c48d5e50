#include "lesson_command.hpp"

#include "mpdemo/sys/interrupt.hpp"
#include "mpdemo/sys/topology.hpp"
#include "options.hpp"
#include "phase_report.hpp"
#include "trials.hpp"
#include "verdict.hpp"

#include <fmt/format.h>
#include <memory>

namespace mpdemo::cli {

namespace {

constexpr std::size_t kRepeats = 3;  // each box shows the median of this many calls

struct LessonOptions {
  std::size_t large_size = 10'000'000;
  std::uint64_t seed = 1;
};

std::string with_commas(std::size_t n) {
  const std::string digits = std::to_string(n);
  std::string grouped;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) grouped += ',';
    grouped += digits[i];
  }
  return grouped;
}

void print_phases(std::ostream& out, std::span<const MethodTiming> methods) {
  out << fmt::format("  {:<28}{}   (where the time went)\n", "", phase_headings());
  for (const MethodTiming& m : methods) out << fmt::format("  {:<28}{}\n", m.name, phase_cells(m.phases));
  out << "  (A new result's pages are faulted in by whoever first writes them: the loop and threads pay that in\n"
         "  collect, zeroing the new vector; a process pool's workers pay it in compute, in parallel.)\n";
}

int run_lesson(std::ostream& out, const LessonOptions& options) {
  const Topology& topology = system_topology();
  const std::size_t workers = topology.default_workers();
  // At most: input, reference, shared input, two warm outputs and a copying pool's three arrays;
  // of them, four at once in the pool's arena.
  const std::string what = fmt::format("the lesson at {} numbers", with_commas(options.large_size));
  require_process_resources(ProcessNeeds::for_pools(workers, true, true), what);
  require_available_memory(8 * options.large_size * sizeof(double), what);
  require_arena_capacity(4 * options.large_size * sizeof(double), what);
  out << fmt::format(
      "mpdemo: the lesson. Square an array of random numbers (uniform in [0, 1)) with a plain loop, with a pool of\n"
      "processes and with threads, and time each.\n"
      "This machine: {} logical CPUs, {} physical cores, {} socket(s); this process may run on CPUs {}.\n"
      "Workers: {} (one per physical core, as psutil.cpu_count(logical=False)), pinned to CPUs {}.\n"
      "Each box shows the median of {} calls; a pool in the lesson's functions is created and stopped inside the "
      "call.\n\n",
      topology.logical_cpus, topology.physical_cores, topology.sockets, format_cpu_list(topology.allowed_cpus), workers,
      format_cpu_list(topology.worker_cpus), kRepeats);

  for (const std::size_t size : {std::size_t{10}, options.large_size}) {
    out << fmt::format("=== {} numbers ===\n", with_commas(size));
    const std::vector<double> input = uniform_random_array(size, options.seed);
    const std::vector<double> reference = reference_squares(input);
    MethodRunner runner(input, workers, 0);

    std::vector<Method> methods{Method::sequential, Method::fresh_processes, Method::fresh_processes_copy,
                                Method::fresh_threads};
    if (size == options.large_size) {
      methods.push_back(Method::warm_processes);
      methods.push_back(Method::warm_threads);
    }
    std::vector<MethodTiming> timings;
    bool all_verified = true;
    for (const Method method : methods) {
      std::vector<Trial> trials;
      for (std::size_t r = 0; r < kRepeats; ++r) {
        trials.push_back(runner.run(method, reference));
        throw_if_interrupted();
      }
      const TrialSummary summary = summarize(trials);
      all_verified = all_verified && summary.verified;
      if (method == Method::warm_processes) {
        out << fmt::format(
            "Now the same map on warm pools: workers started beforehand ({} for the processes, paid "
            "once), data already in shared memory, results written in place.\n",
            format_duration(runner.warm_pool_startup_seconds()));
      }
      out << benchmark_box(lesson_function_name(method), summary.median_run.total());
      timings.push_back(
          MethodTiming::of(method, std::string(lesson_function_name(method)), summary.median_run, workers));
    }
    print_phases(out, timings);
    out << (all_verified ? "All results match the sequential answer exactly.\n"
                         : "MISMATCH: a result differs from the sequential answer.\n");
    out << explain_fastest(timings) << explain_warm(timings) << '\n';
    if (!all_verified) return 1;
  }
  return 0;
}

}  // namespace

Command add_lesson_command(CLI::App& root) {
  auto options = std::make_shared<LessonOptions>();
  add_count_option(root, "--large-size", options->large_size, 11, kMaxElements,
                   "the lesson's large array (default 10,000,000)");
  add_seed_option(root, options->seed, "random seed of the lesson's arrays (default 1)");
  return {&root, [options](std::ostream& out) { return run_lesson(out, *options); }};
}

}  // namespace mpdemo::cli
