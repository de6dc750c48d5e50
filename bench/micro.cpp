// Micro-benchmarks with Google Benchmark: the fixed costs of the two pools, one number each, and
// what the rest of Pool's calls cost: one apply_async().get() on a warm pool, and imap's throughput
// against map's, per chunksize.
//   build/release/bench/mpdemo_bench_micro [--benchmark_repetitions=5]
#include "mpdemo/lab/kernels.hpp"
#include "mpdemo/pool/process_pool.hpp"
#include "mpdemo/pool/thread_pool.hpp"

#include <benchmark/benchmark.h>

#include <cstdint>
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

/// A process pool of `workers`, its messages through mailboxes (pipes == 0) or its pipes (1).
mpdemo::ProcessPoolOptions process_pool(std::int64_t workers, std::int64_t pipes) {
  mpdemo::ProcessPoolOptions options;
  options.workers = static_cast<std::size_t>(workers);
  if (pipes != 0) options.control = mpdemo::ProcessPoolOptions::Control::pipes;
  return options;
}

/// Maps of two elements, one chunk each, on a warm pool made with `options`: a map's fixed cost.
void time_tiny_maps(benchmark::State& state, const mpdemo::ProcessPoolOptions& options) {
  mpdemo::ProcessPool pool(options);
  auto input = pool.make_shared_array<double>(2);
  auto output = pool.make_shared_array<double>(2);
  input[0] = input[1] = 0.5;
  for (auto _ : state) {
    pool.map_into(mpdemo::squared, input, output, 1);
    benchmark::DoNotOptimize(output.data());
  }
}

// One chunk per worker. With one worker the master has a core of its own; with two (on two cores)
// it shares one with a worker.
void BM_WarmProcessPoolTinyMap(benchmark::State& state) {
  time_tiny_maps(state, process_pool(state.range(0), state.range(1)));
}
BENCHMARK(BM_WarmProcessPoolTinyMap)
    ->ArgNames({"workers", "pipes"})
    ->ArgsProduct({{1, 2}, {0, 1}})
    ->Unit(benchmark::kMicrosecond);

// The caller computing one of the two chunks itself (caller_computes) beside one worker: the team of
// an OpenMP region on two cores.
void BM_WarmProcessPoolTinyMapCallerComputes(benchmark::State& state) {
  mpdemo::ProcessPoolOptions options = process_pool(state.range(0), 0);
  options.caller_computes = true;
  time_tiny_maps(state, options);
}
BENCHMARK(BM_WarmProcessPoolTinyMapCallerComputes)->ArgName("workers")->Arg(1)->Unit(benchmark::kMicrosecond);

void BM_WarmThreadPoolTinyMap(benchmark::State& state) {
  mpdemo::ThreadPool pool(static_cast<std::size_t>(state.range(0)));
  std::vector<double> input{0.5, 0.5};
  std::vector<double> output(2);
  for (auto _ : state) {
    pool.map_into(mpdemo::squared, input, output, 1);
    benchmark::DoNotOptimize(output.data());
  }
}
BENCHMARK(BM_WarmThreadPoolTinyMap)->ArgName("workers")->Arg(1)->Arg(2)->Unit(benchmark::kMicrosecond);

int add(int a, int b) { return a + b; }
int plus_one(int x) { return x + 1; }

// One task there and back: serialize the arguments, a task message, the worker's answer, the result.
template <class Pool>
void BM_ApplyAsyncGet(benchmark::State& state) {
  Pool pool(2);
  int sum = 0;
  for (auto _ : state) sum += pool.apply_async(add, 1, 2).get();
  benchmark::DoNotOptimize(sum);
}
BENCHMARK_TEMPLATE(BM_ApplyAsyncGet, mpdemo::ProcessPool)->Unit(benchmark::kMicrosecond);

void BM_ApplyAsyncGetOverPipes(benchmark::State& state) {
  mpdemo::ProcessPool pool(process_pool(2, 1));
  int sum = 0;
  for (auto _ : state) sum += pool.apply_async(add, 1, 2).get();
  benchmark::DoNotOptimize(sum);
}
BENCHMARK(BM_ApplyAsyncGetOverPipes)->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(BM_ApplyAsyncGet, mpdemo::ThreadPool)->Unit(benchmark::kMicrosecond);

constexpr int kStreamed = 100'000;

// Every result handed over as its chunk ends (imap) against all at once (map), per chunksize.
template <class Pool>
void BM_Imap(benchmark::State& state) {
  Pool pool(2);
  std::vector<int> input(kStreamed, 1);
  const auto chunksize = static_cast<std::size_t>(state.range(0));
  long long total = 0;
  for (auto _ : state) {
    for (const int r : pool.imap(plus_one, input, chunksize)) total += r;
  }
  benchmark::DoNotOptimize(total);
  state.SetItemsProcessed(state.iterations() * kStreamed);
}
BENCHMARK_TEMPLATE(BM_Imap, mpdemo::ProcessPool)->Arg(10)->Arg(1000)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_Imap, mpdemo::ThreadPool)->Arg(10)->Arg(1000)->Unit(benchmark::kMillisecond);

template <class Pool>
void BM_Map(benchmark::State& state) {
  Pool pool(2);
  std::vector<int> input(kStreamed, 1);
  const auto chunksize = static_cast<std::size_t>(state.range(0));
  for (auto _ : state) benchmark::DoNotOptimize(pool.map(plus_one, input, chunksize).data());
  state.SetItemsProcessed(state.iterations() * kStreamed);
}
BENCHMARK_TEMPLATE(BM_Map, mpdemo::ProcessPool)->Arg(10)->Arg(1000)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_Map, mpdemo::ThreadPool)->Arg(10)->Arg(1000)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
