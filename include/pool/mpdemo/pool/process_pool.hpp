// ProcessPool: Python's multiprocessing.Pool, with processes forked once and data in shared memory.
//
//   mpdemo::ProcessPool pool;                               // one worker per physical core, forked now
//   std::vector<double> squares = pool.map(square, input);  // like pool.map(squared, array)
//   auto r = pool.apply_async(slow, 7);  ...  r.get();      // and the rest of Pool: see pool_calls.hpp
//
//   auto in = pool.make_shared_array<double>(n);            // zero-copy: data born in shared memory
//   auto out = pool.make_shared_array<double>(n);
//   pool.map_into(square, in, out);                         // nothing copied, nothing allocated
//
// How it works. The constructor forks the workers, each exactly once, pinned one per physical core
// (and runs ProcessPoolOptions::initializer in each); or has a fork server fork them
// (ProcessPoolOptions::fork_server, Python's "forkserver"). Data does not go through the pipes: inputs and
// outputs live in a SharedArena, mapped before the fork and so at the same address in every worker.
// Trivially copyable values are read and written there in place; others (std::string, vectors, your
// structs) are serialized there with cereal (serialization.hpp). The master posts a task ("apply this
// kernel to elements [b, e)", ~400 bytes) and the worker answers done or failed, by default in a page
// of shared memory per worker (a mailbox: no system call while both sides are awake), with two pipes
// per worker for sleeping, for noticing deaths and for bytes that must travel (see
// ProcessPoolOptions::control). Chunks are handed out dynamically, two in flight per worker, so a
// worker that finishes early takes more; several jobs (maps, apply_asyncs, imaps) may be in flight at
// once, each chunk tagged with its job. The master waits for answers spinning first, for
// PoolOptions::spin (50 us by default: back-to-back maps do not pay a core's wake-up each), then
// sleeps in poll() on the pipes. Workers wait for tasks the same way, and a worker whose next task
// came a little after its spin ended spins that long next time, up to PoolOptions::spin_limit
// (1 ms), and `spin` again after two longer waits in a row. The master's side runs in
// whichever thread waits on the pool (see async_result.hpp): there is no hidden thread.
//
// Failures. If fn throws in a worker, the call (or get(), or the imap step) throws WorkerError with
// the worker, its pid, the chunk and the original what(). If a worker dies (a signal, a crash, exit()
// in fn), the master notices at once (end-of-file on its pipe): the chunk it was running fails with a
// WorkerError naming the signal, the chunks still queued for it go to other workers, and it is
// replaced. Python's Pool would wait for that chunk forever; ProcessPoolExecutor would break the
// whole pool. A map into the caller's memory (map_into) then kills the workers still busy with it,
// since the caller may reuse that memory as soon as the call returns. A map that never ends (fn never
// returns) is bounded by map_timeout, by a ScopedDeadline, by an interrupt, or by terminate() from
// another thread. Workers die with the master (PR_SET_PDEATHSIG and end-of-file), and ignore
// SIGINT/SIGTERM/SIGQUIT: Ctrl-C reaches the whole process group, and the decision belongs to the
// master (see interrupt.hpp).
//
// Thread safety: every call may be made from several threads at once (one drives the workers while
// the others wait for it); terminate() may be called from any thread at any time (that is what it is
// for). Every thread that creates the pool or waits on it must outlive it: Linux sends a worker's
// parent-death signal when the *thread* that forked it exits, and a wait may fork a replacement.
// Limits: one call's staged or serialized data must fit in the arena (SharedArena::capacity(), half
// of physical memory by default); beyond it, the call throws ArenaExhausted.
// After fork, a worker only reads and writes its pipes and runs fn: fn must not rely on threads,
// locks or other state of the master beyond what it was given (glibc keeps malloc usable).
#pragma once

#include "mpdemo/pool/chunk_kernel.hpp"
#include "mpdemo/pool/data_path.hpp"
#include "mpdemo/pool/detail/jobs.hpp"
#include "mpdemo/pool/map_stats.hpp"
#include "mpdemo/pool/pool_calls.hpp"
#include "mpdemo/pool/pool_options.hpp"
#include "mpdemo/pool/shared_arena.hpp"
#include "mpdemo/sys/interrupt.hpp"
#include "mpdemo/sys/spawn.hpp"
#include "mpdemo/sys/timing.hpp"

#include <sys/types.h>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <ranges>
#include <span>
#include <vector>

