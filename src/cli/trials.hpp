// Trials: run one method of the experiment, timed and verified, and summarise repeated runs.
#pragma once

#include "mpdemo/lab/experiment.hpp"

#include <optional>
#include <span>
#include <vector>

namespace mpdemo::cli {

struct Trial {
  PhaseTimes phases;
  bool verified = false;  ///< the result equalled the reference bit for bit
};

struct TrialSummary {
  Summary total;          ///< median, min, max of the totals
  PhaseTimes median_run;  ///< the phases of the run whose total is the (lower) median
  bool verified = false;  ///< every run verified
  std::size_t repeats = 0;
};
TrialSummary summarize(std::span<const Trial> trials);

/// The answer every method is checked against, computed by a plain loop independent of mpdemo's kernel.
std::vector<double> reference_squares(std::span<const double> input);

/// Runs the experiment's methods on one input. Warm methods set up their pool and shared arrays on
/// first use, untimed (that is what warm means), then pay only for the map.
class MethodRunner {
 public:
  MethodRunner(std::span<const double> input, std::size_t workers, std::size_t chunksize);
  Trial run(Method method, std::span<const double> reference);
  /// How long the warm process pool took to start, once (0 before its first use).
  double warm_pool_startup_seconds() const noexcept;

 private:
  Trial check(const PhaseTimes& phases, std::span<const double> result, std::span<const double> reference) const;

  std::span<const double> input_;
  std::size_t workers_;
  std::size_t chunksize_;
  SharedArray<double> shared_input_;  ///< the input, made in shared memory before any timing
  std::optional<ProcessPool> warm_processes_;
  SharedArray<double> shared_output_;
  std::optional<ThreadPool> warm_threads_;
  std::vector<double> thread_output_;
};

}  // namespace mpdemo::cli
