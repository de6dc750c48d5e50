// The state of one piece of work given to a pool, shared by the pool that runs it and the AsyncResult
// or imap range that waits for it. Internal to mpdemo: templates in the public headers need it, user
// code never does.
#pragma once

#include "mpdemo/pool/chunk_kernel.hpp"
#include "mpdemo/pool/chunk_plan.hpp"
#include "mpdemo/pool/detail/chunk_queue.hpp"
#include "mpdemo/pool/task.hpp"
#include "mpdemo/sys/errors.hpp"
#include "mpdemo/sys/trace.hpp"

#include <unistd.h>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <vector>

namespace mpdemo::detail {

using Clock = std::chrono::steady_clock;
using Deadline = std::optional<Clock::time_point>;

/// What a worker process is told to do with one chunk (process pools).
struct ChunkOrder {
  // The element path: `kernel` over arrays in memory both processes map, at the same addresses...
  ChunkKernel kernel{};
  const void* input = nullptr;
  void* output = nullptr;
  std::size_t input_element_bytes = 0;
  std::size_t output_element_bytes = 0;
  // ... or over the chunk's slice written into the task pipe, its results read back from the reply
  // pipe into `output` (the data path Python's Pool uses, kept to measure it).
  bool through_pipe = false;
  // The serialized path: `serial` over the chunk's serialized elements, in shared memory.
  SerialKernel serial{};
  std::span<const std::byte> serialized_input{};
};

enum class ChunkState : std::uint8_t { pending, done, failed };

/// One job: a plan of chunks, how far they have been handed out, and how each ended. Everything but
/// `finished` is guarded by the pool that runs the job (its lock, or its one driving thread).
class JobState {
 public:
  /// `caller_joins`: the thread that waits for the job computes a share too (PoolOptions::caller_computes):
  /// the chunks are cut for a team of workers + 1, the caller's region being the last.
  JobState(std::size_t elements, std::size_t chunksize, std::size_t workers, bool stop_at_first_failure,
           bool caller_joins = false)
      : plan(elements, chunksize, workers + (caller_joins ? 1 : 0)),
        fail_fast(stop_at_first_failure),
        // A job decided by its first failure is one whose whole result is wanted at once (map,
        // map_into): its chunks go out by worker region. imap's are wanted in order, as they end.
        handout(stop_at_first_failure ? ChunkQueue::Order::by_worker_region : ChunkQueue::Order::in_order),
        caller_region(caller_joins ? std::optional<std::size_t>(workers) : std::nullopt),
        unstarted(plan.count(), workers + (caller_joins ? 1 : 0), handout),
        chunk_states(plan.count(), ChunkState::pending) {}
  JobState(const JobState&) = delete;
  JobState& operator=(const JobState&) = delete;
  virtual ~JobState() = default;

  ChunkPlan plan;
  /// The first failure decides the job at once (map, apply), or every chunk is waited for and each
  /// failure stays at its place (imap, as Python's imap raises at the failed task's position).
  bool fail_fast;
  ChunkQueue::Order handout;  ///< how its chunks go out
  /// The caller's own region when it computes a share (PoolOptions::caller_computes); none when it
  /// only waits, as Python's Pool's caller does.
  std::optional<std::size_t> caller_region;
  /// Results are written into memory the caller owns (map_into): after a failure the job is decided
  /// only once no chunk is still out, since the caller may free that memory as soon as it returns.
  bool caller_owned_memory = false;
  /// A worker holds one of this job's tasks at a time, instead of two (see Dispatcher::depth): on the
  /// pipe data path, and for jobs whose tasks are wanted as they end (imap, apply), so that none waits
  /// in a busy worker's pipe while another worker is idle.
  bool one_task_per_worker = false;

  std::uint64_t id = 0;  ///< given by the pool, unique over its life
  ChunkQueue unstarted;  ///< the chunks not yet handed out, and which one each worker gets next
  /// Process pools, by region, over arrays in shared memory: who of the team ran which chunk of these
  /// arrays before, shared with the pool's later maps over them (it decides which steals pay).
  std::shared_ptr<ChunkLocality> locality;
  std::size_t outstanding = 0;  ///< chunks handed out and not yet answered
  std::size_t ended = 0;        ///< chunks done or failed
  std::vector<ChunkState> chunk_states;
  std::vector<std::size_t> completion_order;  ///< chunks in the order they ended (imap_unordered)
  std::map<std::size_t, std::exception_ptr> chunk_failures;
  std::deque<std::size_t> retry;  ///< chunks to hand out again (their worker was killed for another job's sake)
  bool lost_a_chunk = false;      ///< a worker died holding one of its chunks
  std::size_t pipe_bytes = 0;     ///< process pools: everything written to or read from the pipes for it
  std::exception_ptr failure;     ///< the first failure
  bool abandoned = false;         ///< nobody wants the results: hand out no more
  std::optional<Clock::time_point> deadline;  ///< map_timeout: MapTimeout after this
  std::function<void()> callbacks;            ///< run by the pool once the job is concluded
  bool concluded = false;                     ///< decided, value assembled; announce() follows

