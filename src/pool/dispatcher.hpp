// The Dispatcher: the master's half of the ProcessPool protocol (pool_worker.cpp is the other half).
//
// It owns the worker slots (process, pipes, chunks in flight, result buffer), starts, retires and
// replaces workers, hands the chunks of jobs out to them, and waits -- in one place, wait() -- for
// their answers and deaths, and for what may cut a wait short: an interrupt, a deadline, terminate(),
// or new work handed out by another thread (kick()).
//
// Jobs (detail::JobState) are in flight together: every task is tagged with its job and chunk, every
// answer is routed to its job, and an idle worker is fed from the oldest job that still has chunks.
// A job leaves once it is finished and nothing of it is out. The Dispatcher is not thread-safe: the
// ProcessPool lets one thread at a time use it (see process_pool.cpp).
#pragma once

#include "mailbox.hpp"
#include "mpdemo/pool/detail/job.hpp"
#include "mpdemo/pool/shared_arena.hpp"
#include "mpdemo/sys/child_process.hpp"
#include "mpdemo/sys/errors.hpp"
#include "mpdemo/sys/fd.hpp"
#include "mpdemo/sys/spawn.hpp"
#include "mpdemo/sys/trace.hpp"
#include "pool_protocol.hpp"

#include <poll.h>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <vector>

namespace mpdemo::detail {

/// One worker process and the master's ends of its two pipes.
struct WorkerSlot {
  struct Task {
    std::uint64_t job;
    std::uint64_t chunk;
    std::byte* result_buffer;  ///< where a serialized task writes its results (the half it was given)
    /// With a mailbox: its number in the order tasks were posted to this process (without one,
    /// nothing is taken back, and this is never read).
    std::uint64_t number;
    /// An element task with nothing following it in the task pipe: Dispatcher::take_back may take it.
    bool in_place;
  };
  ChildProcess process;
  FileDescriptor tasks;    ///< the master writes tasks here
  FileDescriptor replies;  ///< and reads the worker's answers here
  // With Settings::mailboxes, the messages themselves go through the worker's mailbox; `tasks` and
  // `replies` only carry bytes that follow a message, and two more pipes carry nothing but doorbells
  // (and end-of-file), so that a doorbell never lands among such bytes.
  MailboxMapping mailbox;
  RingWriter<TaskMessage> task_ring;
  RingReader<ReplyMessage> reply_ring;
  FileDescriptor task_bell;      ///< the master rings the sleeping worker here
  FileDescriptor reply_bell;     ///< and is rung here when it sleeps
  bool hung_up = false;          ///< end-of-file seen on `reply_bell`: once its ring is read, it is buried
  bool look_owed = false;        ///< a task was published: a look for a sleeping worker is owed
  std::deque<Task> in_flight;    ///< tasks sent and not yet answered, oldest first
  int cpu = -1;                  ///< the CPU it is pinned to; -1: not pinned
  std::size_t trace_track = 0;   ///< its track in Settings::trace (named when it starts, with a trace)
  std::size_t tasks_handed = 0;  ///< to this process, for maxtasksperchild
  std::int64_t launched_ns = 0;  ///< when it was forked (monotonic_ns), for the trace's "start" span
  /// Where the worker writes serialized results: two halves, used in turn (a worker holds at most two
  /// tasks, and the master reads each result before it sends the task after next).
  SharedArray<std::byte> result_buffer;
  std::size_t result_half = 0;  ///< bytes in each half
  std::size_t next_half = 0;    ///< which half the next serialized task writes
  std::size_t wanted_half = 0;  ///< a result came through the pipe for lack of room: grow to this

