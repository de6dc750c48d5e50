// Sweep: the squaring at many sizes, each way, to find where parallelism starts to pay: the
// crossover size, measured, and predicted from a two-number cost model of each method.
#pragma once

#include "mpdemo/pool/data_path.hpp"

#include <cstddef>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace mpdemo {

class ForkServer;
class Trace;

/// How the process pool's data travels in a sweep: along a DataPath, from arrays made in the
/// program's own memory or in the pool's shared memory.
struct DataRoute {
  DataPath path = DataPath::shared_memory;
  bool arrays_in_arena = false;  ///< made in shared memory, so nothing is copied (shared_memory only)
  friend constexpr bool operator==(const DataRoute&, const DataRoute&) = default;

  static constexpr DataRoute pipe() noexcept { return {DataPath::pipe, false}; }            ///< serialized
  static constexpr DataRoute copy() noexcept { return {DataPath::shared_memory, false}; }   ///< staged, copied
  static constexpr DataRoute shared() noexcept { return {DataPath::shared_memory, true}; }  ///< nothing moves
};
/// "pipe", "copy", "shared": the names --data takes.
std::string_view route_name(DataRoute route) noexcept;
/// Every route, in the order reports show them.
inline constexpr DataRoute kAllRoutes[] = {DataRoute::pipe(), DataRoute::copy(), DataRoute::shared()};

struct SweepOptions {
  std::vector<std::size_t> sizes;  ///< ascending; empty: powers of 10 from 10 to 10^8
  double max_seconds = 60;         ///< sizes whose predicted cost would pass this budget are skipped
  std::size_t repeat = 3;          ///< runs per method and size; the median is kept
  unsigned work = 0;               ///< extra dependent arithmetic steps per element (SquaredWithWork)
  std::vector<DataRoute> routes{std::begin(kAllRoutes), std::end(kAllRoutes)};
  std::size_t workers = 0;  ///< 0: one per physical core
  std::uint64_t seed = 1;
  Trace* trace = nullptr;  ///< every pool's timeline, and each size as a span; null: none
  /// Forks every process pool's workers, the warm pool's and the fresh ones' (ProcessPoolOptions::
  /// fork_server, --start-method forkserver); null: this process forks them (Python's "fork").
  std::shared_ptr<ForkServer> fork_server;
};

/// Median seconds of every method at one size.
struct SweepPoint {
  std::size_t size = 0;
  double sequential = 0;                ///< the loop, into a buffer that already exists
  double threads_warm = 0;              ///< threads started beforehand
  double threads_with_start = 0;        ///< threads started and stopped inside the timed region
  std::vector<double> pool_warm;        ///< per route (same order as SweepOptions::routes)
  std::vector<double> pool_with_start;  ///< per route: fork, map, stop, all timed (the lesson's way)
  bool verified = false;                ///< every method's output equalled the loop's, bit for bit
};

/// `seconds = fixed + per_element * n`: what a method costs before any work, and per element.
struct CostModel {
  double fixed_seconds = 0;
  double per_element_seconds = 0;
  double at(double n) const noexcept { return fixed_seconds + per_element_seconds * n; }
};

/// Fits the model to measured points: per-element cost from the slope between the two largest sizes,
/// fixed cost from the smallest (never negative). Needs at least two points of distinct sizes.
CostModel fit_cost_model(std::span<const std::size_t> sizes, std::span<const double> seconds);

/// The smallest measured size at which `method` took less time than `baseline`; nullopt if none.
std::optional<std::size_t> find_crossover(std::span<const std::size_t> sizes, std::span<const double> baseline,
                                          std::span<const double> method);

/// Where the models cross: the n above which `method` is faster than `baseline`. 0 if it is faster
/// from the start, nullopt if it never catches up (its per-element cost is no lower).
std::optional<double> predict_crossover(const CostModel& baseline, const CostModel& method);

struct RouteCrossover {
  DataRoute route;
  std::optional<std::size_t> measured;  ///< pool with start-up vs the loop
  std::optional<double> predicted;
  CostModel pool_model;
};

struct SweepResult {
  SweepOptions options;  ///< as run (sizes and workers filled in)
  std::vector<SweepPoint> points;
  std::vector<std::size_t> skipped;  ///< sizes left out to stay within max_seconds (the unfinished one too)
  /// The size being measured when max_seconds ran out: its partial results were discarded.
  std::optional<std::size_t> unfinished;
  CostModel sequential_model;
  std::vector<RouteCrossover> crossovers;  ///< one per route
};

/// Called before each size with (index, count, size, seconds elapsed so far).
using SweepProgress = std::function<void(std::size_t, std::size_t, std::size_t, double)>;

/// Runs the sweep. max_seconds bounds it all, the first size included: a ScopedDeadline stops the
/// size being measured when the budget runs out (so no other ScopedDeadline may be alive). Throws
/// Interrupted within milliseconds of SIGINT/SIGTERM under an InterruptGuard (see interrupt.hpp).
SweepResult run_sweep(SweepOptions options, const SweepProgress& progress = {});

/// Fills crossovers and models from the points (run_sweep calls it; exposed for tests).
void analyse_sweep(SweepResult& result);

}  // namespace mpdemo
