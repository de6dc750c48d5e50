#include "mpdemo/sys/timing.hpp"

#include <algorithm>
#include <array>

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

}  // namespace mpdemo