  /// End-of-file for the worker: it leaves once it has read what it was sent.
  void close_task_side() noexcept {
    look_owed = false;  // nobody is left to ring
    if (Mailbox* box = mailbox.get()) box->closing.store(1, std::memory_order_release);
    tasks.reset();
    task_bell.reset();
  }
  void close_reply_side() noexcept {
    replies.reset();
    reply_bell.reset();
    hung_up = false;
  }
};

class Dispatcher {
 public:
  struct Settings {
    std::chrono::microseconds spin;                      ///< how long waits poll before they sleep
    std::chrono::microseconds spin_limit;                ///< how long an idle worker's spin may grow
    PoolOptions::SpinStyle spin_style;                   ///< between two looks of a spin, here and in workers
    std::chrono::milliseconds start_timeout;             ///< how long a new worker may take to say it is ready
    std::size_t maxtasksperchild = 0;                    ///< a worker is retired after this many tasks; 0: never
    const std::function<void()>* initializer = nullptr;  ///< run in each new worker
    std::shared_ptr<SharedArena> arena;                  ///< where result buffers come from
    Trace* trace = nullptr;                              ///< records starts, chunks and stops; null: off
    bool mailboxes = true;  ///< messages through shared-memory rings (mailbox.hpp); false: through the pipes
    /// Forks the workers instead of this process (ProcessPoolOptions::fork_server); null: this process.
    ForkServer* fork_server = nullptr;
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
  /// died, was killed or retired) and waits until each says it is ready. Throws WorkerError if a
  /// worker's initializer threw, std::runtime_error if one did not start in time.
  void start_missing();
  /// Takes `job` on: gives it its id and hands out its first chunks, round-robin over the workers.
  void submit(const std::shared_ptr<JobState>& job);
  /// One wait for answers, until `deadline` at the latest, and everything that follows from them:
  /// results stored, chunks handed out, workers retired or buried. Appends the jobs that concluded to
  /// `finished` (the caller announces them, outside its lock). Returns false if the deadline
  /// passed first. Throws Interrupted, DeadlineExceeded or PoolTerminated when one of those comes.
  /// `unlock`/`relock` are called around the blocking part, so other threads may submit meanwhile.
  enum class Served {
    progress,   ///< answers were read, or something else happened: look again
    timed_out,  ///< the deadline passed first
    idle,       ///< nothing is out and nothing is to be handed out: nothing to wait for here
  };
  Served serve(Deadline deadline, std::vector<std::shared_ptr<JobState>>& finished,
               const std::function<void()>& unlock = {}, const std::function<void()>& relock = {});
  /// A caller computing its share (PoolOptions::caller_computes) has nothing left to take: takes back
  /// a task of `job` that a worker holds and has not begun (the worker is still busy with the one
  /// before, or not yet awake), for the caller to run. Its chunk stays counted as out, as one from
  /// JobState::take_for_caller is. None if no such task is left unbegun, or the messages go through
  /// the pipes (only a mailbox lets the two sides agree who has a task, Mailbox::tasks_claimed).
  std::optional<std::size_t> take_back(JobState& job) noexcept;
  /// Nobody wants `job`'s results: none of its chunks is handed out any more.
  void abandon(JobState& job) noexcept;
  /// SIGKILLs and reaps every worker that holds a chunk of `job` (all jobs with null): after an
  /// exception leaves a job that writes into the caller's memory, no worker may go on writing there.
  void abandon_in_flight(const JobState* job = nullptr) noexcept;
  /// Fails every job still in flight with `error` (terminate(), destruction); appends them to `finished`.
  void fail_all(const std::exception_ptr& error, std::vector<std::shared_ptr<JobState>>& finished) noexcept;
  /// Whether any job is in flight.
  bool busy() const noexcept { return !active_.empty(); }
  /// SIGKILLs and reaps every worker (terminate()).
  void kill_all() noexcept;
  /// Stops every worker (end-of-file on its task pipe; SIGKILL if it is mid-chunk or does not leave
  /// within a second) and reaps it; the slots stay, empty.
  void stop() noexcept;

