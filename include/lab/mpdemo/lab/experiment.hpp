// The lesson's experiment: square an array of doubles by each method, and time every phase.
//
// "Fresh" methods follow the lesson's semantics: each call returns a new array, and a pool used by
// it is created and torn down inside the call, as `array_squared_mp` does with multiprocessing.Pool.
// "Warm" methods reuse workers started earlier and write into a buffer the caller owns: what a
// program that maps many times actually pays per map.
#pragma once

#include "mpdemo/pool/process_pool.hpp"
#include "mpdemo/pool/shared_arena.hpp"
#include "mpdemo/pool/thread_pool.hpp"
#include "mpdemo/sys/timing.hpp"

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

namespace mpdemo {

enum class Method {
  sequential,            ///< array_squared_sp: one loop in this process, a new vector
  fresh_processes,       ///< array_squared_mp: a ProcessPool created, used once and stopped, all timed; the input
                         ///< was made in shared memory and the new result is a SharedArray (nothing copied)
  fresh_processes_copy,  ///< array_squared_mp_copy: the same, from an ordinary vector into a new one, as a
                         ///< naive port would: the input copied in and the results copied out, timed
  fresh_threads,         ///< array_squared_threads: a ThreadPool created, used once and stopped, all timed
  warm_processes,        ///< a ProcessPool started beforehand, data already in its shared memory
  warm_threads,          ///< a ThreadPool started beforehand, writing into a buffer the caller owns
  // Over MPI ranks that mpirun started before the program ran (so warm: see lab/mpi_methods.hpp):
  mpi_scatter,        ///< MpiPool, MPI_Scatterv out and MPI_Gatherv back, from and into the root's vectors
  mpi_shared_window,  ///< MpiPool, input and output in one node's MPI-3 shared window: nothing copied
  mpi_hybrid,         ///< MpiPool, scattered to one leader per node, a shared window within each node
};

/// What kind of machinery a method uses, written once (reports and resource checks ask these).
enum class Machinery { loop, processes, threads, mpi_ranks };
Machinery machinery_of(Method method) noexcept;
/// Warm: workers started beforehand and an output buffer reused, so only compute is paid.
bool is_warm(Method method) noexcept;

/// How many untimed maps a warm pool runs on its arrays before it is timed. Each worker is handed the
/// chunks it ran last time over the same arrays (ChunkQueue), so the first map has it fault in their
/// pages; on the project's VMs a process's next pass or two over pages it has just mapped are still
/// slow (no fault the guest sees: the hypervisor's share, measured by mpdemo_bench_ratios' warm-up
/// figure), and a worker slowed by that makes the other steal, so three.
inline constexpr int kWarmUpMaps = 3;

/// The names the CLI and the reports use: "seq", "proc", "proc-copy", "thread", "warm-proc", "warm-thread",
/// "mpi-scatter", "mpi-window", "mpi-hybrid".
std::string_view method_name(Method method) noexcept;
/// The lesson's function names: "array_squared_sp", "array_squared_mp", "array_squared_threads", ...
std::string_view lesson_function_name(Method method) noexcept;
/// The start method, as --start-method takes it and the reports name it (Python's names): "forkserver"
/// when a fork server forks the process pools' workers, "fork" when this process does.
std::string_view start_method_name(bool fork_server) noexcept;

/// `n` numbers uniform in [0, 1), reproducible from `seed` (np.random.uniform(0, 1, size=n)).
std::vector<double> uniform_random_array(std::size_t n, std::uint64_t seed);
/// The same numbers written straight into shared memory, so a warm pool need not copy them.
void fill_uniform_random(std::span<double> values, std::uint64_t seed);

struct Squared {
  std::vector<double> values;  ///< the result, for verification (or:)
  SharedArray<double> shared;  ///< the result, when it was made in shared memory
  PhaseTimes phases;
  std::span<const double> result() const noexcept {
    return shared.empty() ? std::span<const double>(values) : shared.span();
  }
};

/// How a run's pools are made, beyond their size and trace: every pool of the run alike.
struct PoolChoices {
  /// The caller computes a share of each map beside its workers (OpenMP's team, not Python's).
  bool caller_computes = false;
  /// The process pools' workers are forked by this server (Python's "forkserver" start method,
  /// ProcessPoolOptions::fork_server); null: by this process (Python's "fork").
  std::shared_ptr<ForkServer> fork_server;
};

/// Options for a pool of `workers` (0: one per physical core) that records into `trace` (null: no
/// trace), made as `choices` says, everything else the default: how every experiment makes its pools.
template <class Options>
Options pool_options(std::size_t workers, Trace* trace, const PoolChoices& choices = {}) {
  Options options;
  options.workers = workers;
  options.trace = trace;
  options.caller_computes = choices.caller_computes;
  if constexpr (requires { options.fork_server; }) options.fork_server = choices.fork_server;
  return options;
}

// The fresh methods record their pool's timeline into `trace` when one is given (sys/trace.hpp).

/// array_squared_sp: allocate the result (collect) and square in one loop (compute).
Squared square_sequentially(std::span<const double> input);
/// array_squared_mp: fork a pool (start), allocate a new shared result (collect), map with nothing to
/// copy (compute), stop the pool (stop). `input` lives in the pool's arena (the default one).
Squared square_with_fresh_processes(const SharedArray<double>& input, std::size_t workers, std::size_t chunksize,
                                    Trace* trace = nullptr, const PoolChoices& choices = {});
/// array_squared_mp_copy: fork a pool (start), copy in (move_in), map (compute), copy out into a new
/// vector (collect), stop: what moving data between processes costs when it is not born shared.
Squared square_with_fresh_processes_copying(std::span<const double> input, std::size_t workers, std::size_t chunksize,
                                            Trace* trace = nullptr, const PoolChoices& choices = {});
/// array_squared_threads: start threads, map (compute into a new vector: collect), join (stop).
Squared square_with_fresh_threads(std::span<const double> input, std::size_t workers, std::size_t chunksize,
                                  Trace* trace = nullptr, const PoolChoices& choices = {});
/// A warm pool, zero copy: input and output already live in the pool's arena; only compute is paid.
PhaseTimes square_with_warm_processes(ProcessPool& pool, const SharedArray<double>& input, SharedArray<double>& output,
                                      std::size_t chunksize);
/// Warm threads writing into the caller's buffer: only compute is paid.
PhaseTimes square_with_warm_threads(ThreadPool& pool, std::span<const double> input, std::span<double> output,
                                    std::size_t chunksize);

/// Bit-for-bit equality of two results (squaring is exact to IEEE rules, so no tolerance is due).
/// Checks for an interrupt as it goes (10^8 elements take a while on a slow VM).
bool same_values(std::span<const double> a, std::span<const double> b);

}  // namespace mpdemo
