// Monte Carlo estimate of pi with apply_async: throw random points at the unit square, count those
// inside the quarter circle. One task per seed, so the answer is reproducible and the same whoever
// runs it: a loop, a pool of processes, a pool of threads.
//
//   build/release/examples/monte_carlo_pi --samples 2e7 --tasks 8
#include "example.hpp"
#include "mpdemo/pool/process_pool.hpp"
#include "mpdemo/pool/thread_pool.hpp"

#include <fmt/format.h>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <random>
#include <vector>

namespace {

/// Points of `samples` random throws (seeded with `seed`) that land inside the quarter circle.
std::uint64_t count_inside(std::uint64_t seed, std::uint64_t samples) {
  std::mt19937_64 engine(seed);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  std::uint64_t inside = 0;
  for (std::uint64_t i = 0; i < samples; ++i) {
    const double x = uniform(engine);
    const double y = uniform(engine);
    if (x * x + y * y <= 1.0) ++inside;
  }
  return inside;
}

/// Submits one apply_async per task to `pool`, then adds up what they return.
template <class Pool>
std::uint64_t count_with(Pool& pool, std::uint64_t seed, std::size_t tasks, std::uint64_t per_task) {
  std::vector<mpdemo::AsyncResult<std::uint64_t>> results;
  for (std::size_t t = 0; t < tasks; ++t) results.push_back(pool.apply_async(count_inside, seed + t, per_task));
  std::uint64_t inside = 0;
  for (const auto& result : results) inside += result.get();
  return inside;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Estimate pi with one apply_async per seed: a loop, processes and threads, timed in the lesson's box",
               "monte_carlo_pi"};
  std::size_t samples = 4'000'000;
  std::size_t tasks = 8;
  std::size_t workers = 0;
  std::uint64_t seed = 1;
  mpdemo::cli::add_count_option(app, "--samples", samples, 1, std::size_t{1} << 40,
                                "random points in all (default 4e6)");
  mpdemo::cli::add_count_option(app, "--tasks", tasks, 1, 100'000, "apply_async tasks, one seed each (default 8)");
  mpdemo::cli::add_workers_option(app, workers);
  mpdemo::cli::add_seed_option(app, seed, "seed of the first task; task t uses seed + t (default 1)");
  return mpdemo::example::run(argc, argv, app, [&] {
    const std::uint64_t per_task = samples / tasks;
    const std::uint64_t thrown = per_task * tasks;
    std::cout << fmt::format("{} points in {} tasks of {}; pools created inside each timed box.\n", thrown, tasks,
                             per_task);
    std::uint64_t sequential = 0;
    std::uint64_t processes = 0;
    std::uint64_t threads = 0;
    mpdemo::example::boxed("pi_sequential", [&] {
      for (std::size_t t = 0; t < tasks; ++t) sequential += count_inside(seed + t, per_task);
    });
    mpdemo::example::boxed("pi_processes", [&] {
      mpdemo::ProcessPool pool(workers);
      processes = count_with(pool, seed, tasks, per_task);
    });
    mpdemo::example::boxed("pi_threads", [&] {
      mpdemo::ThreadPool pool(workers);
      threads = count_with(pool, seed, tasks, per_task);
    });
    const double pi = 4.0 * static_cast<double>(sequential) / static_cast<double>(thrown);
    if (processes != sequential || threads != sequential) {
      std::cout << fmt::format("MISMATCH: inside the circle: loop {}, processes {}, threads {}\n", sequential,
                               processes, threads);
      return 1;
    }
    std::cout << fmt::format("All three counted {} of {} points inside: pi ~ {:.6f} (off by {:.2g})\n", sequential,
                             thrown, pi, std::fabs(pi - std::numbers::pi));
    return 0;
  });
}
