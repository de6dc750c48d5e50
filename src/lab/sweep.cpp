#include "mpdemo/lab/sweep.hpp"

#include "mpdemo/lab/experiment.hpp"
#include "mpdemo/lab/kernels.hpp"
#include "mpdemo/pool/process_pool.hpp"
#include "mpdemo/pool/thread_pool.hpp"
#include "mpdemo/sys/interrupt.hpp"
#include "mpdemo/sys/timing.hpp"
#include "mpdemo/sys/topology.hpp"
#include "mpdemo/sys/trace.hpp"

#include <algorithm>
#include <cmath>
#include <optional>

namespace mpdemo {

std::string_view route_name(DataRoute route) noexcept {
  if (route.path == DataPath::pipe) return "pipe";
  return route.arrays_in_arena ? "shared" : "copy";
}

CostModel fit_cost_model(std::span<const std::size_t> sizes, std::span<const double> seconds) {
  if (sizes.size() < 2 || sizes.size() != seconds.size()) return {};
  const std::size_t last = sizes.size() - 1;
  const double run = static_cast<double>(sizes[last]) - static_cast<double>(sizes[last - 1]);
  const double per_element = run > 0 ? std::max(0.0, (seconds[last] - seconds[last - 1]) / run) : 0.0;
  const double fixed = std::max(0.0, seconds[0] - per_element * static_cast<double>(sizes[0]));
  return {fixed, per_element};
}

std::optional<std::size_t> find_crossover(std::span<const std::size_t> sizes, std::span<const double> baseline,
                                          std::span<const double> method) {
  for (std::size_t i = 0; i < sizes.size() && i < baseline.size() && i < method.size(); ++i) {
    if (method[i] < baseline[i]) return sizes[i];
  }
  return std::nullopt;
}

std::optional<double> predict_crossover(const CostModel& baseline, const CostModel& method) {
  if (method.fixed_seconds <= baseline.fixed_seconds && method.per_element_seconds <= baseline.per_element_seconds) {
    return 0.0;
  }
  if (method.per_element_seconds >= baseline.per_element_seconds) return std::nullopt;
  return (method.fixed_seconds - baseline.fixed_seconds) / (baseline.per_element_seconds - method.per_element_seconds);
}

void analyse_sweep(SweepResult& result) {
  std::vector<std::size_t> sizes;
  std::vector<double> sequential;
  for (const SweepPoint& p : result.points) {
    sizes.push_back(p.size);
    sequential.push_back(p.sequential);
  }
  result.sequential_model = fit_cost_model(sizes, sequential);
  result.crossovers.clear();
  for (std::size_t r = 0; r < result.options.routes.size(); ++r) {
    std::vector<double> pool;
    for (const SweepPoint& p : result.points) pool.push_back(p.pool_with_start.at(r));
    RouteCrossover crossover{result.options.routes[r], find_crossover(sizes, sequential, pool), std::nullopt,
                             fit_cost_model(sizes, pool)};
    if (sizes.size() >= 2) crossover.predicted = predict_crossover(result.sequential_model, crossover.pool_model);
    result.crossovers.push_back(crossover);
  }
}

namespace {

template <class Run>
double median_seconds(std::size_t repeat, Run&& run) {
  std::vector<double> samples;
  for (std::size_t i = 0; i < repeat; ++i) {
    const Stopwatch clock;
    run();
    samples.push_back(clock.seconds());
    throw_if_interrupted();
  }
  return Summary::of(samples).median;
}

// Every process pool of the sweep: its workers, its timeline, and who forks them.
ProcessPoolOptions process_pool_options(const SweepOptions& options) {
  return pool_options<ProcessPoolOptions>(options.workers, options.trace, {.fork_server = options.fork_server});
}

// Everything one size needs, measured with one kernel type F (the plain square, or with extra work).
template <class F>
SweepPoint measure_size(const SweepOptions& options, F fn, std::size_t n, ProcessPool& warm_pool,
                        ThreadPool& warm_threads) {
  SweepPoint point;
  point.size = n;
  const std::vector<double> input = uniform_random_array(n, options.seed);
  std::vector<double> expected = interruptible_vector<double>(n);
  std::vector<double> output = interruptible_vector<double>(n);
  SharedArray<double> shared_input = warm_pool.make_shared_array<double>(n);
  SharedArray<double> shared_output = warm_pool.make_shared_array<double>(n);
  interruptible_copy(shared_input.data(), input.data(), n * sizeof(double));
  bool verified = true;
  auto check = [&](std::span<const double> result) { verified = verified && same_values(result, expected); };

  sequential_map_into(fn, input, expected);  // also warms the input's pages for everyone
  point.sequential = median_seconds(options.repeat, [&] { sequential_map_into(fn, input, output); });
  check(output);

  // Warm means started beforehand and already run on these arrays: each worker has mapped the pages
  // of the chunks it is given (see kWarmUpMaps).
  for (int i = 0; i < kWarmUpMaps; ++i) warm_threads.map_into(fn, input, output);
  point.threads_warm = median_seconds(options.repeat, [&] { warm_threads.map_into(fn, input, output); });
  check(output);
  point.threads_with_start = median_seconds(options.repeat, [&] {
    ThreadPool threads(pool_options<PoolOptions>(options.workers, options.trace));
    threads.map_into(fn, input, output);
  });
  check(output);

  for (const DataRoute route : options.routes) {
    // Each route maps its own kind of data: vectors through the pipes, vectors staged through shared
    // memory, or arrays that already live in it.
    auto map_with = [&](ProcessPool& pool) {
      if (route.arrays_in_arena) {
        pool.map_into(fn, shared_input, shared_output, 0, route.path);
      } else {
        pool.map_into(fn, input, output, 0, route.path);
      }
    };
    auto result = [&]() -> std::span<const double> {
      return route.arrays_in_arena ? shared_output.span() : std::span<const double>(output);
    };
    interruptible_fill(std::span<double>(output), -1.0);
    interruptible_fill(shared_output.span(), -1.0);
    for (int i = 0; i < kWarmUpMaps; ++i) map_with(warm_pool);
    point.pool_warm.push_back(median_seconds(options.repeat, [&] { map_with(warm_pool); }));
    check(result());
    interruptible_fill(std::span<double>(output), -1.0);
    interruptible_fill(shared_output.span(), -1.0);
    point.pool_with_start.push_back(median_seconds(options.repeat, [&] {
      ProcessPool pool(process_pool_options(options));
      map_with(pool);
    }));
    check(result());
  }
  point.verified = verified;
  return point;
}

}  // namespace

SweepResult run_sweep(SweepOptions options, const SweepProgress& progress) {
  if (options.sizes.empty()) {
    for (std::size_t n = 10; n <= 100'000'000; n *= 10) options.sizes.push_back(n);
  }
  std::sort(options.sizes.begin(), options.sizes.end());
  // A size measured twice would give the cost model two points at one n (a zero-length run).
  options.sizes.erase(std::unique(options.sizes.begin(), options.sizes.end()), options.sizes.end());
  if (options.workers == 0) options.workers = system_topology().default_workers();
  if (options.repeat == 0) options.repeat = 1;

  SweepResult result;
  result.options = options;
  const Stopwatch elapsed;
  const ScopedDeadline budget(std::chrono::steady_clock::now() +
                              std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                  std::chrono::duration<double>(options.max_seconds)));
  std::optional<ProcessPool> warm_pool;
  std::optional<ThreadPool> warm_threads;
  double last_size_seconds = 0;
  std::size_t last_size = 0;
  for (std::size_t i = 0; i < options.sizes.size(); ++i) {
    const std::size_t n = options.sizes[i];
    // Cost grows about linearly with n once past the fixed costs: predict this size from the last.
    const double predicted =
        last_size == 0 ? 0 : last_size_seconds * static_cast<double>(n) / static_cast<double>(last_size);
    if (elapsed.seconds() + predicted > options.max_seconds) {
      result.skipped.assign(options.sizes.begin() + static_cast<std::ptrdiff_t>(i), options.sizes.end());
      break;
    }
    if (progress) progress(i, options.sizes.size(), n, elapsed.seconds());
    std::optional<Stopwatch> this_size;
    const ScopedSpan span(options.trace, "size " + std::to_string(n), "experiment");
    try {
      if (!warm_pool) warm_pool.emplace(process_pool_options(options));
      if (!warm_threads) warm_threads.emplace(pool_options<PoolOptions>(options.workers, options.trace));
      // The warm pools start once for the whole sweep: scaling their start into the next size's
      // prediction would skip sizes that fit the budget.
      this_size.emplace();
      result.points.push_back(options.work == 0
                                  ? measure_size(options, squared, n, *warm_pool, *warm_threads)
                                  : measure_size(options, SquaredWithWork{options.work}, n, *warm_pool, *warm_threads));
    } catch (const DeadlineExceeded&) {
      result.unfinished = n;
      result.skipped.assign(options.sizes.begin() + static_cast<std::ptrdiff_t>(i), options.sizes.end());
      break;
    }
    last_size_seconds = this_size->seconds();
    last_size = n;
  }
  analyse_sweep(result);
  return result;
}

}  // namespace mpdemo