  /// Set once the outcome is known, the value (or failure) is in place and the callbacks have run;
  /// then never changes. The only field anyone may read without the pool's lock.
  std::atomic<bool> finished{false};

  bool handing_out() const noexcept {
    return !abandoned && !(fail_fast && failure) && (!retry.empty() || !unstarted.empty());
  }
  /// Whether `member` of the team may be handed a chunk now: one to run again, or one the steal rule
  /// lets it have (ChunkQueue).
  bool handing_out_to(std::size_t member) const {
    return handing_out() && (!retry.empty() || unstarted.has_for(member, locality.get()));
  }
  /// The next chunk `member` is handed from `unstarted` (handing_out_to(member), retry empty).
  std::size_t next_for(std::size_t member) const { return unstarted.peek(member, locality.get()); }
  /// Takes that chunk out of `unstarted`.
  void take_for(std::size_t member) { unstarted.take(member, locality.get()); }
  /// `member` ran `chunk` well in `ns`: what the next maps over the same arrays know of its pages.
  void chunk_ran(std::size_t chunk, std::size_t member, std::int64_t ns) {
    if (locality) locality->record(member, chunk, ns, plan[chunk].size());
  }
  /// Nothing out, and nothing more to hand out.
  bool settled() const noexcept { return outstanding == 0 && !handing_out(); }
  /// Whether the outcome is known (conclude_if_decided() follows).
  bool decided() const noexcept {
    if (ended == plan.count()) return true;
    if (abandoned) return outstanding == 0;
    if (!failure || !fail_fast) return false;
    return !caller_owned_memory || outstanding == 0 || lost_a_chunk;
  }

  /// Records that `chunk` was answered with its results in place.
  void chunk_done(std::size_t chunk) {
    if (chunk_states[chunk] != ChunkState::pending) return;
    chunk_states[chunk] = ChunkState::done;
    ++ended;
    completion_order.push_back(chunk);
  }
  /// Records that `chunk` failed with `error` (the first failure is the job's).
  void chunk_failed(std::size_t chunk, std::exception_ptr error) {
    if (chunk_states[chunk] != ChunkState::pending) return;
    chunk_states[chunk] = ChunkState::failed;
    ++ended;
    completion_order.push_back(chunk);
    chunk_failures.emplace(chunk, error);
    if (!failure) failure = std::move(error);
  }
  /// The caller's next chunk (caller_region): from the front of its own region, then, as a worker
  /// does, from the back of the fullest other one (a worker that wakes late is helped); counted as
  /// out. None once there is nothing left to hand out, or after a failure that decides the job.
  std::optional<std::size_t> take_for_caller() {
    // The caller is the process the arrays were made in: no steal is new to its page tables.
    if (!caller_region || !handing_out() || unstarted.empty()) return std::nullopt;
    const std::size_t chunk = unstarted.take(*caller_region);
    ++outstanding;
    return chunk;
  }
  /// Whether a chunk already handed to a worker, not yet begun, may be taken back for the caller to run
  /// once nothing is left to take (ProcessPool's Dispatcher::take_back): the caller computes a share,
  /// and nothing has decided the job.
  bool may_take_back_for_caller() const noexcept { return caller_region && may_hand_out_again(); }
  /// Whether a chunk handed to one worker, not yet begun, may go to another that is idle (Dispatcher's
  /// rebalancing) or to the caller: nothing has decided the job.
  bool may_hand_out_again() const noexcept { return !abandoned && !(fail_fast && failure); }
  /// Whether `chunk`, held by a worker busy with another, is better run by idle `member`: where
  /// `member` ran it before over these arrays, or where, new to it, it costs no more than its owner
  /// would still take to end it (half the chunk it is busy with, on average, then this one: 1.5
  /// chunks), by the locality's measure; while that is unmeasured, or without a locality, it moves.
  bool worth_moving(std::size_t chunk, std::size_t member) const {
    constexpr double kOwnersChunksLeft = 1.5;
    return !locality || locality->ran_before(member, chunk) ||
           ChunkLocality::new_chunk_pays(locality->new_over_known_cost(), kOwnersChunksLeft);
  }
  /// How a chunk taken by take_for_caller() (or taken back for the caller) ended (null `error`:
  /// done). Nothing if the whole job was failed meanwhile (terminate() from another thread:
  /// fail_the_rest already counted it back).
  void caller_chunk_ended(std::size_t chunk, std::exception_ptr error) {
    if (chunk_states[chunk] != ChunkState::pending) return;
    --outstanding;
    if (error) {
      chunk_failed(chunk, std::move(error));
    } else {
      chunk_done(chunk);
    }
  }
  /// Fails every chunk not yet ended (terminate(), a pool destroyed): `finished` follows.
  void fail_the_rest(const std::exception_ptr& error) {
    for (std::size_t c = 0; c < chunk_states.size(); ++c) chunk_failed(c, error);
    outstanding = 0;
    unstarted.drain();
    retry.clear();
  }