namespace mpdemo {

/// PoolOptions, and what only processes have.
struct ProcessPoolOptions : PoolOptions {
  std::shared_ptr<SharedArena> arena{};  ///< null: SharedArena::process_default()
  /// A map still running after this long throws MapTimeout, its busy workers killed (and replaced at
  /// the next map). 0: no limit.
  std::chrono::milliseconds map_timeout{0};
  /// How long a new worker may take to say it is ready before it is killed and the constructor (or
  /// the map that replaces it) throws: a worker stopped (SIGSTOP) or starved never hangs the master.
  std::chrono::milliseconds start_timeout{10'000};
  /// Where the control messages (tasks, answers) travel; the data is in shared memory either way.
  enum class Control {
    /// A ring each way in a page of shared memory per worker; the pipes only wake a sleeper (one
    /// byte), carry bytes that must travel, and tell of deaths. A warm map costs no system call.
    shared_memory,
    /// Every message is a write() and a read() on the pipes: the textbook design, a system call each
    /// way per message. For comparison (mpdemo_bench_ratios measures both).
    pipes,
  };
  Control control = Control::shared_memory;
  /// Python's "forkserver" start method. A fork costs more the more the forking process holds (its
  /// page tables are copied, and every page it writes afterwards is a copy-on-write fault): with a
  /// server, made early by ProcessPool::start_fork_server() while this process is still small, the
  /// server forks the workers (replacements too) and this process forks nothing. They are still this
  /// process's children, owned and reaped as ever, but copies of the server: so `initializer` must be
  /// empty, the arena must be one the server has (the process default, which start_fork_server makes
  /// first), and fn may rely on nothing this process made or changed since the server started
  /// (BadArgument otherwise, for the first two). Make the server in the thread that will outlive the
  /// workers (see Thread safety). null: this process forks them (Python's "fork").
  std::shared_ptr<ForkServer> fork_server{};
};

class ProcessPool : public PoolCalls<ProcessPool> {
 public:
  /// Forks `workers` processes (0: one per physical core) and waits until each is ready.
  explicit ProcessPool(std::size_t workers = 0);
  /// A fork server for ProcessPoolOptions::fork_server: makes the process default arena (so that the
  /// server has it), then starts the server. Call it early, while this process is small, from the
  /// thread that will outlive the pools' workers; one server serves any number of pools.
  static std::shared_ptr<ForkServer> start_fork_server();
  explicit ProcessPool(ProcessPoolOptions options);
  /// Python's context manager calls terminate(); so does this, for work still pending: every result
  /// not yet ready fails with PoolTerminated (where Python's would hang). Idle workers leave on
  /// end-of-file, busy ones are killed; every one is reaped.
  ~ProcessPool();
  /// A moved-from pool has no workers: size() is 0, and every other call throws std::logic_error.
  ProcessPool(ProcessPool&&) noexcept;
  ProcessPool& operator=(ProcessPool&&) noexcept;

  std::size_t size() const noexcept;
  /// Python's close(): no new work (PoolClosed); work already given is finished. Idempotent.
  void close();
  /// Python's join(), after close() or terminate(): finishes what was given (after close) and waits
  /// for every worker to leave. Throws std::logic_error while the pool is still open, as Python's
  /// ValueError("Pool is still running").
  void join();
  /// Whether close() was called.
  bool closed() const noexcept;
  /// The workers' pids, by slot; empty for a slot whose worker died or was killed (it is replaced
  /// when the next map starts). Never -1 or 0, which kill() would take for "every process".
  std::vector<std::optional<pid_t>> worker_pids() const;
  /// Python's Pool.terminate(): kills every worker now. Every result not yet ready fails with
  /// PoolTerminated within milliseconds, a map running in another thread throws it, and so does every
  /// later call. Thread-safe; calling it again is a no-op.
  void terminate() noexcept;
  /// Whether terminate() was called.
  bool terminated() const noexcept;
  /// Seconds the constructor took to fork all workers and hear that each is ready.
  double startup_seconds() const noexcept;
  const std::shared_ptr<SharedArena>& arena() const;

  /// An uninitialised array in the pool's shared memory: fill it, and map/map_into read it in place.
  template <class T>
  SharedArray<T> make_shared_array(std::size_t size) const {
    return SharedArray<T>(arena(), size);
  }

  /// The element type of the vector map returns for `fn` over `Input`.
  template <class F, class Input>
  using MapResult = std::vector<element_result_t<Unpack::whole, F, std::ranges::range_value_t<Input>>>;

  /// Like Pool.map(fn, input, chunksize): a new vector with fn(x) for every x, in input order.
  /// chunksize 0 means Python's default, ceil(n / (4 * workers)). Input outside the pool's arena is
  /// copied in, and results copied out: both copies are timed, in `*stats` when it is given.
  /// Throws WorkerError if a worker fails, Interrupted on SIGINT/SIGTERM under an InterruptGuard,
  /// MapTimeout after map_timeout, PoolTerminated after terminate(), ArenaExhausted if the staged data
  /// does not fit, std::system_error if a system call fails.
  /// Values that are not trivially copyable (or input that is not contiguous) are serialized into
  /// shared memory instead, and `*stats` stays untouched.
  template <class F, MapInput Input>
  requires ElementTask<F, std::ranges::range_value_t<Input>, Unpack::whole> MapResult<F, Input> map(
      F fn, const Input& input, std::size_t chunksize = 0, MapStats* stats = nullptr) {
    using T = std::ranges::range_value_t<Input>;
    if constexpr (!shares_in_place<F, T, Unpack::whole> || !std::ranges::contiguous_range<Input>) {
      return run_now<Unpack::whole>(fn, input, chunksize);
    } else {
      return map_in_place(fn, input, chunksize, stats);
    }
  }

