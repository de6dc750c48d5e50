#include "mpdemo/timing.hpp"

#include <algorithm>
#include <array>
#include <fmt/format.h>

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
  return fmt::format("{}\nfunc: {} executed in {:.5f}s.\n{}\n", title, name, seconds,
                     std::string(title.size(), '-'));
}

}  // namespace mpdemo