  // ---- What a pool asks of the typed job ----
  /// Process pools: what a worker is told to do with `chunk`.
  virtual ChunkOrder order(std::size_t /*chunk*/) { throw std::logic_error("this job does not run in processes"); }
  /// Process pools: `chunk` was done; `results` are its serialized results (empty on the element path,
  /// where they are already in place). Throws if they cannot be read: the chunk then fails.
  virtual void store(std::size_t /*chunk*/, std::span<const std::byte> /*results*/) {}
  /// Thread pools, and a caller computing its share: runs `chunk` in the calling thread, results in
  /// place. Throws what fn throws.
  virtual void run_here(std::size_t /*chunk*/) { throw std::logic_error("this job does not run in threads"); }
  /// Once every chunk is done (no failure): assemble the value, before anyone is told it is finished.
  virtual void complete() {}
};

/// Runs `chunk` of `job` in the calling thread, results in place (a ThreadPool's thread, or a caller
/// computing its share), under the process pool's contract: fn's exception becomes a WorkerError naming
/// `worker` (this process's pid) and the chunk; mpdemo's own errors (an interrupt, a deadline) stay
/// what they are. Returns the failure; null if the chunk was done.
inline std::exception_ptr run_chunk_here(JobState& job, std::size_t chunk, std::size_t worker) {
  const ChunkRange range = job.plan[chunk];
  const bool in_caller = job.caller_region == worker;
  try {
    job.run_here(chunk);
    return nullptr;
  } catch (const Error&) {
    return std::current_exception();
  } catch (const std::exception& e) {
    return std::make_exception_ptr(WorkerError(worker, ::getpid(), range.begin, range.end, e.what(), in_caller));
  } catch (...) {
    return std::make_exception_ptr(WorkerError(worker, ::getpid(), range.begin, range.end,
                                               "an exception not derived from std::exception", in_caller));
  }
}

/// run_chunk_here, the chunk a span on the calling thread's track of `trace` (when there is one): how a
/// ThreadPool's thread and a caller computing its share (worker caller_region) record their chunks.
inline std::exception_ptr run_chunk_traced(JobState& job, std::size_t chunk, std::size_t worker, Trace* trace) {
  const std::int64_t began = trace != nullptr ? monotonic_ns() : 0;
  std::exception_ptr error = run_chunk_here(job, chunk, worker);
  if (trace != nullptr)
    trace->add(trace->this_thread(), "chunk", "chunk", began, monotonic_ns(), current_cpu(),
               static_cast<std::int64_t>(chunk));
  return error;
}

/// Once the job is decided (the pool's lock held): assembles the value (complete(), when nothing
/// failed; if that throws, that is the job's failure) and marks it concluded. True exactly once: the
/// pool then calls announce() on it, outside its lock.
inline bool conclude_if_decided(JobState& job) {
  if (job.concluded || !job.decided()) return false;
  if (!job.failure && !job.abandoned) {
    try {
      job.complete();
    } catch (...) {
      job.failure = std::current_exception();
    }
  }
  job.concluded = true;
  return true;
}

/// Runs the job's callbacks, then lets every waiter see it finished. Outside the pool's lock, so a
/// callback may give the pool more work.
inline void announce(JobState& job) noexcept {
  if (job.callbacks) {
    try {
      job.callbacks();
    } catch (...) {  // the callbacks a pool builds catch their own; this is the last guard
      if (!job.failure) job.failure = std::current_exception();
    }
  }
  job.finished.store(true, std::memory_order_release);
}

/// What a result waits through: the pool that runs its job.
class Driver {
 public:
  virtual ~Driver() = default;
  /// Makes progress (a process pool reads answers and hands out chunks; a thread pool's threads need
  /// nothing) until `done()` holds or `deadline` passes; returns done(). `done` is evaluated while the
  /// pool's state is consistent. Throws Interrupted, DeadlineExceeded, or a system error.
  virtual bool drive_until(const std::function<bool()>& done, Deadline deadline) = 0;
  /// Nobody wants `job`'s results any more: no more of its chunks are handed out; those out finish.
  virtual void abandon(const std::shared_ptr<JobState>& job) noexcept = 0;
};

/// A job whose results are a vector of R, one per element, filled in place as chunks end.
template <class R>
class ResultsJob : public JobState {
 public:
  using JobState::JobState;
  std::vector<R> results;
};

}  // namespace mpdemo::detail
