// ThreadPool: the ProcessPool's API on persistent threads of this process, so that a comparison
// between the two measures processes against threads and nothing else: same chunking, same kernel,
// same pinning, the same calls of Python's Pool (pool_calls.hpp), the master waiting (not computing)
// while the workers run.
//
//   mpdemo::ThreadPool pool;                    // one thread per physical core, started now
//   auto squares = pool.map(square, input);     // threads share memory: no copy in or out
//   auto r = pool.apply_async(slow, 7);         // values are never serialized: threads share them
//
// Thread safety: every call may be made from several threads at once.
//
// What threads cannot do that processes can: a thread running a function that never returns cannot
// be killed, so there is no map timeout, and terminate() fails the work not yet started (its results
// throw PoolTerminated) but lets the chunks already running finish. Interrupts and a ScopedDeadline
// do stop a map -- the kernel checks between blocks of elements -- but only a function that returns.
// A task's exception becomes a WorkerError naming the thread's index, this process's pid, the chunk
// and the original what(), as in a process pool; an Interrupted or DeadlineExceeded stays what it is.
#pragma once

#include "mpdemo/pool/chunk_kernel.hpp"
#include "mpdemo/pool/detail/jobs.hpp"
#include "mpdemo/pool/map_stats.hpp"
#include "mpdemo/pool/pool_calls.hpp"
#include "mpdemo/pool/pool_options.hpp"
#include "mpdemo/sys/timing.hpp"

#include <cstddef>
#include <memory>
#include <ranges>
#include <span>
#include <thread>
#include <type_traits>
#include <vector>

namespace mpdemo {

class ThreadPool : public PoolCalls<ThreadPool> {
 public:
  /// Starts `workers` threads (0: one per physical core) pinned like ProcessPool's workers.
  explicit ThreadPool(std::size_t workers = 0, bool pin_workers = true);
  /// Starts the threads and runs options.initializer in each (WorkerError if it throws in one).
  explicit ThreadPool(PoolOptions options);
  /// Work not yet started fails with PoolTerminated; chunks already running finish; the threads are
  /// joined.
  ~ThreadPool();
  /// A moved-from pool has no threads: size() is 0, and every other call throws std::logic_error.
  ThreadPool(ThreadPool&&) noexcept;
  ThreadPool& operator=(ThreadPool&&) noexcept;

  std::size_t size() const noexcept;
  /// Python's close(): no new work (PoolClosed); work already given is finished.
  void close();
  /// Python's join(), after close() or terminate(): waits for the work given and for every thread to
  /// leave. std::logic_error while the pool is still open.
  void join();
  /// Python's terminate(): no more work; results not yet started fail with PoolTerminated (running
  /// chunks finish: threads cannot be killed). Thread-safe; idempotent.
  void terminate() noexcept;
  bool closed() const noexcept;
  bool terminated() const noexcept;
  /// The ids of the threads now serving (they change with maxtasksperchild).
  std::vector<std::thread::id> thread_ids() const;

  /// The element type of the vector map returns for `fn` over `Input`.
  template <class F, class Input>
  using MapResult = std::vector<element_result_t<Unpack::whole, F, std::ranges::range_value_t<Input>>>;

  /// A new vector with fn(x) for each x, in order; chunksize 0 means Python's default; `*stats`, when
  /// given, gets compute and collect (allocating the result vector).
  template <class F, MapInput Input>
  requires ElementTask<F, std::ranges::range_value_t<Input>, Unpack::whole> MapResult<F, Input> map(
      F fn, const Input& input, std::size_t chunksize = 0, MapStats* stats = nullptr) {
    using T = std::ranges::range_value_t<Input>;
    // A std::vector<bool> has no array of bool to write in place: its results go as map_async's do.
    if constexpr (!shares_in_place<F, T, Unpack::whole> || !std::ranges::contiguous_range<Input> ||
                  std::is_same_v<map_result_t<F, T>, bool>) {
      return run_now<Unpack::whole>(fn, input, chunksize);
    } else {
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
  friend class PoolCalls<ThreadPool>;

  // What PoolCalls asks of a pool. Threads share memory: elements are copied (not serialized) for an
  // async call, and viewed in place for one that waits.
  template <class T, class R, Unpack U, class F, class Input>
  std::shared_ptr<detail::ResultsJob<R>> make_job(F fn, const Input& input, std::size_t chunksize, bool fail_fast) {
    return std::make_shared<detail::LocalJob<T, R, U, F>>(fn, input, chunksize, size(), fail_fast);
  }
  void submit_job(const std::shared_ptr<detail::JobState>& job);
  void wait_for_job(detail::JobState& job);
  std::weak_ptr<detail::Driver> driver_handle() const;

  MapStats execute(const ChunkKernel& kernel, const void* input, void* output, std::size_t size, std::size_t chunksize);

  struct Impl;
  Impl& impl() const;  ///< throws std::logic_error on a moved-from pool
  std::shared_ptr<Impl> impl_;
};

/// The same kernel in a plain loop on the calling thread: the baseline every speedup is against.
template <class F, std::ranges::contiguous_range Input, std::ranges::contiguous_range Output>
requires ElementFunction<F, std::ranges::range_value_t<Input>>
void sequential_map_into(F fn, const Input& input, Output&& output) {
  using T = std::ranges::range_value_t<Input>;
  require_same_size(std::ranges::size(input), std::ranges::size(output), "sequential_map_into");
  const std::size_t size = std::ranges::size(input);
  ChunkKernel::of<T>(fn).for_elements(size)(std::ranges::data(input), std::ranges::data(output), 0, size);
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
