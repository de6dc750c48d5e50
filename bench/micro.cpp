// Micro-benchmarks with Google Benchmark: the fixed costs of the two pools, one number each.
//   build/release/bench/mpdemo_bench_micro [--benchmark_repetitions=5]
#include "mpdemo/lab/kernels.hpp"
#include "mpdemo/pool/process_pool.hpp"
#include "mpdemo/pool/thread_pool.hpp"

#include <benchmark/benchmark.h>

#include <vector>

namespace {

void BM_ProcessPoolStartAndStop(benchmark::State& state) {
  for (auto _ : state) {
    mpdemo::ProcessPool pool(static_cast<std::size_t>(state.range(0)));
    benchmark::DoNotOptimize(pool.size());
  }
}
BENCHMARK(BM_ProcessPoolStartAndStop)->Arg(1)->Arg(2)->Unit(benchmark::kMicrosecond);

void BM_ThreadPoolStartAndStop(benchmark::State& state) {
  for (auto _ : state) {
    mpdemo::ThreadPool pool(static_cast<std::size_t>(state.range(0)));
    benchmark::DoNotOptimize(pool.size());
  }
}
BENCHMARK(BM_ThreadPoolStartAndStop)->Arg(1)->Arg(2)->Unit(benchmark::kMicrosecond);

// One map of two elements, one chunk per worker: the fixed cost of a map on a warm pool.
void BM_WarmProcessPoolTinyMap(benchmark::State& state) {
  mpdemo::ProcessPool pool(2);
  auto input = pool.make_shared_array<double>(2);
  auto output = pool.make_shared_array<double>(2);
  input[0] = input[1] = 0.5;
  for (auto _ : state) {
    pool.map_into(mpdemo::squared, input, output, 1);
    benchmark::DoNotOptimize(output.data());
  }
}
BENCHMARK(BM_WarmProcessPoolTinyMap)->Unit(benchmark::kMicrosecond);

void BM_WarmThreadPoolTinyMap(benchmark::State& state) {
  mpdemo::ThreadPool pool(2);
  std::vector<double> input{0.5, 0.5};
  std::vector<double> output(2);
  for (auto _ : state) {
    pool.map_into(mpdemo::squared, input, output, 1);
    benchmark::DoNotOptimize(output.data());
  }
}
BENCHMARK(BM_WarmThreadPoolTinyMap)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
