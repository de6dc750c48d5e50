// Trials: run the experiment's methods on one input, timed and verified against an independent
// answer, and summarise repeated runs. What `mpdemo run` and the lesson measure; they return numbers,
// and mpdemo/report renders them.
#pragma once

#include "mpdemo/lab/experiment.hpp"

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace mpdemo {

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
  /// With a `trace`, every pool records its timeline there, and every run is a span on the caller's track.
  MethodRunner(std::span<const double> input, std::size_t workers, std::size_t chunksize, Trace* trace = nullptr);
  Trial run(Method method, std::span<const double> reference);
  /// How long the warm process pool took to start, once (0 before its first use).
  double warm_pool_startup_seconds() const noexcept;

 private:
  Trial check(const PhaseTimes& phases, std::span<const double> result, std::span<const double> reference) const;

  std::span<const double> input_;
  std::size_t workers_;
  std::size_t chunksize_;
  Trace* trace_;
  SharedArray<double> shared_input_;  ///< the input, made in shared memory before any timing
  std::optional<ProcessPool> warm_processes_;
  SharedArray<double> shared_output_;
  std::optional<ThreadPool> warm_threads_;
  std::vector<double> thread_output_;
};

/// What `mpdemo run` measures: these methods on `size` random numbers, `repeat` times each.
struct TrialPlan {
  std::size_t size = 10'000'000;
  std::size_t workers = 0;    ///< 0: one per physical core
  std::size_t chunksize = 0;  ///< 0: Python's default
  std::uint64_t seed = 1;
  std::size_t repeat = 5;
  std::vector<Method> methods;
  Trace* trace = nullptr;  ///< every pool's timeline and every run as a span; null: none
};

struct MethodResult {
  Method method;
  TrialSummary summary;
};

struct TrialResults {
  TrialPlan plan;  ///< as run (workers and chunksize filled in)
  std::vector<MethodResult> methods;
  double warm_pool_startup = 0;  ///< seconds, paid once before timing (0 when no warm pool ran)
  bool verified() const noexcept;
};

/// Runs the plan: repeats outside, methods inside, so that a noisy moment of the machine spreads over
/// every method alike. Throws Interrupted within milliseconds of SIGINT/SIGTERM under an InterruptGuard.
TrialResults run_trials(TrialPlan plan);

}  // namespace mpdemo
