#include "mpdemo/report/sweep.hpp"

#include "mpdemo/lab/experiment.hpp"
#include "mpdemo/report/format.hpp"

#include <fmt/format.h>
#include <algorithm>
#include <nlohmann/json.hpp>

namespace mpdemo::report {

namespace {

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
  std::string method;             // "seq", "threads", "threads+start", "proc", "proc+start"
  std::string data;               // "-" for in-process methods, else the route
  std::string_view start_method;  // "-" for in-process methods, else how the workers were forked
  double seconds;
  double speedup;  // the loop's time / this one
};

std::vector<Row> rows_of(const SweepResult& result) {
  std::vector<Row> rows;
  for (const SweepPoint& p : result.points) {
    auto add = [&](std::string method, std::string data, std::string_view start_method, double seconds) {
      rows.push_back({p.size, std::move(method), std::move(data), start_method, seconds,
                      seconds > 0 ? p.sequential / seconds : 0});
    };
    add("seq", "-", "-", p.sequential);
    add("threads", "-", "-", p.threads_warm);
    add("threads+start", "-", "-", p.threads_with_start);
    const std::string_view forked_by = start_method_name(result.options.fork_server != nullptr);
    for (std::size_t r = 0; r < result.options.routes.size(); ++r) {
      const std::string route(route_name(result.options.routes[r]));
      add("proc", route, forked_by, p.pool_warm[r]);
      add("proc+start", route, forked_by, p.pool_with_start[r]);
    }
  }
  return rows;
}

}  // namespace

bool sweep_verified(const SweepResult& result) {
  return !result.points.empty() &&
         std::all_of(result.points.begin(), result.points.end(), [](const SweepPoint& p) { return p.verified; });
}

std::string sweep_csv(const SweepResult& result) {
  // start_method last: a script that read the first five columns reads them still.
  std::string text = "size,method,data,seconds,speedup_vs_seq,start_method\n";
  for (const Row& row : rows_of(result)) {
    text += fmt::format("{},{},{},{:.9g},{:.6g},{}\n", row.size, row.method, row.data, row.seconds, row.speedup,
                        row.start_method);
  }
  return text;
}

std::string sweep_json(const SweepResult& result) {
  nlohmann::json json{{"workers", result.options.workers},
                      {"repeat", result.options.repeat},
                      {"work", result.options.work},
                      {"start_method", start_method_name(result.options.fork_server != nullptr)},
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
  json["verified"] = sweep_verified(result);
  return json.dump(2) + '\n';
}

std::string sweep_table(const SweepResult& result) {
  if (result.points.empty()) return {};
  std::string out;
  const auto& routes = result.options.routes;
  out += fmt::format("mpdemo sweep: {} workers{}, median of {} runs per cell, work {} extra step(s) per element.\n",
                     result.options.workers,
                     result.options.fork_server ? " forked by a fork server (--start-method forkserver)" : "",
                     result.options.repeat, result.options.work);
  out +=
      "Times per map; proc = a warm process pool, +start = pool forked and stopped inside the timed region "
      "(the lesson's way).\n";
  std::string header = fmt::format("{:>11} {:>10} {:>10} {:>14}", "size", "seq", "threads", "threads+start");
  for (DataRoute route : routes) {
    header += fmt::format(" {:>13} {:>17}", fmt::format("proc {}", route_name(route)),
                          fmt::format("proc+start {}", route_name(route)));
  }
  out += header + "  verified\n";
  for (const SweepPoint& p : result.points) {
    std::string line = fmt::format("{:>11} {:>10} {:>10} {:>14}", p.size, format_duration(p.sequential),
                                   format_duration(p.threads_warm), format_duration(p.threads_with_start));
    for (std::size_t r = 0; r < routes.size(); ++r) {
      line += fmt::format(" {:>13} {:>17}", format_duration(p.pool_warm[r]), format_duration(p.pool_with_start[r]));
    }
    out += line + (p.verified ? "  yes\n" : "  NO\n");
  }
  out += "\nSpeedup over the loop (above 1: faster than the loop):\n";
  out += header + '\n';
  for (const SweepPoint& p : result.points) {
    auto speedup = [&](double t) { return fmt::format("{:.3g}x", t > 0 ? p.sequential / t : 0.0); };
    std::string line = fmt::format("{:>11} {:>10} {:>10} {:>14}", p.size, "1.00x", speedup(p.threads_warm),
                                   speedup(p.threads_with_start));
    for (std::size_t r = 0; r < routes.size(); ++r) {
      line += fmt::format(" {:>13} {:>17}", speedup(p.pool_warm[r]), speedup(p.pool_with_start[r]));
    }
    out += line + '\n';
  }
  if (result.unfinished) {
    out += fmt::format(
        "--max-seconds {} ran out while size {} was being measured: it was stopped and its partial "
        "results discarded.\n",
        result.options.max_seconds, *result.unfinished);
  }
  if (!result.skipped.empty()) {
    out += fmt::format("Skipped to stay within --max-seconds {}: sizes {}.\n", result.options.max_seconds,
                       fmt::join(result.skipped, ", "));
  }
  out += fmt::format(
      "\nCrossover: the smallest size at which the process pool, start-up included, beats the loop.\n"
      "Model: loop = {} + {} per element.\n",
      format_duration(result.sequential_model.fixed_seconds),
      format_duration(result.sequential_model.per_element_seconds));
  for (const RouteCrossover& c : result.crossovers) {
    out += fmt::format("  data {:<7} measured: {:<14} predicted: {:<44} (pool = {} + {} per element)\n",
                       route_name(c.route), crossover_text(c.measured), predicted_text(c.predicted),
                       format_duration(c.pool_model.fixed_seconds), format_duration(c.pool_model.per_element_seconds));
  }
  return out;
}

Chart sweep_chart(const SweepResult& result) {
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

}  // namespace mpdemo::report
