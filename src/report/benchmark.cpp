#include "mpdemo/report/benchmark.hpp"

#include "mpdemo/report/format.hpp"
#include "mpdemo/report/phases.hpp"

#include <fmt/format.h>
#include <algorithm>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace mpdemo::report {

namespace {

/// `finer`: one digit more, for a figure judged against a target, whose printed value must not read
/// as meeting a target it misses (0.965x is no 0.97x, though two decimals would print it so).
std::string format_value(double value, std::string_view unit, bool finer = false) {
  const int more = finer ? 1 : 0;
  if (unit == "x") return fmt::format("{:.{}f}x", value, 2 + more);
  if (unit == "us") return fmt::format("{:.{}f} us", value, 1 + more);
  if (unit == "MiB") return fmt::format("{:.{}f} MiB", value, more);
  return fmt::format("{:.{}g} {}", value, 4 + more, unit);
}

std::string kernel_note(const BenchmarkReport& report) {
  return fmt::format("kernel: {} {} ({}); {}", report.compiler, report.cxx_flags, report.build_type, report.kernel);
}

nlohmann::json summary_json(const Summary& s) { return {{"median", s.median}, {"min", s.min}, {"max", s.max}}; }

/// One line per figure: its median, spread, target and whether it is met.
std::string figures_table(const std::vector<BenchmarkFigure>& figures) {
  std::string out =
      fmt::format("{:<62} {:>10}  {:<24} {:<26} {}\n", "figure", "median", "[min .. max]", "target", "met");
  for (const BenchmarkFigure& f : figures) {
    const std::string range =
        fmt::format("[{} .. {}]", format_value(f.value.min, f.unit), format_value(f.value.max, f.unit));
    out += fmt::format("{:<62} {:>10}  {:<24} {:<26} {}\n", f.label,
                       format_value(f.value.median, f.unit, f.met.has_value()), range,
                       f.target.empty() ? "-" : f.target, f.met ? (*f.met ? "yes" : "NO") : "-");
  }
  return out;
}

nlohmann::json figures_json(const std::vector<BenchmarkFigure>& figures) {
  nlohmann::json rows = nlohmann::json::array();
  for (const BenchmarkFigure& f : figures) {
    nlohmann::json row = summary_json(f.value);
    row["key"] = f.key;
    row["label"] = f.label;
    row["unit"] = f.unit;
    row["target"] = f.target;
    row["met"] = f.met ? nlohmann::json(*f.met) : nlohmann::json(nullptr);
    rows.push_back(row);
  }
  return rows;
}

const BenchmarkTiming& timing_named(const std::vector<BenchmarkTiming>& timings, std::string_view key) {
  for (const BenchmarkTiming& t : timings) {
    if (t.key == key) return t;
  }
  throw std::logic_error(fmt::format("no timing named {}", key));
}

}  // namespace

const BenchmarkTiming& BenchmarkReport::timing(std::string_view key) const { return timing_named(timings, key); }

const BenchmarkTiming& AnchorPoint::timing(std::string_view key) const { return timing_named(timings, key); }

namespace {

// Round by round, baseline's value over contender's, for the rounds both have.
template <class Rounds, class Value>
Summary round_by_round(const Rounds& baseline, const Rounds& contender, Value value) {
  std::vector<double> ratios;
  for (std::size_t r = 0; r < std::min(baseline.size(), contender.size()); ++r) {
    ratios.push_back(ratio(value(baseline[r]), value(contender[r])));
  }
  return Summary::of(ratios);
}

}  // namespace

Summary speedup(const BenchmarkTiming& baseline, const BenchmarkTiming& contender) {
  return round_by_round(baseline.seconds, contender.seconds, [](double seconds) { return seconds; });
}

Summary speedup(const BenchmarkTiming& baseline, const BenchmarkTiming& contender, double PhaseTimes::*phase) {
  return round_by_round(baseline.phases, contender.phases, [phase](const PhaseTimes& times) { return times.*phase; });
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
    // A floor measured with no output moved no data: no bandwidth to show.
    const std::string bandwidth = t.has_result ? fmt::format("{:.1f}", gbps) : "-";
    const char* verified = !t.has_result ? "-" : t.verified ? "yes" : "NO";
    out += fmt::format("{:<18} {:>10.5f} {:>10.5f} {:>10.5f} {:>10.5f} {:>7} {:>9.0f}  {:<8} {}\n", t.key, s.median,
                       s.min, s.max, t.seconds.empty() ? 0.0 : t.seconds.front(), bandwidth,
                       Summary::of(t.minor_faults).median, verified, t.label);
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

  out += figures_table(report.figures);
  for (const std::string& note : report.notes) out += fmt::format("\nnote: {}", note);
  return out + "\n";
}

std::optional<std::size_t> crossover(const AnchorsReport& report, std::string_view mode) {
  const auto index_of = [&](std::string_view key) -> std::optional<std::size_t> {
    for (std::size_t m = 0; m < report.modes.size(); ++m) {
      if (report.modes[m].key == key) return m;
    }
    return std::nullopt;
  };
  const std::optional<std::size_t> contender = index_of(mode);
  if (!contender) throw std::logic_error(fmt::format("no anchor mode named {}", mode));
  const std::optional<std::size_t> baseline = index_of(report.modes[*contender].baseline);
  if (!baseline) return std::nullopt;
  std::optional<std::size_t> from;
  for (const AnchorPoint& point : report.points) {
    const bool ahead = speedup(point.timings.at(*baseline), point.timings.at(*contender)).median > 1.0;
    if (!ahead) {
      from.reset();
    } else if (!from) {
      from = point.size;
    }
  }
  return from;
}

