#include "costs_report.hpp"

#include <fmt/format.h>
#include <algorithm>
#include <nlohmann/json.hpp>

namespace mpdemo {

namespace {

// RFC 4180: a field holding a comma, a quote or a line break is quoted, its quotes doubled.
std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char c : text) {
    if (c == '"') quoted += '"';
    quoted += c;
  }
  return quoted + '"';
}

}  // namespace

std::string costs_table(std::span<const CostMeasurement> costs) {
  std::size_t name_width = 4;
  for (const CostMeasurement& cost : costs) name_width = std::max(name_width, cost.name.size());

  std::string text = fmt::format("{:<{}}  {:>9}  {:>21}  {}\n", "cost", name_width, "median", "[min, max]", "unit");
  for (const CostMeasurement& cost : costs) {
    if (!cost.measurable) {
      text += fmt::format("{:<{}}  {:>9}  {:>21}  {}\n", cost.name, name_width, "-", "not measurable", cost.unit);
      continue;
    }
    const std::string spread =
        fmt::format("[{}, {}]", format_duration(cost.summary.min), format_duration(cost.summary.max));
    text += fmt::format("{:<{}}  {:>9}  {:>21}  {}\n", cost.name, name_width, format_duration(cost.summary.median),
                        spread, cost.unit);
  }
  if (!costs.empty()) {
    text += fmt::format("\nMedians of {} samples. What each one teaches:\n", costs.front().repeats);
    for (const CostMeasurement& cost : costs) text += fmt::format("- {}\n", cost.lesson);
  }
  return text;
}

std::string costs_json(std::span<const CostMeasurement> costs) {
  nlohmann::ordered_json rows = nlohmann::ordered_json::array();
  for (const CostMeasurement& cost : costs) {
    nlohmann::ordered_json details = nlohmann::ordered_json::object();
    for (const CostDetail& detail : cost.details) details[detail.name] = detail.value;
    const auto seconds = [&cost](double value) {
      return cost.measurable ? nlohmann::ordered_json(value) : nlohmann::ordered_json();  // null
    };
    rows.push_back({{"name", cost.name},
                    {"unit", cost.unit},
                    {"measurable", cost.measurable},
                    {"median", seconds(cost.summary.median)},
                    {"min", seconds(cost.summary.min)},
                    {"max", seconds(cost.summary.max)},
                    {"repeats", cost.repeats},
                    {"lesson", cost.lesson},
                    {"details", std::move(details)}});
  }
  return rows.dump(2) + '\n';
}

std::string costs_csv(std::span<const CostMeasurement> costs) {
  std::string text = "name,unit,measurable,median,min,max,repeats,lesson,details\n";
  for (const CostMeasurement& cost : costs) {
    std::string details;
    for (const CostDetail& detail : cost.details) {
      details += fmt::format("{}{}={}", details.empty() ? "" : ";", detail.name, detail.value);
    }
    const auto seconds = [&cost](double value) { return cost.measurable ? fmt::format("{}", value) : std::string(); };
    text += fmt::format("{},{},{},{},{},{},{},{},{}\n", csv_field(cost.name), csv_field(cost.unit),
                        cost.measurable ? "true" : "false", seconds(cost.summary.median), seconds(cost.summary.min),
                        seconds(cost.summary.max), cost.repeats, csv_field(cost.lesson), csv_field(details));
  }
  return text;
}

}  // namespace mpdemo
