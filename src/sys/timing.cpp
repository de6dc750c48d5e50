#include "mpdemo/sys/timing.hpp"

#include <fmt/format.h>
#include <algorithm>
#include <array>
#include <cmath>

namespace mpdemo {

std::array<double, 5> phase_values(const PhaseTimes& phases) noexcept {
  return {phases.start_workers, phases.move_in, phases.compute, phases.collect, phases.stop_workers};
}

Summary Summary::of(std::span<const double> samples) {
  if (samples.empty()) return {};
  std::vector<double> sorted(samples.begin(), samples.end());
  std::sort(sorted.begin(), sorted.end());
  const std::size_t n = sorted.size();
  const double median = n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
  return {median, sorted.front(), sorted.back()};
}

std::string benchmark_box(std::string_view name, double seconds) {
  const std::string dashes(50, '-');
  const std::string title = fmt::format("{} {} {}", dashes, name, dashes);
  return fmt::format("{}\nfunc: {} executed in {:.5f}s.\n{}\n", title, name, seconds, std::string(title.size(), '-'));
}

std::string format_duration(double seconds) {
  // Round to three significant digits before choosing the unit, so 999.7 ns reads "1.00 us".
  if (seconds == 0) return "0";
  const double magnitude = std::fabs(seconds);
  const double step = magnitude > 0 ? std::pow(10.0, std::floor(std::log10(magnitude)) - 2) : 1.0;
  const double rounded = std::round(magnitude / step) * step;
  const auto three_digits = [seconds](double scale, const char* unit) {
    const double value = seconds * scale;
    if (std::fabs(value) >= 99.95) return fmt::format("{:.0f} {}", value, unit);
    if (std::fabs(value) >= 9.995) return fmt::format("{:.1f} {}", value, unit);
    return fmt::format("{:.2f} {}", value, unit);
  };
  if (rounded >= 1) return three_digits(1, "s");
  if (rounded >= 1e-3) return three_digits(1e3, "ms");
  if (rounded >= 1e-6) return three_digits(1e6, "us");
  return three_digits(1e9, "ns");
}

}  // namespace mpdemo
