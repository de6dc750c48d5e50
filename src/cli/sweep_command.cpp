#include "sweep_command.hpp"

#include "mpdemo/lab/sweep.hpp"
#include "mpdemo/sys/topology.hpp"
#include "options.hpp"
#include "plot.hpp"
#include "verdict.hpp"

#include <fmt/format.h>
#include <unistd.h>
#include <algorithm>
#include <cmath>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

namespace mpdemo::cli {

namespace {

struct SweepCommandOptions {
  SweepOptions sweep;
  std::vector<std::string> data{"all"};
  Format format = Format::table;
  std::string plot;
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
    if (name == "all") return {DataRoute::pipe, DataRoute::copy, DataRoute::shared};
    if (name == "pipe") routes.push_back(DataRoute::pipe);
    if (name == "copy") routes.push_back(DataRoute::copy);
    if (name == "shared") routes.push_back(DataRoute::shared);
  }
  return routes;
}

std::string crossover_text(const std::optional<std::size_t>& measured) {
  return measured ? fmt::format("{}", *measured) : std::string("none measured");
}

std::string predicted_text(const std::optional<double>& predicted) {
  if (!predicted) return "never (no faster per element than the loop)";
  if (*predicted <= 0) return "from the first element";
  return fmt::format("~{:.3g}", *predicted);
}

// One row per size and method: the shape every renderer starts from.
struct Row {
  std::size_t size;
  std::string method;  // "seq", "threads", "threads+start", "proc", "proc+start"
  std::string data;    // "-" for in-process methods, else the route
  double seconds;
  double speedup;  // the loop's time / this one
};

std::vector<Row> rows_of(const SweepResult& result) {
  std::vector<Row> rows;
  for (const SweepPoint& p : result.points) {
    auto add = [&](std::string method, std::string data, double seconds) {
      rows.push_back({p.size, std::move(method), std::move(data), seconds, seconds > 0 ? p.sequential / seconds : 0});
    };
    add("seq", "-", p.sequential);
    add("threads", "-", p.threads_warm);
    add("threads+start", "-", p.threads_with_start);
    for (std::size_t r = 0; r < result.options.routes.size(); ++r) {
      const std::string route(route_name(result.options.routes[r]));
      add("proc", route, p.pool_warm[r]);
      add("proc+start", route, p.pool_with_start[r]);
    }
  }
  return rows;
}

// Every measured size verified, and at least one measured: nothing measured is nothing verified.
bool all_verified(const SweepResult& result) {
  return !result.points.empty() &&
         std::all_of(result.points.begin(), result.points.end(), [](const SweepPoint& p) { return p.verified; });
}

void render_csv(std::ostream& out, const SweepResult& result) {
  out << "size,method,data,seconds,speedup_vs_seq\n";
  for (const Row& row : rows_of(result)) {
    out << fmt::format("{},{},{},{:.9g},{:.6g}\n", row.size, row.method, row.data, row.seconds, row.speedup);
  }
}

void render_json(std::ostream& out, const SweepResult& result) {
  nlohmann::json json{{"workers", result.options.workers},
                      {"repeat", result.options.repeat},
                      {"work", result.options.work},
                      {"max_seconds", result.options.max_seconds},
                      {"unit", "seconds"},
                      {"skipped_sizes", result.skipped},
                      {"rows", nlohmann::json::array()},
                      {"crossovers", nlohmann::json::array()},
                      {"sequential_model",
                       {{"fixed_seconds", result.sequential_model.fixed_seconds},
                        {"per_element_seconds", result.sequential_model.per_element_seconds}}}};
  for (const Row& row : rows_of(result)) {
    json["rows"].push_back({{"size", row.size},
                            {"method", row.method},
                            {"data", row.data},
                            {"seconds", row.seconds},
                            {"speedup_vs_seq", row.speedup}});
  }
  for (const RouteCrossover& c : result.crossovers) {
    json["crossovers"].push_back({{"data", route_name(c.route)},
                                  {"measured", c.measured ? nlohmann::json(*c.measured) : nlohmann::json()},
                                  {"predicted", c.predicted ? nlohmann::json(*c.predicted) : nlohmann::json()},
                                  {"pool_fixed_seconds", c.pool_model.fixed_seconds},
                                  {"pool_per_element_seconds", c.pool_model.per_element_seconds}});
  }
  json["unfinished_size"] = result.unfinished ? nlohmann::json(*result.unfinished) : nlohmann::json();
  json["measured_sizes"] = result.points.size();
  json["verified"] = all_verified(result);
  out << json.dump(2) << '\n';
}

void render_table(std::ostream& out, const SweepResult& result) {
  const auto& routes = result.options.routes;
  out << fmt::format("mpdemo sweep: {} workers, median of {} runs per cell, work {} extra step(s) per element.\n",
                     result.options.workers, result.options.repeat, result.options.work);
  out << "Times per map; proc = a warm process pool, +start = pool forked and stopped inside the timed region "
         "(the lesson's way).\n";
  std::string header = fmt::format("{:>11} {:>10} {:>10} {:>14}", "size", "seq", "threads", "threads+start");
  for (DataRoute route : routes) {
    header += fmt::format(" {:>13} {:>17}", fmt::format("proc {}", route_name(route)),
                          fmt::format("proc+start {}", route_name(route)));
  }
  out << header << "  verified\n";
  for (const SweepPoint& p : result.points) {
    std::string line = fmt::format("{:>11} {:>10} {:>10} {:>14}", p.size, format_duration(p.sequential),
                                   format_duration(p.threads_warm), format_duration(p.threads_with_start));
    for (std::size_t r = 0; r < routes.size(); ++r) {
      line += fmt::format(" {:>13} {:>17}", format_duration(p.pool_warm[r]), format_duration(p.pool_with_start[r]));
    }
    out << line << (p.verified ? "  yes\n" : "  NO\n");
  }
  out << "\nSpeedup over the loop (above 1: faster than the loop):\n";
  out << header << '\n';
  for (const SweepPoint& p : result.points) {
    auto speedup = [&](double t) { return fmt::format("{:.3g}x", t > 0 ? p.sequential / t : 0.0); };
    std::string line = fmt::format("{:>11} {:>10} {:>10} {:>14}", p.size, "1.00x", speedup(p.threads_warm),
                                   speedup(p.threads_with_start));
    for (std::size_t r = 0; r < routes.size(); ++r) {
      line += fmt::format(" {:>13} {:>17}", speedup(p.pool_warm[r]), speedup(p.pool_with_start[r]));
    }
    out << line << '\n';
  }
  if (result.unfinished) {
    out << fmt::format(
        "--max-seconds {} ran out while size {} was being measured: it was stopped and its partial "
        "results discarded.\n",
        result.options.max_seconds, *result.unfinished);
  }
  if (!result.skipped.empty()) {
    out << fmt::format("Skipped to stay within --max-seconds {}: sizes {}.\n", result.options.max_seconds,
                       fmt::join(result.skipped, ", "));
  }
  out << fmt::format(
      "\nCrossover: the smallest size at which the process pool, start-up included, beats the loop.\n"
      "Model: loop = {} + {} per element.\n",
      format_duration(result.sequential_model.fixed_seconds),
      format_duration(result.sequential_model.per_element_seconds));
  for (const RouteCrossover& c : result.crossovers) {
    out << fmt::format("  data {:<7} measured: {:<14} predicted: {:<44} (pool = {} + {} per element)\n",
                       route_name(c.route), crossover_text(c.measured), predicted_text(c.predicted),
                       format_duration(c.pool_model.fixed_seconds), format_duration(c.pool_model.per_element_seconds));
  }
}

Chart chart_of(const SweepResult& result) {
  Chart chart;
  chart.title = fmt::format(
      "Speedup over the loop, {} workers{}", result.options.workers,
      result.options.work > 0 ? fmt::format(", {} extra steps per element", result.options.work) : std::string());
  chart.x_label = "elements";
  chart.y_label = "speedup (loop time / method time)";
  auto series = [&](std::string title, auto&& time_of) {
    Series s{std::move(title), {}, {}};
    for (const SweepPoint& p : result.points) {
      const double t = time_of(p);
      if (t <= 0) continue;
      s.x.push_back(static_cast<double>(p.size));
      s.y.push_back(p.sequential / t);
    }
    chart.series.push_back(std::move(s));
  };
  series("threads", [](const SweepPoint& p) { return p.threads_warm; });
  series("threads+start", [](const SweepPoint& p) { return p.threads_with_start; });
  for (std::size_t r = 0; r < result.options.routes.size(); ++r) {
    const std::string route(route_name(result.options.routes[r]));
    series("proc " + route, [r](const SweepPoint& p) { return p.pool_warm[r]; });
    series("proc+start " + route, [r](const SweepPoint& p) { return p.pool_with_start[r]; });
  }
  // Mark the crossover of the best route (the smallest measured one).
  for (const RouteCrossover& c : result.crossovers) {
    if (c.measured && (!chart.marker_x || static_cast<double>(*c.measured) < *chart.marker_x)) {
      chart.marker_x = static_cast<double>(*c.measured);
      chart.marker_label = fmt::format("crossover ({}): {}", route_name(c.route), *c.measured);
    }
  }
  return chart;
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
  require_process_resources(
      ProcessNeeds::for_pools(options.sweep.workers != 0 ? options.sweep.workers : system_topology().default_workers(),
                              true, true),
      what);
  require_available_memory(7 * largest * sizeof(double), what);
  require_arena_capacity(4 * largest * sizeof(double), what);
  if (options.plot == "-" && options.format != Format::table) {
    throw UsageError(
        "--plot - draws on the terminal, into the same output as --format json/csv; write the plot "
        "to a .png or .svg file instead");
  }
  if (!options.plot.empty() && !gnuplot_available()) {
    std::cerr << fmt::format(
        "mpdemo: warning: gnuplot ('{}') is not installed: the table will print, but no plot "
        "(sudo apt-get install gnuplot-nox)\n",
        gnuplot_program());
  }

  const bool show_progress = ::isatty(STDERR_FILENO) == 1;
  const SweepResult result = run_sweep(options.sweep, [&](std::size_t i, std::size_t count, std::size_t n, double t) {
    if (show_progress) std::cerr << fmt::format("\rsweep: size {} ({}/{}), {:.1f} s so far   ", n, i + 1, count, t);
  });
  if (show_progress) std::cerr << "\r" << std::string(60, ' ') << "\r";

  switch (options.format) {
    case Format::json:
      render_json(out, result);
      break;
    case Format::csv:
      render_csv(out, result);
      break;
    case Format::table:
      if (!result.points.empty()) render_table(out, result);  // else an empty table says nothing
      break;
  }
  out.flush();
  if (result.points.empty()) {
    std::cerr << fmt::format("mpdemo: sweep: nothing was measured within --max-seconds {}; give it more time\n",
                             options.sweep.max_seconds);
    return 1;
  }
  if (!options.plot.empty()) {
    draw(chart_of(result), options.plot, out);
    if (options.plot != "-") std::cerr << fmt::format("sweep: plot written to {}\n", printable(options.plot, 200));
  }
  return all_verified(result) ? 0 : 1;
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
  app->add_option_function<std::string>(
         "--max-seconds",
         [options](const std::string& text) {
           options->sweep.max_seconds = parse_seconds(text, "--max-seconds", 86400);
         },
         "time budget for the whole sweep: a size that would pass it is skipped, and one still running when it "
         "runs out is stopped (default 60)")
      ->type_name("S");
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
  add_format_option(*app, options->format, true);
  app->add_option("--plot", options->plot,
                  "draw speedup vs size with gnuplot into FILE.png or FILE.svg, or - for the terminal");
  return {app, [options](std::ostream& out) { return run(out, *options); }};
}

}  // namespace mpdemo::cli