  /// map, with the data moved the way Python's Pool moves it: every slice written into a pipe and
  /// every result read back from one (trivially copyable values only). Slower by design; it exists to measure the
  /// difference.
  template <class F, std::ranges::contiguous_range Input>
  requires ElementFunction<F, std::ranges::range_value_t<Input>> MapResult<F, Input> map_through_pipes(
      F fn, const Input& input, std::size_t chunksize = 0, MapStats* stats = nullptr) {
    using T = std::ranges::range_value_t<Input>;
    using R = map_result_t<F, T>;
    const Stopwatch clock;
    MapResult<F, Input> result = interruptible_vector<R>(std::ranges::size(input));
    const double allocate = clock.seconds();
    MapStats cost = execute({ChunkKernel::of<T>(fn), std::ranges::data(input), std::ranges::size(input), sizeof(T),
                             result.data(), sizeof(R), chunksize, DataPath::pipe},
                            {});
    cost.phases.collect += allocate;  // the results are written in place as they arrive: only the vector cost
    if (stats != nullptr) *stats = cost;
    return result;
  }

  /// output[i] = fn(input[i]) into a buffer the caller owns, and what it cost. When both live in the
  /// pool's arena (make_shared_array) nothing is copied and nothing is allocated. output.size() must
  /// equal input.size() (BadArgument otherwise). DataPath::pipe moves the data through the
  /// pipes. Throws what map throws.
  template <class F, std::ranges::contiguous_range Input, std::ranges::contiguous_range Output>
  requires ElementFunction<F, std::ranges::range_value_t<Input>> &&
      std::same_as<std::ranges::range_value_t<Output>, map_result_t<F, std::ranges::range_value_t<Input>>>
          MapStats map_into(F fn, const Input& input, Output&& output, std::size_t chunksize = 0,
                            DataPath path = DataPath::shared_memory) {
    using T = std::ranges::range_value_t<Input>;
    using R = std::ranges::range_value_t<Output>;
    require_same_size(std::ranges::size(input), std::ranges::size(output), "ProcessPool::map_into");
    return execute({ChunkKernel::of<T>(fn), std::ranges::data(input), std::ranges::size(input), sizeof(T),
                    std::ranges::data(output), sizeof(R), chunksize, path},
                   {});
  }

 private:
  friend class PoolCalls<ProcessPool>;

  // What PoolCalls asks of a pool.
  template <class T, class R, Unpack U, class F, class Input>
  std::shared_ptr<detail::ResultsJob<R>> make_job(F fn, const Input& input, std::size_t chunksize, bool fail_fast) {
    std::shared_ptr<detail::ResultsJob<R>> job;
    if constexpr (shares_in_place<F, T, U>) {
      job = std::make_shared<detail::SharedMemoryJob<T, R>>(fn, input, arena(), chunksize, size(), fail_fast);
    } else {
      job = detail::SerializedJob<R>::template make<T, U>(fn, input, arena(), chunksize, size(), fail_fast);
    }
    // Streamed results (imap) and single tasks (apply): handed to whichever worker is free, never
    // queued behind another task in a busy worker's pipe.
    job->one_task_per_worker = !fail_fast || job->plan.count() <= 1;
    return job;
  }
  /// Takes the job on (PoolClosed after close(), PoolTerminated after terminate()).
  void submit_job(const std::shared_ptr<detail::JobState>& job);
  /// Waits until the job is finished, driving the workers meanwhile.
  void wait_for_job(detail::JobState& job);
  std::weak_ptr<detail::Driver> driver_handle() const;

  /// map of trivially copyable values from contiguous input: staged through the arena in one copy
  /// each way, timed phase by phase.
  template <class F, class Input>
  auto map_in_place(F fn, const Input& input, std::size_t chunksize, MapStats* stats) {
    using T = std::ranges::range_value_t<Input>;
    using R = map_result_t<F, T>;
    MapResult<F, Input> result;
    const MapStats cost = execute({ChunkKernel::of<T>(fn), std::ranges::data(input), std::ranges::size(input),
                                   sizeof(T), nullptr, sizeof(R), chunksize, DataPath::shared_memory},
                                  [&](const void* staged) {
                                    const auto* first = static_cast<const R*>(staged);
                                    const std::size_t n = std::ranges::size(input);
                                    reserve_asking_for_huge_pages(result, n);
                                    for_each_block(n, [&](std::size_t begin, std::size_t end) {
                                      result.insert(result.end(), first + begin, first + end);
                                    });
                                  });
    if (stats != nullptr) *stats = cost;
    return result;
  }

  struct Request {
    ChunkKernel kernel;
    const void* input;
    std::size_t size;
    std::size_t input_element_bytes;
    void* output;  ///< null: results are staged in shared memory and handed to `collect`
    std::size_t output_element_bytes;
    std::size_t chunksize;
    DataPath data_path;
  };

  MapStats execute(const Request& request, const std::function<void(const void*)>& collect);

  struct Impl;
  Impl& impl() const;           ///< throws std::logic_error on a moved-from pool
  std::shared_ptr<Impl> impl_;  ///< shared with nobody: results hold a weak_ptr, to know it is gone
};

}  // namespace mpdemo
