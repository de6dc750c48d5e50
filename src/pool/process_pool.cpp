// The public face of the ProcessPool: its options and states (open, closed, terminated), who drives
// the workers when several threads wait, staging data into shared memory and out, the map's phases
// and traffic. The protocol with the workers is the Dispatcher's.
//
// One thread at a time drives (the `driving` role): it hands out work, waits in poll() -- with the
// lock released, so that other threads may submit (their jobs wait in `pending`, and a kick wakes the
// driver) -- and reads answers. Threads that wait meanwhile sleep on `changed`, and one of them takes
// the role when the driver's own wait is over. Only the role holder touches the worker slots.
#include "mpdemo/pool/process_pool.hpp"

#include "dispatcher.hpp"
#include "mpdemo/sys/errors.hpp"
#include "mpdemo/sys/interrupt.hpp"
#include "mpdemo/sys/topology.hpp"

#include <fmt/format.h>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <stdexcept>

namespace mpdemo {

namespace {

// A thread that waits for another's driving wakes at least this often, to answer an interrupt.
constexpr auto kWaiterCheck = std::chrono::milliseconds(100);

/// One map of trivially copyable values over arrays the map's caller owns (or staged for it): the
/// element kernel, in place.
class ElementJob final : public detail::JobState {
 public:
  /// `caller_joins`: the caller computes a share (PoolOptions::caller_computes; never on the pipe path,
  /// which exists to show the data moving between processes).
  ElementJob(const detail::ChunkOrder& order, std::size_t elements, std::size_t chunksize, std::size_t workers,
             bool caller_joins)
      : JobState(elements, chunksize, workers, /*fail_fast=*/true, caller_joins && !order.through_pipe), order_(order) {
    caller_owned_memory = true;
    one_task_per_worker = order.through_pipe;
  }
  detail::ChunkOrder order(std::size_t) override { return order_; }
  /// The caller's share: the same kernel over the same shared arrays, in the master.
  void run_here(std::size_t chunk) override {
    const ChunkRange range = plan[chunk];
    order_.kernel(order_.input, order_.output, range.begin, range.end);
  }

 private:
  detail::ChunkOrder order_;
};

/// SIGPIPE blocked for the whole of a pool call when its messages go through the pipes, so that a
/// dead worker gives EPIPE instead of killing the master. With mailboxes a call usually writes nothing,
/// and blocking would cost three system calls a call: the Dispatcher blocks it around its rare writes.
class CallSigpipeBlock {
 public:
  explicit CallSigpipeBlock(bool messages_over_pipes) {
    if (messages_over_pipes) block_.emplace();
  }

 private:
  std::optional<ScopedSigpipeBlock> block_;
};

}  // namespace

struct ProcessPool::Impl final : detail::Driver {
  Impl(std::shared_ptr<SharedArena> shared, const ProcessPoolOptions& options, std::vector<int> cpus)
      : arena(std::move(shared)),
        map_timeout(options.map_timeout),
        initializer(options.initializer),
        trace(options.trace),
        messages_over_pipes(options.control == ProcessPoolOptions::Control::pipes),
        caller_computes(options.caller_computes),
        fork_server(options.fork_server),
        dispatcher({options.spin, options.spin_limit, options.spin_style, options.start_timeout,
                    options.maxtasksperchild, &initializer, arena, trace,
                    options.control == ProcessPoolOptions::Control::shared_memory, fork_server.get()},
                   std::move(cpus)) {}

  std::shared_ptr<SharedArena> arena;
  std::chrono::milliseconds map_timeout;
  std::function<void()> initializer;  // before the dispatcher, which points at it
  Trace* trace;
  bool messages_over_pipes;
  bool caller_computes;
  std::shared_ptr<ForkServer> fork_server;  ///< before the dispatcher, which uses it; null: this process forks
  std::vector<int> worker_cpus;             ///< where each worker is pinned (-1: not pinned)

  mutable std::mutex mutex;
  std::condition_variable changed;  ///< the driver gave up the role, a job was announced or submitted
  bool driving = false;
  bool closed = false;
  std::vector<std::shared_ptr<detail::JobState>> pending;  ///< submitted while another thread drove
  detail::Dispatcher dispatcher;
  double startup_seconds = 0;

  bool drive_until(const std::function<bool()>& done, detail::Deadline deadline) override;
  void abandon(const std::shared_ptr<detail::JobState>& job) noexcept override;

