// ThreadPool: the ProcessPool's API on persistent threads of this process, so that a comparison
// between the two measures processes against threads and nothing else: same chunking, same kernel,
// same pinning, the master waiting (not computing) while the workers run.
//
//   mpdemo::ThreadPool pool;                    // one thread per physical core, started now
//   auto squares = pool.map(square, input);     // threads share memory: no copy in or out
//
// Thread safety: one thread at a time may call map on a pool.
//
// What threads cannot do that processes can: a thread running a function that never returns cannot
// be killed, so there is no terminate() and no map timeout here. Interrupts and a ScopedDeadline do
// stop a map -- the kernel checks between blocks of elements -- but only a function that returns.
#pragma once

#include "mpdemo/pool/chunk_kernel.hpp"
#include "mpdemo/pool/map_stats.hpp"
#include "mpdemo/sys/timing.hpp"

#include <cstddef>
#include <memory>
#include <ranges>
#include <vector>

namespace mpdemo {

class ThreadPool {
 public:
  /// Starts `workers` threads (0: one per physical core) pinned like ProcessPool's workers.
  explicit ThreadPool(std::size_t workers = 0, bool pin_workers = true);
  /// Stops and joins the threads.
  ~ThreadPool();
  /// A moved-from pool has no threads: size() is 0, and map throws std::logic_error.
  ThreadPool(ThreadPool&&) noexcept;
  ThreadPool& operator=(ThreadPool&&) noexcept;

  std::size_t size() const noexcept;

  /// The element type of the vector map returns for `fn` over `Input`.
  template <class F, class Input>
  using MapResult = std::vector<map_result_t<F, std::ranges::range_value_t<Input>>>;

  /// A new vector with fn(x) for each x, in order; chunksize 0 means Python's default; `*stats`, when
  /// given, gets compute and collect (allocating the result vector). If fn throws, map throws
  /// WorkerError (as ProcessPool::map does: the worker's index, this process's pid, the chunk, the
  /// original what()) in the calling thread once every chunk in flight is done; an Interrupted or
  /// DeadlineExceeded from the kernel's checks is rethrown as it is.
  template <class F, std::ranges::contiguous_range Input>
  requires ElementFunction<F, std::ranges::range_value_t<Input>> MapResult<F, Input> map(F fn, const Input& input,
                                                                                         std::size_t chunksize = 0,
                                                                                         MapStats* stats = nullptr) {
    using T = std::ranges::range_value_t<Input>;
    using R = map_result_t<F, T>;
    Stopwatch clock;
    MapResult<F, Input> result = interruptible_vector<R>(std::ranges::size(input));
    const double allocate = clock.seconds();
    MapStats cost =
        execute(ChunkKernel::of<T>(fn), std::ranges::data(input), result.data(), std::ranges::size(input), chunksize);
    cost.phases.collect = allocate;  // the results are already in place: only the vector cost anything
    if (stats != nullptr) *stats = cost;
    return result;
  }

  /// output[i] = fn(input[i]), and what it cost (compute); output.size() must equal input.size()
  /// (BadArgument otherwise). Throws what map throws.
  template <class F, std::ranges::contiguous_range Input, std::ranges::contiguous_range Output>
  requires ElementFunction<F, std::ranges::range_value_t<Input>> &&
      std::same_as<std::ranges::range_value_t<Output>, map_result_t<F, std::ranges::range_value_t<Input>>>
          MapStats map_into(F fn, const Input& input, Output&& output, std::size_t chunksize = 0) {
    using T = std::ranges::range_value_t<Input>;
    require_same_size(std::ranges::size(input), std::ranges::size(output), "ThreadPool::map_into");
    return execute(ChunkKernel::of<T>(fn), std::ranges::data(input), std::ranges::data(output),
                   std::ranges::size(input), chunksize);
  }

 private:
  MapStats execute(const ChunkKernel& kernel, const void* input, void* output, std::size_t size, std::size_t chunksize);

  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// The same kernel in a plain loop on the calling thread: the baseline every speedup is against.
template <class F, std::ranges::contiguous_range Input, std::ranges::contiguous_range Output>
requires ElementFunction<F, std::ranges::range_value_t<Input>>
void sequential_map_into(F fn, const Input& input, Output&& output) {
  using T = std::ranges::range_value_t<Input>;
  require_same_size(std::ranges::size(input), std::ranges::size(output), "sequential_map_into");
  ChunkKernel::of<T>(fn)(std::ranges::data(input), std::ranges::data(output), 0, std::ranges::size(input));
}

/// The lesson's array_squared_sp: a fresh vector, filled by one loop.
template <class F, std::ranges::contiguous_range Input>
requires ElementFunction<F, std::ranges::range_value_t<Input>>
auto sequential_map(F fn, const Input& input) {
  auto result = interruptible_vector<map_result_t<F, std::ranges::range_value_t<Input>>>(std::ranges::size(input));
  sequential_map_into(fn, input, result);
  return result;
}

}  // namespace mpdemo
