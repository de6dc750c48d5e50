#include "mpdemo/lab/experiment.hpp"

#include "mpdemo/lab/kernels.hpp"
#include "mpdemo/sys/interrupt.hpp"

#include <algorithm>
#include <cstring>
#include <random>

namespace mpdemo {

std::string_view start_method_name(bool fork_server) noexcept { return fork_server ? "forkserver" : "fork"; }

std::string_view method_name(Method method) noexcept {
  switch (method) {
    case Method::sequential:
      return "seq";
    case Method::fresh_processes:
      return "proc";
    case Method::fresh_processes_copy:
      return "proc-copy";
    case Method::fresh_threads:
      return "thread";
    case Method::warm_processes:
      return "warm-proc";
    case Method::warm_threads:
      return "warm-thread";
    case Method::mpi_scatter:
      return "mpi-scatter";
    case Method::mpi_shared_window:
      return "mpi-window";
    case Method::mpi_hybrid:
      return "mpi-hybrid";
  }
  return "?";
}

Machinery machinery_of(Method method) noexcept {
  switch (method) {
    case Method::sequential:
      return Machinery::loop;
    case Method::fresh_processes:
    case Method::fresh_processes_copy:
    case Method::warm_processes:
      return Machinery::processes;
    case Method::fresh_threads:
    case Method::warm_threads:
      return Machinery::threads;
    case Method::mpi_scatter:
    case Method::mpi_shared_window:
    case Method::mpi_hybrid:
      return Machinery::mpi_ranks;
  }
  return Machinery::loop;
}

bool is_warm(Method method) noexcept {
  return method == Method::warm_processes || method == Method::warm_threads ||
         machinery_of(method) == Machinery::mpi_ranks;
}

std::string_view lesson_function_name(Method method) noexcept {
  switch (method) {
    case Method::sequential:
      return "array_squared_sp";
    case Method::fresh_processes:
      return "array_squared_mp";
    case Method::fresh_processes_copy:
      return "array_squared_mp_copy";
    case Method::fresh_threads:
      return "array_squared_threads";
    case Method::warm_processes:
      return "array_squared_mp_warm";
    case Method::warm_threads:
      return "array_squared_threads_warm";
    case Method::mpi_scatter:
      return "array_squared_mpi_scatter";
    case Method::mpi_shared_window:
      return "array_squared_mpi_window";
    case Method::mpi_hybrid:
      return "array_squared_mpi_hybrid";
  }
  return "?";
}

void fill_uniform_random(std::span<double> values, std::uint64_t seed) {
  std::mt19937_64 engine(seed);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  for_each_block(values.size(), [&](std::size_t begin, std::size_t end) {
    for (std::size_t i = begin; i < end; ++i) values[i] = uniform(engine);
  });
}

std::vector<double> uniform_random_array(std::size_t n, std::uint64_t seed) {
  std::vector<double> values = interruptible_vector<double>(n);
  fill_uniform_random(values, seed);
  return values;
}

Squared square_sequentially(std::span<const double> input) {
  Squared out;
  Stopwatch clock;
  out.values = interruptible_vector<double>(input.size());
  out.phases.collect = clock.lap();
  sequential_map_into(squared, input, out.values);
  out.phases.compute = clock.lap();
  return out;
}

Squared square_with_fresh_processes(const SharedArray<double>& input, std::size_t workers, std::size_t chunksize,
                                    Trace* trace, const PoolChoices& choices) {
  Squared out;
  Stopwatch clock;
  {
    ProcessPool pool(pool_options<ProcessPoolOptions>(workers, trace, choices));
    out.phases.start_workers = clock.lap();
    out.shared = pool.make_shared_array<double>(input.size());
    out.phases.collect = clock.lap();
    pool.map_into(squared, input, out.shared, chunksize);
    out.phases.compute = clock.lap();
  }
  out.phases.stop_workers = clock.lap();
  return out;
}

Squared square_with_fresh_processes_copying(std::span<const double> input, std::size_t workers, std::size_t chunksize,
                                            Trace* trace, const PoolChoices& choices) {
  Squared out;
  Stopwatch clock;
  {
    ProcessPool pool(pool_options<ProcessPoolOptions>(workers, trace, choices));
    out.phases.start_workers = clock.lap();
    MapStats map;
    out.values = pool.map(squared, input, chunksize, &map);
    out.phases.move_in = map.phases.move_in;
    out.phases.compute = map.phases.compute;
    out.phases.collect = map.phases.collect;
    clock.lap();
  }
  out.phases.stop_workers = clock.lap();
  return out;
}

Squared square_with_fresh_threads(std::span<const double> input, std::size_t workers, std::size_t chunksize,
                                  Trace* trace, const PoolChoices& choices) {
  Squared out;
  Stopwatch clock;
  {
    ThreadPool pool(pool_options<PoolOptions>(workers, trace, choices));
    out.phases.start_workers = clock.lap();
    MapStats map;
    out.values = pool.map(squared, input, chunksize, &map);
    out.phases.compute = map.phases.compute;
    out.phases.collect = map.phases.collect;
    clock.lap();
  }
  out.phases.stop_workers = clock.lap();
  return out;
}

PhaseTimes square_with_warm_processes(ProcessPool& pool, const SharedArray<double>& input, SharedArray<double>& output,
                                      std::size_t chunksize) {
  return pool.map_into(squared, input, output, chunksize).phases;
}

PhaseTimes square_with_warm_threads(ThreadPool& pool, std::span<const double> input, std::span<double> output,
                                    std::size_t chunksize) {
  return pool.map_into(squared, input, output, chunksize).phases;
}

bool same_values(std::span<const double> a, std::span<const double> b) {
  if (a.size() != b.size()) return false;
  bool same = true;
  for_each_block(a.size(), [&](std::size_t begin, std::size_t end) {
    same = same && std::memcmp(a.data() + begin, b.data() + begin, (end - begin) * sizeof(double)) == 0;
  });
  return same;
}

}  // namespace mpdemo