  void submit(const std::shared_ptr<detail::JobState>& job);
  /// Runs a map over the caller's memory to its end: when this returns or throws, no worker is still
  /// busy with it.
  void run_to_end(const std::shared_ptr<detail::JobState>& job);
  /// PoolOptions::caller_computes: this thread runs chunks of `job` (its region first) until none is
  /// left to hand out. Throws an interrupt or a deadline that stopped its chunk (recorded first).
  void compute_callers_share(detail::JobState& job);
  void terminate() noexcept;
  void close();
  void join();
  /// The destructor's end: pending work fails, workers are stopped and reaped.
  void shut_down() noexcept;

 private:
  using Lock = std::unique_lock<std::mutex>;
  /// Waits until no other thread drives (kicking the driver out of its wait); `lock` held.
  void take_role(Lock& lock);
  /// Kills the workers and fails every job: terminate() carried out. `lock` held, role taken.
  void carry_out_termination(std::vector<std::shared_ptr<detail::JobState>>& finished) noexcept;
  /// Fails every job in flight or pending with `error`; `lock` held, role taken.
  void fail_everything(const std::exception_ptr& error,
                       std::vector<std::shared_ptr<detail::JobState>>& finished) noexcept;
  /// Announces `finished` jobs with the lock released, then wakes every waiter.
  void announce_all(Lock& lock, std::vector<std::shared_ptr<detail::JobState>>& finished) noexcept;
  /// One turn as the driver (`lock` held, nobody driving): jobs submitted meanwhile handed out, a
  /// requested termination carried out, or one wait for answers until `deadline`, the lock released
  /// while it blocks if `unlock_while_waiting`; what finished is announced.
  detail::Dispatcher::Served drive_once(Lock& lock, detail::Deadline deadline, bool unlock_while_waiting);
};

void ProcessPool::Impl::take_role(Lock& lock) {
  while (driving) {
    dispatcher.kick();
    changed.wait_for(lock, kWaiterCheck);
  }
}

void ProcessPool::Impl::announce_all(Lock& lock, std::vector<std::shared_ptr<detail::JobState>>& finished) noexcept {
  if (!finished.empty()) {
    lock.unlock();
    for (const auto& job : finished) detail::announce(*job);
    finished.clear();
    lock.lock();
  }
  changed.notify_all();
}

void ProcessPool::Impl::carry_out_termination(std::vector<std::shared_ptr<detail::JobState>>& finished) noexcept {
  dispatcher.kill_all();
  const auto error = std::make_exception_ptr(
      PoolTerminated("ProcessPool: terminate() was called: this work was cut short, and will never be done"));
  fail_everything(error, finished);
}

void ProcessPool::Impl::fail_everything(const std::exception_ptr& error,
                                        std::vector<std::shared_ptr<detail::JobState>>& finished) noexcept {
  dispatcher.fail_all(error, finished);
  for (const auto& job : pending) {
    job->fail_the_rest(error);
    if (detail::conclude_if_decided(*job)) finished.push_back(job);
  }
  pending.clear();
}

bool ProcessPool::Impl::drive_until(const std::function<bool()>& done, detail::Deadline deadline) {
  Lock lock(mutex);
  if (done()) return true;                                 // already there: no system call at all
  const CallSigpipeBlock no_sigpipe(messages_over_pipes);  // a dead worker must give EPIPE, not kill us
  for (;;) {
    if (done()) return true;
    const bool late = deadline && detail::Clock::now() >= *deadline;
    if (driving) {  // another thread drives: wait for its news
      if (late) return false;
      const auto until = detail::Clock::now() + kWaiterCheck;
      changed.wait_until(lock, deadline && *deadline < until ? *deadline : until);
      throw_if_interrupted();
      continue;
    }
    const detail::Dispatcher::Served served = drive_once(lock, deadline, /*unlock_while_waiting=*/true);
    if (served == detail::Dispatcher::Served::timed_out) return done();
    if (served == detail::Dispatcher::Served::idle && !done()) {
      // Nothing out: what this thread waits for comes from another (an announcement, a submission).
      if (late) return false;
      const auto until = detail::Clock::now() + kWaiterCheck;
      changed.wait_until(lock, deadline && *deadline < until ? *deadline : until);
      throw_if_interrupted();
    }
  }
}

detail::Dispatcher::Served ProcessPool::Impl::drive_once(Lock& lock, detail::Deadline deadline,
                                                         bool unlock_while_waiting) {
  std::vector<std::shared_ptr<detail::JobState>> finished;
  driving = true;
  detail::Dispatcher::Served served = detail::Dispatcher::Served::progress;
  try {
    if (dispatcher.termination_requested()) {
      carry_out_termination(finished);
    } else {
      for (const auto& job : pending) dispatcher.submit(job);
      pending.clear();
      if (unlock_while_waiting) {
        served = dispatcher.serve(
            deadline, finished, [&] { lock.unlock(); }, [&] { lock.lock(); });
      } else {
        served = dispatcher.serve(deadline, finished);
      }
    }
  } catch (const PoolTerminated&) {
    carry_out_termination(finished);
  } catch (...) {
    driving = false;
    announce_all(lock, finished);
    throw;
  }
  driving = false;
  announce_all(lock, finished);
  return served;
}

void ProcessPool::Impl::abandon(const std::shared_ptr<detail::JobState>& job) noexcept {
  const std::lock_guard lock(mutex);
  dispatcher.abandon(*job);  // only flags: safe while another thread drives
  std::erase(pending, job);
}

void ProcessPool::Impl::submit(const std::shared_ptr<detail::JobState>& job) {
  const CallSigpipeBlock no_sigpipe(messages_over_pipes);
  Lock lock(mutex);
  if (dispatcher.termination_requested()) {
    throw PoolTerminated("ProcessPool: terminate() was called: the pool takes no more work");
  }
  if (closed) throw PoolClosed("ProcessPool: close() was called: the pool takes no new work");
  if (driving) {  // the driver hands it out as soon as its wait is over
    pending.push_back(job);
    dispatcher.kick();
    return;
  }
  driving = true;
  try {
    dispatcher.start_missing();  // workers that died since the last job
    dispatcher.submit(job);
  } catch (...) {
    driving = false;
    changed.notify_all();
    throw;
  }
  driving = false;
  changed.notify_all();
}

void ProcessPool::Impl::compute_callers_share(detail::JobState& job) {
  if (!job.caller_region) return;
  // A caller sharing a core with a pinned worker while another core idles pays for it at every map
  // (measured here: 11 us a tiny map, against 3 us on a core of its own).
  const ScopedMoveOff off_the_workers(worker_cpus);
  std::optional<std::size_t> chunk;
  std::exception_ptr error;
  for (;;) {
    {
      Lock lock(mutex);
      if (chunk) {
        job.caller_chunk_ended(*chunk, error);
        chunk.reset();
        // Another thread driving concludes the job, if this decided it, once its wait ends: end it now.
        if (driving) dispatcher.kick();
        changed.notify_all();
      }
      if (error) {
        try {
          std::rethrow_exception(error);
        } catch (const WorkerError&) {  // fn threw: that decides the job, as a worker's failure does
        } catch (const Error&) {        // an interrupt or a deadline: run_to_end unwinds
          throw;
        }
      }
      // Between its chunks the caller drives if nobody else does: it reads the answers that came
      // meanwhile and tops the workers up, without waiting (a worker holds two chunks and must not run
      // dry while the caller computes). A driver in another thread does that itself; the job's state
      // is only ever touched with the lock held, so the caller does not wait for the role.
      if (!driving) drive_once(lock, detail::Clock::now(), /*unlock_while_waiting=*/false);
      // A job still waiting in `pending` (another thread was driving when it came) is not the
      // Dispatcher's yet: the workers alone will run it.
      if (job.id != 0) {
        chunk = job.take_for_caller();
        // Nothing left to hand out, but a worker may hold a task it has not begun: behind the one it
        // is busy with, or because it is still waking up (15-25 us on the project's VM, far more than
        // a small map's chunks). The caller, idle otherwise, runs it now. Only with the role: the
        // driver's state is its own while it waits.
        if (!chunk && !driving) chunk = dispatcher.take_back(job);
      }
    }
    if (!chunk) return;
    error = detail::run_chunk_traced(job, *chunk, *job.caller_region, trace);
  }
}

void ProcessPool::Impl::run_to_end(const std::shared_ptr<detail::JobState>& job) {
  detail::Deadline deadline;
  if (map_timeout.count() > 0) deadline = detail::Clock::now() + map_timeout;
  bool in_time = false;
  const CallSigpipeBlock no_sigpipe(messages_over_pipes);  // once for the map: the nested ones are free
  try {
    submit(job);
    compute_callers_share(*job);
    in_time = drive_until([&job] { return job->finished.load(std::memory_order_acquire); }, deadline);
  } catch (...) {
    // An interrupt, a deadline, a system error: workers may still be busy with chunks of this map,
    // and none of them may write into memory the unwinding is about to free.
    Lock lock(mutex);
    take_role(lock);
    dispatcher.abandon(*job);
    dispatcher.abandon_in_flight(job.get());
    throw;
  }
  if (!in_time || job->failure) {
    Lock lock(mutex);
    take_role(lock);
    dispatcher.abandon(*job);
    dispatcher.abandon_in_flight(job.get());  // a death, a timeout: the workers still busy are killed
  }
  if (!in_time) {
    throw MapTimeout(
        fmt::format("ProcessPool::map did not finish within {} ms (map_timeout): its busy workers were killed, and are "
                    "replaced at the next map",
                    map_timeout.count()));
  }
  if (job->failure) std::rethrow_exception(job->failure);
}

void ProcessPool::Impl::terminate() noexcept {
  Lock lock(mutex);
  if (dispatcher.termination_requested()) return;
  dispatcher.request_termination();  // a driver in its wait wakes, and carries it out
  if (driving) return;
  std::vector<std::shared_ptr<detail::JobState>> finished;
  carry_out_termination(finished);
  announce_all(lock, finished);
}

void ProcessPool::Impl::close() {
  const std::lock_guard lock(mutex);
  closed = true;
}

void ProcessPool::Impl::join() {
  {
    const std::lock_guard lock(mutex);
    if (!closed && !dispatcher.termination_requested()) {
      throw std::logic_error("ProcessPool::join: the pool is still running; call close() or terminate() first");
    }
  }
  // After close(): everything given is finished first (by this thread, if nobody else waits).
  drive_until([this] { return pending.empty() && !dispatcher.busy(); }, std::nullopt);
  Lock lock(mutex);
  take_role(lock);
  dispatcher.stop();
}

void ProcessPool::Impl::shut_down() noexcept {
  const ScopedSpan span(trace, "stop ProcessPool", "pool");
  Lock lock(mutex);
  while (driving) {  // another thread still waits on this pool: tell it to stop
    dispatcher.request_termination();
    changed.wait_for(lock, kWaiterCheck);
  }
  dispatcher.stop();  // busy workers are killed, idle ones leave on end-of-file
  std::vector<std::shared_ptr<detail::JobState>> finished;
  const auto error = std::make_exception_ptr(
      PoolTerminated("ProcessPool: the pool was destroyed before this work was done (its destructor terminates)"));
  fail_everything(error, finished);
  announce_all(lock, finished);
}

// ---- ProcessPool ---------------------------------------------------------------------------------

namespace {
ProcessPoolOptions with_workers(std::size_t workers) {
  ProcessPoolOptions options;
  options.workers = workers;
  return options;
}
}  // namespace

ProcessPool::ProcessPool(std::size_t workers) : ProcessPool(with_workers(workers)) {}

ProcessPool::ProcessPool(ProcessPoolOptions options) {
  const Stopwatch clock;
  const ScopedSpan span(options.trace, "start ProcessPool", "pool");
  const Topology& topology = system_topology();
  const std::size_t count = worker_count(options);
  options.spin_style = spin_style_for(options, count);
  std::vector<int> cpus(count, -1);
  if (options.pin_workers) {
    for (std::size_t i = 0; i < count; ++i) cpus[i] = topology.worker_cpu(i);
  }
  std::shared_ptr<SharedArena> arena = options.arena ? std::move(options.arena) : SharedArena::process_default();
  if (options.fork_server) {
    if (options.initializer) {
      throw BadArgument(
          "ProcessPool: an initializer cannot run in workers forked by a fork server: they are copies of the "
          "server, which never had it (run it at the start of fn instead, or fork the workers from this process)");
    }
    if (!options.fork_server->has_shared_mapping(arena->mapping_number())) {
      throw BadArgument(
          "ProcessPool: the pool's arena was made after its fork server started, so the workers the server forks "
          "would not have it: make the arena first (ProcessPool::start_fork_server makes the default one)");
    }
  }
  impl_ = std::make_shared<Impl>(std::move(arena), options, cpus);
  impl_->worker_cpus = std::move(cpus);
  impl_->dispatcher.start_missing();  // on failure, the dispatcher's destructor stops those started
  impl_->startup_seconds = clock.seconds();
}

std::shared_ptr<ForkServer> ProcessPool::start_fork_server() {
  static_cast<void>(SharedArena::process_default());  // before the server, so that the server has it
  return std::make_shared<ForkServer>();
}

ProcessPool::~ProcessPool() {
  if (impl_) impl_->shut_down();
}

ProcessPool::ProcessPool(ProcessPool&&) noexcept = default;

ProcessPool& ProcessPool::operator=(ProcessPool&& other) noexcept {
  if (this != &other) {
    if (impl_) impl_->shut_down();
    impl_ = std::move(other.impl_);
  }
  return *this;
}

std::size_t ProcessPool::size() const noexcept { return impl_ ? impl_->dispatcher.size() : 0; }

ProcessPool::Impl& ProcessPool::impl() const {
  if (!impl_) throw std::logic_error("ProcessPool: this pool was moved from; it has no workers");
  return *impl_;
}

std::vector<std::optional<pid_t>> ProcessPool::worker_pids() const {
  const Impl& state = impl();
  const std::lock_guard lock(state.mutex);
  std::vector<std::optional<pid_t>> pids;
  for (const detail::WorkerSlot& slot : state.dispatcher.workers()) {
    pids.push_back(slot.process.running() ? std::optional(slot.process.pid()) : std::nullopt);
  }
  return pids;
}

void ProcessPool::terminate() noexcept {
  if (impl_) impl_->terminate();
}

bool ProcessPool::terminated() const noexcept { return impl_ && impl_->dispatcher.termination_requested(); }

void ProcessPool::close() { impl().close(); }
void ProcessPool::join() { impl().join(); }
bool ProcessPool::closed() const noexcept {
  if (!impl_) return false;
  const std::lock_guard lock(impl_->mutex);
  return impl_->closed;
}

double ProcessPool::startup_seconds() const noexcept { return impl_ ? impl_->startup_seconds : 0.0; }
const std::shared_ptr<SharedArena>& ProcessPool::arena() const { return impl().arena; }

void ProcessPool::submit_job(const std::shared_ptr<detail::JobState>& job) { impl().submit(job); }

void ProcessPool::wait_for_job(detail::JobState& job) {
  impl().drive_until([&job] { return job.finished.load(std::memory_order_acquire); }, std::nullopt);
}

std::weak_ptr<detail::Driver> ProcessPool::driver_handle() const { return impl_; }

MapStats ProcessPool::execute(const Request& request, const std::function<void(const void*)>& collect) {
  Impl& state = impl();  // a moved-from pool throws here, before anything is touched
  MapStats stats;
  Stopwatch clock;
  PhaseMarks marks(state.trace);
  detail::ChunkOrder order;
  // Through the pipes a worker's results go to a buffer it reads back at once: cached stores there.
  order.kernel = request.data_path == DataPath::pipe ? request.kernel : request.kernel.for_elements(request.size);
  order.input_element_bytes = request.input_element_bytes;
  order.output_element_bytes = request.output_element_bytes;

  if (request.data_path == DataPath::pipe) {
    // Nothing is shared: slices travel through the pipes during compute, straight from the caller's
    // input and into the caller's output.
    order.input = request.input;
    order.output = request.output;
    order.through_pipe = true;
    const auto job =
        std::make_shared<ElementJob>(order, request.size, request.chunksize, size(), state.caller_computes);
    state.run_to_end(job);
    stats.phases.compute = clock.lap();
    marks.mark("compute (slices through the pipes)");
    stats.traffic.pipe_bytes = job->pipe_bytes;
    return stats;
  }

  SharedArena& arena = *state.arena;
  const std::size_t input_bytes = request.size * request.input_element_bytes;
  const std::size_t output_bytes = request.size * request.output_element_bytes;
  // Data the caller made in the arena is used where it is; anything else is copied in (and results
  // copied out), and that copy is the price of moving data between processes.
  SharedArray<std::byte> staged_input;
  order.input = request.input;
  if (request.size > 0 && !arena.contains(request.input, input_bytes)) {
    staged_input = SharedArray<std::byte>(state.arena, input_bytes);
    interruptible_copy(staged_input.data(), request.input, input_bytes);
    stats.traffic.copied_in_bytes = input_bytes;
    order.input = staged_input.data();
  }
  SharedArray<std::byte> staged_output;
  order.output = request.output;
  if (request.size > 0 && (request.output == nullptr || !arena.contains(request.output, output_bytes))) {
    staged_output = SharedArray<std::byte>(state.arena, output_bytes);
    order.output = staged_output.data();
  }
  stats.phases.move_in = clock.lap();
  marks.mark("move in");

  const auto job = std::make_shared<ElementJob>(order, request.size, request.chunksize, size(), state.caller_computes);
  state.run_to_end(job);
  stats.phases.compute = clock.lap();
  marks.mark("compute");
  stats.traffic.pipe_bytes = job->pipe_bytes;

  if (collect) {
    collect(order.output);
  } else if (staged_output.data() != nullptr) {
    interruptible_copy(request.output, staged_output.data(), output_bytes);
  }
  if (staged_output.data() != nullptr) stats.traffic.copied_out_bytes = output_bytes;
  staged_input = {};
  staged_output = {};
  stats.phases.collect = clock.lap();
  marks.mark("collect");
  return stats;
}

}  // namespace mpdemo
