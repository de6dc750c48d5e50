// Timing: a stopwatch, the phases a parallel map is broken into, and summaries over repeats. (How
// durations are written for people is the report layer's: mpdemo/report/format.hpp.)
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <span>
#include <string_view>
#include <vector>

namespace mpdemo {

class Stopwatch {
 public:
  Stopwatch() noexcept : start_(clock::now()) {}
  /// Seconds since construction or the last lap().
  double seconds() const noexcept { return std::chrono::duration<double>(clock::now() - start_).count(); }
  /// Seconds since construction or the last lap(), and restart.
  double lap() noexcept {
    const auto now = clock::now();
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    start_ = now;
    return elapsed;
  }

 private:
  using clock = std::chrono::steady_clock;
  clock::time_point start_;
};

/// Where the time of one parallel run goes, in seconds.
struct PhaseTimes {
  double start_workers = 0;  ///< fork the processes / start the threads, until all are ready
  double move_in = 0;        ///< copy the input to where workers can read it (0 when already shared)
  double compute = 0;        ///< hand out chunks until the last one is done
  double collect = 0;        ///< put the results in the caller's hands (allocate, copy out of shared memory)
  double stop_workers = 0;   ///< stop and reap the workers, release what the run mapped
  double total() const noexcept { return start_workers + move_in + compute + collect + stop_workers; }
};

/// The phase names, in order, as the reports print them.
inline constexpr std::string_view kPhaseNames[] = {"start", "move_in", "compute", "collect", "stop"};
std::array<double, 5> phase_values(const PhaseTimes& phases) noexcept;

/// Median, minimum and maximum of repeated measurements.
struct Summary {
  double median = 0;
  double min = 0;
  double max = 0;
  /// Empty samples give all zeros.
  static Summary of(std::span<const double> samples);
};

}  // namespace mpdemo