  /// terminate() from another thread: every wait in progress or to come throws PoolTerminated.
  void request_termination() noexcept;
  bool termination_requested() const noexcept { return terminated_.load(); }
  /// Wakes a serve() blocked in another thread: new work was given.
  void kick() noexcept;
  /// Rings the doorbell of every worker that was published a task and sleeps (the look each task
  /// owes, see mailbox.hpp): before the master waits for anything, and as it leaves submit() or
  /// serve(). A doorbell that cannot be written is a dead worker's, found dead on its reply side.
  /// Throws only if SIGPIPE cannot be blocked, before that worker's flag is touched: its look stays
  /// owed, and the next call (at the latest before the next wait) meets the same error.
  void ring_sleeping_workers();

 private:
  enum class Wake { readable, timed_out, spurious };

  // Workers.
  /// Prepares (prepare_launch) and forks (launch_workers) the worker of `index`, and waits until it is
  /// ready (await_ready).
  void start_worker(std::size_t index);
  /// What a worker is forked with: its pipes, and what spawn keeps open for it.
  struct Launch {
    std::size_t index;
    Pipe tasks;
    Pipe replies;
    Pipe task_bell;
    Pipe reply_bell;
    SpawnOptions options;
  };
  /// Empties slot `index` and makes its fresh pipes and mailbox, everything its fork needs.
  Launch prepare_launch(std::size_t index);
  /// Forks the workers `launches` were prepared for, all of them before any is waited for, and keeps
  /// the master's ends of their pipes. If one cannot be forked, the others are killed and reaped, and
  /// the error is thrown.
  void launch_workers(std::vector<Launch>& launches);
  /// Keeps the worker forked for `launch` in its slot, with the master's ends of its pipes.
  void keep_launched(Launch& launch, ChildProcess process);
  /// Waits for the "ready" of the worker launched in `index`. Throws WorkerError if its initializer
  /// threw, std::runtime_error if it died or was not ready within start_timeout (it is then reaped).
  void await_ready(std::size_t index);
  /// SIGKILLs and reaps the worker of `index`, and empties its slot; its chunks fail as lost.
  void discard(std::size_t index) noexcept;
  /// Reaps the dead worker of `index`, empties its slot, and fails the chunks it held.
  void bury(std::size_t index);
  /// Ends a worker that has done its maxtasksperchild tasks (end-of-file, then reaped), and starts its
  /// replacement.
  void retire(std::size_t index);
  /// Fails the first `started` chunks of `lost`, held by a worker that ended as `how`, and hands out
  /// the others again.
  void lose(std::size_t index, pid_t pid, const std::deque<WorkerSlot::Task>& lost, std::size_t started,
            const std::string& how);

  // Handing out.
  /// Tops `index` up with chunks of the active jobs, oldest job first, up to its depth; a worker left
  /// with nothing is handed a task another holds behind a busy one (rebalance).
  void feed(std::size_t index);
  /// Worker `idle` holds nothing, and a job has no chunk left to hand out: takes back a task of that
  /// job another worker holds behind the one it is busy with, and hands it to `idle`. Each worker
  /// holds two tasks (kTasksInFlight), so without this a region's last chunk is committed to its
  /// worker while it is still busy, and a worker that finishes early waits for the slower one instead
  /// of taking more. Looked at when `idle` answers its last task (feed).
  void rebalance(std::size_t idle);
  /// Claims the oldest unclaimed task of `job` some worker holds (behind a busy one, or the first one
  /// of a worker not yet awake), if its worker has not begun it: out of that worker's list, still
  /// counted as out. Only with a mailbox (Mailbox::tasks_claimed), for tasks with results in place;
  /// for worker `for_worker`, only a chunk JobState::worth_moving to it.
  std::optional<std::size_t> claim_held_task(JobState& job, bool behind_another,
                                             std::optional<std::size_t> for_worker = std::nullopt) noexcept;
  /// Sends worker `index` the next chunk of `job`. Returns false if the worker was found dead (it died
  /// idle: it is replaced at once, unless it held a chunk, and the chunk goes to the replacement).
  /// Found dead here only where a write can fail (control over pipes, a slice following the task);
  /// through a mailbox a task is published, and a death shows on the reply side (a hang-up), where
  /// bury() gives the tasks it never took to the others.
  bool hand_out(JobState& job, std::size_t index);
  /// Tasks a worker may hold at once for `job`.
  static std::size_t depth(const JobState& job);
  /// Whether worker `index` may be given more work now.
  bool can_take(std::size_t index) const noexcept;
  /// A result buffer half for a serialized task to `index`; capacity 0 when none can be had.
  std::pair<std::byte*, std::size_t> result_space(WorkerSlot& slot) noexcept;