std::string anchors_table(const AnchorsReport& report) {
  const BenchmarkReport& setup = report.setup;
  std::string out = fmt::format("{}\n", setup.title);
  out += fmt::format("{} workers on CPUs {}; modes interleaved in each round, median over the rounds\n", setup.workers,
                     setup.cpus);
  out += kernel_note(setup) + "\n\n";

  const auto header = [&](std::string_view title) {
    std::string line = fmt::format("{:<14}", title);
    for (const AnchorPoint& point : report.points) line += fmt::format(" {:>12}", count_as_power(point.size));
    return line + "\n";
  };
  out += header("time per map");
  for (std::size_t m = 0; m < report.modes.size(); ++m) {
    std::string line = fmt::format("{:<14}", report.modes[m].key);
    for (const AnchorPoint& point : report.points) {
      const BenchmarkTiming& t = point.timings.at(m);
      line += fmt::format(" {:>12}", format_duration(Summary::of(t.seconds).median) + (t.verified ? "" : "!"));
    }
    out += line + "\n";
  }
  out += fmt::format("rounds        ");
  for (const AnchorPoint& point : report.points) {
    out += fmt::format(" {:>12}", point.timings.empty() ? 0 : point.timings.front().seconds.size());
  }
  out += "\n\n" + header("speedup");
  for (std::size_t m = 0; m < report.modes.size(); ++m) {
    const AnchorMode& mode = report.modes[m];
    const auto baseline = std::find_if(report.modes.begin(), report.modes.end(),
                                       [&](const AnchorMode& other) { return other.key == mode.baseline; });
    if (baseline == report.modes.end() || mode.baseline == mode.key) continue;
    const auto b = static_cast<std::size_t>(baseline - report.modes.begin());
    std::string line = fmt::format("{:<14}", mode.key);
    for (const AnchorPoint& point : report.points) {
      line += fmt::format(" {:>12}", fmt::format("{:.2f}x", speedup(point.timings.at(b), point.timings.at(m)).median));
    }
    out += line + fmt::format("   (vs {})\n", mode.baseline);
  }
  out += "\ncrossover (the smallest size from which it stays ahead of its loop):\n";
  for (const AnchorMode& mode : report.modes) {
    if (mode.baseline.empty() || mode.baseline == mode.key) continue;
    const std::optional<std::size_t> from = crossover(report, mode.key);
    out += fmt::format(
        "  {:<14} {}\n", mode.key,
        from ? count_as_power(*from) : fmt::format("not ahead at {}", count_as_power(report.points.back().size)));
  }
  out += "\nmodes:\n";
  for (const AnchorMode& mode : report.modes) out += fmt::format("  {:<14} {}\n", mode.key, mode.label);
  bool all_verified = true;
  for (const AnchorPoint& point : report.points) {
    for (const BenchmarkTiming& t : point.timings) all_verified = all_verified && t.verified;
  }
  out +=
      fmt::format("\nverified: {}\n", all_verified ? "every mode's result equals the loop's, bit for bit, at every size"
                                                   : "NO: the times marked ! gave a wrong result");
  if (!report.figures.empty()) out += fmt::format("\n{}\n", figures_table(report.figures));
  for (const std::string& note : report.notes) out += fmt::format("note: {}\n", note);
  return out;
}

std::string anchors_json(const AnchorsReport& report) {
  const BenchmarkReport& setup = report.setup;
  nlohmann::json modes = nlohmann::json::array();
  nlohmann::json crossovers = nlohmann::json::object();
  for (const AnchorMode& mode : report.modes) {
    modes.push_back({{"key", mode.key}, {"label", mode.label}, {"baseline", mode.baseline}});
    if (mode.baseline.empty() || mode.baseline == mode.key) continue;
    const std::optional<std::size_t> from = crossover(report, mode.key);
    crossovers[mode.key] = from ? nlohmann::json(*from) : nlohmann::json(nullptr);
  }
  nlohmann::json points = nlohmann::json::array();
  for (const AnchorPoint& point : report.points) {
    nlohmann::json timings = nlohmann::json::array();
    for (const BenchmarkTiming& t : point.timings) {
      nlohmann::json row = summary_json(Summary::of(t.seconds));
      row["key"] = t.key;
      row["seconds"] = t.seconds;
      // Only modes timed in batches have a first call apart from the batch's median.
      if (!t.first_seconds.empty()) row["first_of_batch_seconds"] = t.first_seconds;
      row["verified"] = t.verified;
      row["minor_faults"] = t.minor_faults;
      timings.push_back(row);
    }
    points.push_back({{"size", point.size}, {"timings", timings}});
  }
  const nlohmann::json document{{"benchmark", setup.title},
                                {"workers", setup.workers},
                                {"cpus", setup.cpus},
                                {"compiler", setup.compiler},
                                {"cxx_flags", setup.cxx_flags},
                                {"build_type", setup.build_type},
                                {"kernel", setup.kernel},
                                {"modes", modes},
                                {"points", points},
                                {"crossovers", crossovers},
                                {"figures", figures_json(report.figures)},
                                {"notes", report.notes}};
  return document.dump(2) + "\n";
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
    row["verified"] = t.has_result ? nlohmann::json(t.verified) : nlohmann::json(nullptr);
    row["minor_faults"] = t.minor_faults;
    if (!t.phases.empty()) row["phases_median"] = phases_json(median_phases(t.phases), /*with_total=*/false);
    timings.push_back(row);
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
                                {"figures", figures_json(report.figures)},
                                {"notes", report.notes}};
  return document.dump(2) + "\n";
}

}  // namespace mpdemo::report
