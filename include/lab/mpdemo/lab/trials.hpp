// Trials: run the experiment's methods on one input, timed and verified against an independent
// answer, and summarise repeated runs. What `mpdemo run` and the lesson measure; they return numbers,
// and mpdemo/report renders them.
#pragma once

#include "mpdemo/lab/experiment.hpp"

#include <cstdint>
#include <functional>
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

/// The methods that run over MPI ranks (Method::mpi_*), as the trials drive them: every rank of the
/// job runs the same trials, and calls run() for the same methods in the same order; only the root
/// holds the input and checks the result. Made by start_mpi_methods (lab/mpi_methods.hpp).
class RankedMethods {
 public:
  virtual ~RankedMethods() = default;
  virtual std::size_t rank() const noexcept = 0;
  bool is_root() const noexcept { return rank() == 0; }
  virtual std::size_t ranks() const noexcept = 0;
  virtual std::size_t nodes() const noexcept = 0;
  /// Whether `method` was set up (the shared-window path is left out of a job over several nodes
  /// when asked to be).
  virtual bool can_run(Method method) const noexcept = 0;
  /// Seconds this rank spent joining the job and setting up the pools (MPI_Init and communicators).
  virtual double startup_seconds() const noexcept = 0;
  /// Collective: `method` over the root's `input`, the phases as the root saw them and, on the root,
  /// where the result is (valid until the next run of the same method). The ranks meet in a barrier
  /// just before the clock starts: one that waited long (while the root ran the loop, the fork pool
  /// or threads alone) slept, leaving it the cores, and on the project's VMs a vCPU that slept
  /// wakes milliseconds late; that wake-up must not land inside the timed map.
  struct Ran {
    PhaseTimes phases;
    std::span<const double> result;
  };
  virtual Ran run(Method method, std::span<const double> input) = 0;
};

/// The answer every method is checked against, computed by a plain loop independent of mpdemo's kernel.
std::vector<double> reference_squares(std::span<const double> input);

/// Runs the experiment's methods on one input. Warm methods set up their pool and shared arrays on
/// first use, untimed (that is what warm means), then pay only for the map.
class MethodRunner {
 public:
  /// With a `trace`, every pool records its timeline there, and every run is a span on the caller's track.
  /// With `ranked`, the Method::mpi_* methods run over its MPI ranks.
  /// Every pool is made as `choices` says (its caller computing a share, its workers forked by a server).
  MethodRunner(std::span<const double> input, std::size_t workers, std::size_t chunksize, Trace* trace = nullptr,
               RankedMethods* ranked = nullptr, PoolChoices choices = {});
  Trial run(Method method, std::span<const double> reference);
  /// How long the warm process pool took to start, once (0 before its first use).
  double warm_pool_startup_seconds() const noexcept;

 private:
  Trial check(const PhaseTimes& phases, std::span<const double> result, std::span<const double> reference) const;

  std::span<const double> input_;
  std::size_t workers_;
  std::size_t chunksize_;
  Trace* trace_;
  RankedMethods* ranked_;
  PoolChoices choices_;
  SharedArray<double> shared_input_;  ///< the input, made in shared memory before any timing
  std::optional<ProcessPool> warm_processes_;
  SharedArray<double> shared_output_;
  std::optional<ThreadPool> warm_threads_;
  std::vector<double> thread_output_;
};

/// What `mpdemo run` measures: these methods on `size` random numbers, `repeat` times each.
struct TrialPlan {
  std::size_t size = 10'000'000;
  std::size_t workers = 0;    ///< 0: one per physical core (one fewer with caller_computes)
  std::size_t chunksize = 0;  ///< 0: Python's default, for the team (the workers, and the caller if it computes)
  /// Every pool's caller computes a share of each map beside its workers, as OpenMP's primary thread
  /// does (PoolOptions::caller_computes); false: it waits, as Python's.
  bool caller_computes = false;
  /// Every process pool's workers are forked by this server (ProcessPoolOptions::fork_server,
  /// Python's "forkserver"), made before the input; null: by this process.
  std::shared_ptr<ForkServer> fork_server;
  std::uint64_t seed = 1;
  std::size_t repeat = 5;
  std::vector<Method> methods;
  Trace* trace = nullptr;  ///< every pool's timeline and every run as a span; null: none
  /// The Method::mpi_* methods' ranks (every rank runs the plan; the root alone makes the input and
  /// runs the other methods). Null: no MPI method may be in `methods`.
  RankedMethods* ranked = nullptr;
  /// Called on the root after every run, verified or not: what a caller reports of an interrupted
  /// plan (mpirun stops the survivors of a dead rank with SIGTERM).
  std::function<void(Method, const Trial&)> on_trial;
};

struct MethodResult {
  Method method;
  TrialSummary summary;
};

struct TrialResults {
  TrialPlan plan;  ///< as run (workers and chunksize filled in)
  std::vector<MethodResult> methods;
  double warm_pool_startup = 0;  ///< seconds, paid once before timing (0 when no warm pool ran)
  std::size_t ranks = 0;         ///< MPI ranks of the job (0 when the plan ran without MPI)
  std::size_t nodes = 0;         ///< the nodes they were on
  double mpi_startup = 0;        ///< the root's MPI_Init and pool set-up, seconds (after mpirun started it)
  bool verified() const noexcept;
};

/// Runs the plan: repeats outside, methods inside, so that a noisy moment of the machine spreads over
/// every method alike. Throws Interrupted within milliseconds of SIGINT/SIGTERM under an InterruptGuard.
/// With plan.ranked, every rank calls it; only the root's results mean anything (the others hold
/// no input, run only the MPI methods' share, and verify nothing).
TrialResults run_trials(TrialPlan plan);

}  // namespace mpdemo