  /// Names the trace track of worker `index`'s new process (Settings::trace must be set).
  std::size_t name_trace_track(std::size_t index);

  // Answers.
  /// The one wait: polls poll_set_'s first `watched` descriptors, the wake-up pipe and the interrupt
  /// wake-up, spinning first for `spin`.
  Wake wait(std::size_t watched, Deadline deadline, std::chrono::microseconds spin);
  /// Waits until a worker of poll_owners_ answers or hangs up, and lists them in answered_: through
  /// the pipes (wait()), or, with mailboxes, spinning on their rings and then asleep on their doorbells.
  Wake wait_for_answers(Deadline deadline, std::chrono::microseconds spin);
  Wake wait_for_mailboxes(Deadline deadline, std::chrono::microseconds spin);
  /// Lists in answered_ the workers of poll_owners_ with an answer in their ring, or hung up.
  bool list_answered();
  /// With mailboxes, a master kept busy by other workers' answers (or spinning for long) does not
  /// sleep on a dead worker's doorbell: every kHangUpCheckNs it looks for hung-up doorbells without
  /// sleeping. True if it found one (and listed it in answered_).
  bool found_hang_ups();
  HangUpSchedule hang_up_looks_;
  void throw_if_stopped();
  /// Reads one answer of worker `index` and routes it to its job; a torn or missing answer means the
  /// worker died, and it is buried.
  void receive(std::size_t index);
  JobState* active_job(std::uint64_t id) noexcept;
  /// Moves jobs that became finished to `finished`, and drops jobs that are finished and settled.
  void collect(std::vector<std::shared_ptr<JobState>>& finished);
  /// Drops jobs that are finished and have nothing out.
  void drop_settled() noexcept;
  /// Lists in poll_owners_ the workers that hold tasks.
  void list_busy_workers();

  // Locality: which member of the team ran which chunk of the arrays mapped before (see ChunkQueue).
  /// The arrays a job's chunks read and write in shared memory, and how they are cut.
  struct ArraysKey {
    const void* input;
    const void* output;
    std::size_t size;
    std::size_t chunksize;
    auto operator<=>(const ArraysKey&) const = default;
  };
  /// The key of a job handed out by region whose chunks work on arrays in shared memory; none for the
  /// pipe and serialized paths, whose bytes are new every time.
  static std::optional<ArraysKey> arrays_of(JobState& job);
  /// Gives `job` what the pool knows of its arrays (kept for the kRememberedArrays mapped last), so
  /// that it steals only where stealing pays, and adds to it as its chunks end.
  void adopt_locality(JobState& job);
  static constexpr std::size_t kRememberedArrays = 16;
  struct RememberedArrays {
    std::shared_ptr<ChunkLocality> locality;
    std::uint64_t last_job;  ///< the last job over them: the least recent is forgotten first
  };

  Settings settings_;
  std::vector<WorkerSlot> workers_;
  std::map<ArraysKey, RememberedArrays> localities_;
  std::vector<std::shared_ptr<JobState>> active_;  ///< jobs in flight, oldest first
  std::uint64_t last_job_id_ = 0;
  std::atomic<bool> terminated_{false};
  Pipe wake_;  ///< a byte here ends a wait: terminate() or kick() (which one, the flags say)
  std::atomic<bool> kicked_{false};
  // Reused by every wait, so that a warm map allocates nothing.
  std::vector<pollfd> poll_set_;
  std::vector<std::size_t> poll_owners_;
  std::vector<std::size_t> answered_;  ///< filled by the answer waits: workers with news
  std::vector<std::byte> piped_results_;
};

}  // namespace mpdemo::detail
