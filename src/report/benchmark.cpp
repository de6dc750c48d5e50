#include "mpdemo/report/benchmark.hpp"

#include "mpdemo/report/format.hpp"
#include "mpdemo/report/phases.hpp"

#include <fmt/format.h>
#include <algorithm>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace mpdemo::report {

namespace {

std::string format_value(double value, std::string_view unit) {
  if (unit == "x") return fmt::format("{:.2f}x", value);
  if (unit == "us") return fmt::format("{:.1f} us", value);
  if (unit == "MiB") return fmt::format("{:.0f} MiB", value);
  return fmt::format("{:.4g} {}", value, unit);
}

std::string kernel_note(const BenchmarkReport& report) {
  return fmt::format("kernel: {} {} ({}); {}", report.compiler, report.cxx_flags, report.build_type, report.kernel);
}

nlohmann::json summary_json(const Summary& s) { return {{"median", s.median}, {"min", s.min}, {"max", s.max}}; }

}  // namespace

const BenchmarkTiming& BenchmarkReport::timing(std::string_view key) const {
  for (const BenchmarkTiming& t : timings) {
    if (t.key == key) return t;
  }
  throw std::logic_error(fmt::format("no timing named {}", key));
}

Summary speedup(const BenchmarkTiming& baseline, const BenchmarkTiming& contender) {
  std::vector<double> ratios;
  for (std::size_t r = 0; r < std::min(baseline.seconds.size(), contender.seconds.size()); ++r) {
    ratios.push_back(ratio(baseline.seconds[r], contender.seconds[r]));
  }
  return Summary::of(ratios);
}

Summary scaled(Summary s, double factor) { return {s.median * factor, s.min * factor, s.max * factor}; }

PhaseTimes median_phases(const std::vector<PhaseTimes>& samples) {
  auto median_of = [&](double PhaseTimes::*phase) {
    std::vector<double> values;
    for (const PhaseTimes& p : samples) values.push_back(p.*phase);
    return Summary::of(values).median;
  };
  return {median_of(&PhaseTimes::start_workers), median_of(&PhaseTimes::move_in), median_of(&PhaseTimes::compute),
          median_of(&PhaseTimes::collect), median_of(&PhaseTimes::stop_workers)};
}

std::string benchmark_table(const BenchmarkReport& report, bool lesson_boxes) {
  std::string out = fmt::format("{}\n", report.title);
  const double megabytes = static_cast<double>(report.size * sizeof(double)) / 1e6;
  out += fmt::format(
      "N = {} doubles ({:.1f} MB in, {:.1f} MB out), {} workers on CPUs {}, chunksize {}, "
      "{} rounds (modes interleaved in each round)\n",
      with_commas(report.size), megabytes, megabytes, report.workers, report.cpus, with_commas(report.chunksize),
      report.repeat);
  out += kernel_note(report) + "\n\n";

  if (lesson_boxes) {
    for (const BenchmarkTiming& t : report.timings) {
      if (t.function.empty() || t.seconds.empty()) continue;
      const Summary s = Summary::of(t.seconds);
      out += benchmark_box(t.function, s.median);
      out += fmt::format("(median of {} runs; min {:.5f}s, max {:.5f}s, first {:.5f}s; {})\n\n", t.seconds.size(),
                         s.min, s.max, t.seconds.front(), t.verified ? "same result as the loop" : "RESULT DIFFERS");
    }
  }

  out += fmt::format("{:<18} {:>10} {:>10} {:>10} {:>10} {:>7} {:>9}  {:<8} {}\n", "mode", "median s", "min s", "max s",
                     "first s", "GB/s", "faults", "verified", "what");
  for (const BenchmarkTiming& t : report.timings) {
    const Summary s = Summary::of(t.seconds);
    const double gbps = ratio(static_cast<double>(report.size * report.bytes_per_element), s.median) / 1e9;
    out += fmt::format("{:<18} {:>10.5f} {:>10.5f} {:>10.5f} {:>10.5f} {:>7.1f} {:>9.0f}  {:<8} {}\n", t.key, s.median,
                       s.min, s.max, t.seconds.empty() ? 0.0 : t.seconds.front(), gbps,
                       Summary::of(t.minor_faults).median, t.verified ? "yes" : "NO", t.label);
  }
  out += fmt::format(
      "(GB/s: {} bytes of traffic per element over the median time; faults: median minor page faults per run, "
      "this process and its workers)\n\n",
      report.bytes_per_element);

  bool header = false;
  for (const BenchmarkTiming& t : report.timings) {
    if (t.phases.empty()) continue;
    if (!header) {
      out += fmt::format("{:<18}{}\n", "phases, median s", phase_headings());
      header = true;
    }
    out += fmt::format("{:<18}{}\n", t.key, phase_seconds_cells(median_phases(t.phases)));
  }
  if (header) out += "\n";

  out += fmt::format("{:<62} {:>10}  {:<24} {:<26} {}\n", "figure", "median", "[min .. max]", "target", "met");
  for (const BenchmarkFigure& f : report.figures) {
    const std::string range =
        fmt::format("[{} .. {}]", format_value(f.value.min, f.unit), format_value(f.value.max, f.unit));
    out += fmt::format("{:<62} {:>10}  {:<24} {:<26} {}\n", f.label, format_value(f.value.median, f.unit), range,
                       f.target.empty() ? "-" : f.target, f.met ? (*f.met ? "yes" : "NO") : "-");
  }
  for (const std::string& note : report.notes) out += fmt::format("\nnote: {}", note);
  return out + "\n";
}

std::string benchmark_json(const BenchmarkReport& report) {
  nlohmann::json timings = nlohmann::json::array();
  for (const BenchmarkTiming& t : report.timings) {
    nlohmann::json row = summary_json(Summary::of(t.seconds));
    row["key"] = t.key;
    row["label"] = t.label;
    if (!t.function.empty()) row["function"] = t.function;
    row["seconds"] = t.seconds;
    row["first"] = t.seconds.empty() ? 0.0 : t.seconds.front();
    row["verified"] = t.verified;
    row["minor_faults"] = t.minor_faults;
    if (!t.phases.empty()) row["phases_median"] = phases_json(median_phases(t.phases), /*with_total=*/false);
    timings.push_back(row);
  }
  nlohmann::json figures = nlohmann::json::array();
  for (const BenchmarkFigure& f : report.figures) {
    nlohmann::json row = summary_json(f.value);
    row["key"] = f.key;
    row["label"] = f.label;
    row["unit"] = f.unit;
    row["target"] = f.target;
    row["met"] = f.met ? nlohmann::json(*f.met) : nlohmann::json(nullptr);
    figures.push_back(row);
  }
  const nlohmann::json document{{"benchmark", report.title},
                                {"size", report.size},
                                {"workers", report.workers},
                                {"chunksize", report.chunksize},
                                {"repeat", report.repeat},
                                {"cpus", report.cpus},
                                {"compiler", report.compiler},
                                {"cxx_flags", report.cxx_flags},
                                {"build_type", report.build_type},
                                {"kernel", report.kernel},
                                {"timings", timings},
                                {"figures", figures},
                                {"notes", report.notes}};
  return document.dump(2) + "\n";
}

}  // namespace mpdemo::report
