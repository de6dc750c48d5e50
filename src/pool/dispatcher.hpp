// The Dispatcher: the master's half of the ProcessPool protocol (pool_worker.cpp is the other half).
//
// It owns the worker slots (process, pipes, chunks in flight), starts and replaces workers, hands the
// chunks of jobs out to them, and waits -- in one place, wait() -- for their answers and deaths, and
// for what may cut a wait short: an interrupt, a deadline, terminate().
//
// A job is one map: a plan of chunks and how far its handing out has got. Every chunk in flight is
// tagged with its job, and every answer is routed to the job it belongs to, so more than one job can
// be in flight at once: run(job) serves every active job while it waits for its own, and feeds an idle
// worker from the oldest job that still has chunks to hand out. ProcessPool runs one job at a time
// today; asynchronous submission adds jobs without changing this file's protocol.
#pragma once

#include "mpdemo/pool/chunk_plan.hpp"
#include "mpdemo/sys/child_process.hpp"
#include "mpdemo/sys/errors.hpp"
#include "mpdemo/sys/fd.hpp"
#include "pool_protocol.hpp"

#include <poll.h>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <vector>

namespace mpdemo::detail {

using Clock = std::chrono::steady_clock;

/// The pipe data path's ends: slices are written into the task pipes from `input`, results read back
/// from the reply pipes into `output`, as Python's Pool pickles them through its queues.
struct PipeTransfer {
  const std::byte* input;
  std::size_t input_element_bytes;
  std::byte* output;
  std::size_t output_element_bytes;
};

/// One map being carried out: its chunks, how far they have been handed out, and how it ended.
struct Job {
  Job(const TaskMessage& task, std::size_t elements, std::size_t chunksize, std::size_t workers,
      const PipeTransfer* pipe_transfer, std::chrono::milliseconds time_limit) noexcept
      : task_template(task), plan(elements, chunksize, workers), pipe(pipe_transfer), timeout(time_limit) {}

  TaskMessage task_template;          ///< everything but the chunk: kernel, where the data is
  ChunkPlan plan;                     ///< how [0, n) is cut into chunks
  const PipeTransfer* pipe;           ///< null: the data is in shared memory
  std::chrono::milliseconds timeout;  ///< map_timeout: MapTimeout this long after run() began; 0: none

  std::optional<Clock::time_point> deadline;  ///< when `timeout` runs out, set by run()

  std::uint64_t id = 0;                ///< given by the Dispatcher, unique over the pool's life
  std::uint64_t next_chunk = 0;        ///< the first chunk not yet handed out
  std::size_t outstanding = 0;         ///< chunks handed out and not yet answered
  std::size_t pipe_bytes = 0;          ///< everything this job wrote to or read from the pipes
  std::optional<WorkerError> failure;  ///< the first failure: no chunk is handed out after it
  bool lost_a_chunk = false;           ///< a worker died holding one of its chunks: stop at once

  /// Whether chunks remain to be handed out (none are after a failure).
  bool handing_out() const noexcept { return !failure && next_chunk < plan.count(); }
  /// Done: every chunk answered, or a failure and no chunk still out, or a chunk lost with its worker.
  bool finished() const noexcept { return lost_a_chunk || (outstanding == 0 && !handing_out()); }
};

/// One worker process and the master's ends of its two pipes.
struct WorkerSlot {
  struct Task {
    std::uint64_t job;
    std::uint64_t chunk;
  };
  ChildProcess process;
  FileDescriptor tasks;        ///< the master writes tasks here
  FileDescriptor replies;      ///< and reads the worker's answers here
  std::deque<Task> in_flight;  ///< tasks sent and not yet answered, oldest first
  int cpu = -1;                ///< the CPU it is pinned to; -1: not pinned
};

class Dispatcher {
 public:
  struct Settings {
    std::chrono::microseconds spin;           ///< how long waits poll before they sleep
    std::chrono::milliseconds start_timeout;  ///< how long a new worker may take to say it is ready
  };
  /// One empty slot per entry of `cpus`, the CPU its worker is pinned to (-1: not pinned);
  /// start_missing() forks the workers.
  Dispatcher(Settings settings, std::vector<int> cpus);
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;
  ~Dispatcher();

  std::size_t size() const noexcept { return workers_.size(); }
  const std::vector<WorkerSlot>& workers() const noexcept { return workers_; }

  /// Forks a worker for every empty slot (all of them, the first time; afterwards those whose worker
  /// died or was killed) and waits until each says it is ready.
  void start_missing();
  /// Carries `job` out: hands its chunks to the workers and serves every answer until it is finished.
  /// Throws the job's WorkerError, MapTimeout, PoolTerminated, Interrupted or DeadlineExceeded. A
  /// death or any exception leaves the job half-way: abandon_in_flight() must follow.
  void run(Job& job);
  /// SIGKILLs and reaps every worker that still holds a task: after an exception leaves a job
  /// half-way, none of them may write into memory the unwinding is about to free.
  void abandon_in_flight() noexcept;
  /// SIGKILLs and reaps every worker (terminate()).
  void kill_all() noexcept;
  /// Stops every worker (end-of-file on its task pipe; SIGKILL if it is mid-chunk or does not leave
  /// within a second) and reaps it; the slots are gone.
  void stop() noexcept;

  /// terminate() from another thread: every wait in progress or to come throws PoolTerminated.
  void request_termination() noexcept;
  bool termination_requested() const noexcept { return terminated_.load(); }

 private:
  enum class Wake { readable, timed_out, spurious };

  // Workers.
  void start_worker(std::size_t index);
  /// SIGKILLs and reaps the worker of `index`, and empties its slot.
  void discard(std::size_t index) noexcept;
  /// Reaps the dead worker of `index`, empties its slot, and fails the jobs whose chunks it held.
  void bury(std::size_t index);

  // Handing out.
  /// Tops `index` up with chunks of the active jobs, oldest job first, up to its depth.
  void feed(std::size_t index);
  /// Sends worker `index` the next chunk of `job`. Returns false if the worker was found dead (it
  /// died idle: it is replaced at once, unless it held a chunk, and the chunk goes to the replacement).
  bool hand_out(Job& job, std::size_t index);
  /// Tasks a worker may hold at once for `job`.
  static std::size_t depth(const Job& job) noexcept;

  // Answers.
  /// The one wait: polls poll_set_'s first `watched` descriptors, the terminate pipe and the
  /// interrupt wake-up, spinning first for `spin`. Throws Interrupted, DeadlineExceeded or
  /// PoolTerminated when one of those comes first; timed_out when `deadline` passed first.
  Wake wait(std::size_t watched, std::optional<Clock::time_point> deadline, std::chrono::microseconds spin);
  /// Throws what woke a wait on the interrupt or terminate descriptors, if anything did.
  void throw_if_stopped();
  /// Reads one answer of worker `index` (with the pipe path's results) and routes it to its job; a
  /// torn or missing answer means the worker died, and it is buried.
  void receive(std::size_t index);
  Job* active_job(std::uint64_t id) noexcept;

  Settings settings_;
  std::vector<WorkerSlot> workers_;
  std::vector<Job*> active_;  ///< jobs being run, oldest first
  std::uint64_t last_job_id_ = 0;
  std::atomic<bool> terminated_{false};
  Pipe terminate_wake_;
  // Reused by every wait, so that a warm map allocates nothing.
  std::vector<pollfd> poll_set_;
  std::vector<std::size_t> poll_owners_;
  std::vector<std::byte> discarded_payload_;
};

}  // namespace mpdemo::detail
