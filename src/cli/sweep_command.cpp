// GCC 12 reports a "potential null pointer dereference" inside std::string, inlined from CLI11's
// CLI::detail::split, under ThreadSanitizer at -O2: a false positive in a header this file includes,
// silenced for this file only (as options.cpp does for std::function's copy).
#pragma GCC diagnostic ignored "-Wnull-dereference"

#include "sweep_command.hpp"

#include "mpdemo/lab/sweep.hpp"
#include "mpdemo/pool/process_pool.hpp"
#include "mpdemo/report/format.hpp"
#include "mpdemo/report/sweep.hpp"
#include "mpdemo/sys/topology.hpp"
#include "options.hpp"
#include "trace_options.hpp"

#include <fmt/format.h>
#include <unistd.h>
#include <algorithm>
#include <iostream>
#include <iterator>
#include <memory>

namespace mpdemo::cli {

using report::printable;

namespace {

struct SweepCommandOptions {
  SweepOptions sweep;
  std::vector<std::string> data{"all"};
  Format format = Format::table;
  std::string plot;
  TraceOutputs trace;
  bool fork_server = false;  ///< --start-method forkserver
};

// Comma-separated (and/or space-separated) sizes. An empty entry ("1,,2", "10,") is a typo, and a
// size given twice would be measured twice and break the cost model: both are refused.
std::vector<std::size_t> parse_sizes(const std::vector<std::string>& texts) {
  std::vector<std::size_t> sizes;
  for (const std::string& text : texts) {
    std::size_t start = 0;
    for (;;) {
      const std::size_t comma = std::min(text.find(',', start), text.size());
      const std::string entry = text.substr(start, comma - start);
      if (entry.empty()) {
        throw CLI::ValidationError("--sizes", fmt::format("'{}' has an empty entry; give sizes as N,N,... (e.g. "
                                                          "1e3,1e5,1e7)",
                                                          printable(text)));
      }
      const std::size_t n = parse_count(entry, "--sizes", 1, kMaxElements);
      if (std::find(sizes.begin(), sizes.end(), n) != sizes.end()) {
        throw CLI::ValidationError("--sizes", fmt::format("{} is given twice; give each size once", n));
      }
      sizes.push_back(n);
      if (comma == text.size()) break;
      start = comma + 1;
    }
  }
  return sizes;
}

std::vector<DataRoute> parse_routes(const std::vector<std::string>& names) {
  std::vector<DataRoute> routes;
  for (const std::string& name : names) {
    if (name == "all") return {std::begin(kAllRoutes), std::end(kAllRoutes)};
    for (const DataRoute route : kAllRoutes) {
      if (route_name(route) == name) routes.push_back(route);
    }
  }
  return routes;
}

int run(std::ostream& out, SweepCommandOptions& options) {
  options.sweep.routes = parse_routes(options.data);
  if (!options.plot.empty()) check_plot_path(options.plot);
  std::size_t largest = 0;
  for (std::size_t n : options.sweep.sizes) largest = std::max(largest, n);
  if (options.sweep.sizes.empty()) largest = 100'000'000;
  // Input, expected, output, a shared input and output, and a staged copy of each: seven arrays, four
  // of them in the pool's arena.
  const std::string what = fmt::format("a sweep up to {} elements", largest);
  require_fork_server_support(options.fork_server);
  require_process_resources(
      ProcessNeeds::for_pools(options.sweep.workers != 0 ? options.sweep.workers : system_topology().default_workers(),
                              true, true, options.fork_server),
      what);
  require_available_memory(7 * largest * sizeof(double), what);
  require_arena_capacity(4 * largest * sizeof(double), what);
  if (options.plot == "-" && options.format != Format::table) {
    throw UsageError(
        "--plot - draws on the terminal, into the same output as --format json/csv; write the plot "
        "to a .png or .svg file instead");
  }
  if (!options.plot.empty() && !report::gnuplot_available()) {
    std::cerr << fmt::format(
        "mpdemo: warning: gnuplot ('{}') is not installed: the table will print, but no plot "
        "(sudo apt-get install gnuplot-nox)\n",
        report::gnuplot_program());
  }

  options.sweep.trace = options.trace.start(options.format);
  // Before any array: the server stays small, and so do the forks it makes.
  if (options.fork_server) options.sweep.fork_server = ProcessPool::start_fork_server();
  const bool show_progress = ::isatty(STDERR_FILENO) == 1;
  const SweepResult result = run_sweep(options.sweep, [&](std::size_t i, std::size_t count, std::size_t n, double t) {
    if (show_progress) std::cerr << fmt::format("\rsweep: size {} ({}/{}), {:.1f} s so far   ", n, i + 1, count, t);
  });
  if (show_progress) std::cerr << "\r" << std::string(60, ' ') << "\r";

  switch (options.format) {
    case Format::json:
      out << report::sweep_json(result);
      break;
    case Format::csv:
      out << report::sweep_csv(result);
      break;
    case Format::table:
      out << report::sweep_table(result);
      break;
  }
  out.flush();
  if (result.points.empty()) {
    std::cerr << fmt::format("mpdemo: sweep: nothing was measured within --max-seconds {}; give it more time\n",
                             options.sweep.max_seconds);
    return 1;
  }
  if (!options.plot.empty()) {
    report::draw(report::sweep_chart(result), options.plot, out);
    if (options.plot != "-") std::cerr << fmt::format("sweep: plot written to {}\n", printable(options.plot, 200));
  }
  options.trace.finish(out, "mpdemo sweep: every pool's workers, size by size");
  return report::sweep_verified(result) ? 0 : 1;
}

}  // namespace

Command add_sweep_command(CLI::App& root) {
  CLI::App* app = root.add_subcommand(
      "sweep",
      "Run every method over a range of sizes; find the crossover size where a process pool, start-up "
      "included, starts beating the loop, measured and predicted; compare the data paths");
  auto options = std::make_shared<SweepCommandOptions>();
  app->add_option_function<std::vector<std::string>>(
         "--sizes", [options](const std::vector<std::string>& texts) { options->sweep.sizes = parse_sizes(texts); },
         "sizes to run, comma-separated (default: 10,100,...,1e8)")
      ->type_name("N,N,...");
  add_sweep_budget_option(*app, options->sweep.max_seconds);
  add_repeat_option(*app, options->sweep.repeat, 1000);
  add_count_option(*app, "--work", options->sweep.work, 0, 1'000'000,
                   "extra dependent arithmetic steps per element: compute-bound instead of memory-bound (default 0)")
      ->type_name("K");
  app->add_option("--data", options->data,
                  "how the process pool's data travels: pipe (serialized, as Python's Pool), copy (into and out "
                  "of shared memory), shared (created there), all (default)")
      ->delimiter(',')
      ->check(CLI::IsMember({"pipe", "copy", "shared", "all"}));
  add_workers_option(*app, options->sweep.workers);
  add_seed_option(*app, options->sweep.seed, "random seed (default 1)");
  add_start_method_option(*app, options->fork_server);
  add_format_option(*app, options->format, true);
  app->add_option("--plot", options->plot,
                  "draw speedup vs size with gnuplot into FILE.png or FILE.svg, or - for the terminal");
  options->trace.add_options(*app);
  return {app, [options](std::ostream& out) { return run(out, *options); }};
}

}  // namespace mpdemo::cli
