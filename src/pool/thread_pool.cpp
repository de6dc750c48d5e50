// The ThreadPool: threads that take chunks of the jobs in flight, oldest job first, and run them in
// place. Its state is guarded by one mutex; a thread waiting for work first spins on a counter that
// every submission bumps (the same spin-then-sleep policy as the process pool), then sleeps.
#include "mpdemo/pool/thread_pool.hpp"

#include "mpdemo/pool/chunk_plan.hpp"
#include "mpdemo/sys/errors.hpp"
#include "mpdemo/sys/interrupt.hpp"
#include "mpdemo/sys/topology.hpp"
#include "mpdemo/sys/trace.hpp"
#include "spin_wait.hpp"

#include <fmt/format.h>
#include <unistd.h>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>

namespace mpdemo {

namespace {

// A thread waiting for a job wakes at least this often, to answer an interrupt.
constexpr auto kWaiterCheck = std::chrono::milliseconds(100);

/// A map over arrays the caller owns: the element kernel, in place.
class ElementJob final : public detail::JobState {
 public:
  ElementJob(const ChunkKernel& kernel, const void* input, void* output, std::size_t size, std::size_t chunksize,
             std::size_t workers, bool caller_joins)
      : JobState(size, chunksize, workers, /*fail_fast=*/true, caller_joins),
        kernel_(kernel),
        input_(input),
        output_(output) {
    caller_owned_memory = true;
  }
  void run_here(std::size_t chunk) override {
    const ChunkRange range = plan[chunk];
    kernel_(input_, output_, range.begin, range.end);
  }

 private:
  ChunkKernel kernel_;
  const void* input_;
  void* output_;
};

}  // namespace

struct ThreadPool::Impl final : detail::Driver {
  explicit Impl(PoolOptions chosen) : options(std::move(chosen)) {}

  PoolOptions options;
  mutable std::mutex mutex;
  std::condition_variable work_posted;   ///< threads wait here for work
  std::condition_variable changed;       ///< callers wait here for their jobs
  std::atomic<std::uint64_t> posted{0};  ///< bumped by every submission: what idle threads spin on
  std::vector<std::thread> threads;      ///< one per slot
  std::vector<int> cpus;                 ///< the CPU each slot's thread is pinned to (-1: none)
  std::vector<std::thread> retired;      ///< threads that ended after maxtasksperchild tasks: joined later
  std::deque<std::shared_ptr<detail::JobState>> active;  ///< oldest first
  std::uint64_t last_job_id = 0;
  bool stopping = false;
  bool closed = false;
  bool terminated = false;
  // Start-up: each thread runs the initializer, then reports.
  std::size_t started = 0;
  std::exception_ptr start_failure;

  bool drive_until(const std::function<bool()>& done, detail::Deadline deadline) override;
  void abandon(const std::shared_ptr<detail::JobState>& job) noexcept override;

  /// PoolOptions::caller_computes: the calling thread runs chunks of `job` (its region first) until
  /// none is left to hand out.
  void compute_callers_share(detail::JobState& job);
  /// Waits until `job` is finished: spinning on its flag first, then asleep (answering interrupts).
  void wait_finished(detail::JobState& job);
  /// Waits until no chunk of `job` runs any more, whatever else happens (no interrupt checks): a job
  /// over the caller's memory must not be written to once its call has returned.
  void wait_idle(detail::JobState& job) noexcept;
  void start(std::size_t index);
  /// A thread's life; `creating`: when it was asked for (monotonic_ns), the beginning of its "start" span.
  void serve(std::size_t index, std::int64_t creating);
  void submit(const std::shared_ptr<detail::JobState>& job);
  void fail_unstarted(const std::exception_ptr& error, std::unique_lock<std::mutex>& lock);
  void stop_threads() noexcept;

 private:
  /// The next chunk for `thread` of the oldest job that has one, taken; null if none.
  detail::JobState* take(std::size_t thread, std::size_t& chunk);
  /// Records how `chunk` of `job` ended; concludes and announces the job if that decided it.
  void record(detail::JobState& job, std::size_t chunk, std::exception_ptr error, std::unique_lock<std::mutex>& lock);
};

void ThreadPool::Impl::start(std::size_t index) {
  try {
    const std::int64_t creating = options.trace != nullptr ? monotonic_ns() : 0;
    threads[index] = std::thread([this, index, creating] { serve(index, creating); });
  } catch (const std::system_error& error) {
    const std::string hint = limit_hint(error.code().value());
    throw std::system_error(error.code(), fmt::format("start thread {} of {}{}", index, threads.size(),
                                                      hint.empty() ? "" : fmt::format(" ({})", hint)));
  }
}

detail::JobState* ThreadPool::Impl::take(std::size_t thread, std::size_t& chunk) {
  for (const auto& job : active) {
    if (!job->handing_out()) continue;
    if (!job->retry.empty()) {
      chunk = job->retry.front();
      job->retry.pop_front();
    } else {
      chunk = job->unstarted.take(thread);
    }
    ++job->outstanding;
    return job.get();
  }
  return nullptr;
}

void ThreadPool::Impl::record(detail::JobState& job, std::size_t chunk, std::exception_ptr error,
                              std::unique_lock<std::mutex>& lock) {
  --job.outstanding;
  if (error) {
    job.chunk_failed(chunk, std::move(error));
  } else {
    job.chunk_done(chunk);
  }
  const bool newly_concluded = detail::conclude_if_decided(job);
  const bool settled = job.concluded && job.outstanding == 0;  // its last chunk out is back: it leaves
  if (!newly_concluded && !settled) return;                    // nobody is waiting for news of a job still running
  std::shared_ptr<detail::JobState> concluded;
  for (const auto& held : active) {
    if (held.get() == &job && newly_concluded) concluded = held;
  }
  std::erase_if(active, [](const auto& held) { return held->concluded && held->outstanding == 0; });
  if (concluded && concluded->callbacks) {
    lock.unlock();
    detail::announce(*concluded);  // callbacks run in this thread, as in Python's result handler
    lock.lock();
  } else if (concluded) {
    detail::announce(*concluded);  // no callbacks: only the flag, under the lock
  }
  changed.notify_all();
}

void ThreadPool::Impl::serve(std::size_t index, std::int64_t creating) {
  pin_calling_thread(cpus[index]);  // best effort, as for processes
  std::size_t track = 0;
  if (options.trace != nullptr) {
    track =
        options.trace->this_thread(cpus[index] < 0 ? fmt::format("ThreadPool thread {} (tid {})", index, current_tid())
                                                   : fmt::format("ThreadPool thread {} (tid {}, pinned to CPU {})",
                                                                 index, current_tid(), cpus[index]));
  }
  std::unique_lock lock(mutex);
  if (options.initializer) {
    lock.unlock();
    std::exception_ptr failure;
    try {
      options.initializer();
    } catch (const std::exception& e) {
      failure = std::make_exception_ptr(
          WorkerError(index, ::getpid(), 0, 0, std::string("the pool's initializer threw: ") + e.what()));
    } catch (...) {
      failure = std::make_exception_ptr(WorkerError(index, ::getpid(), 0, 0, "the pool's initializer threw"));
    }
    lock.lock();
    if (failure) {
      if (!start_failure) start_failure = failure;
      ++started;
      changed.notify_all();
      return;
    }
  }
  ++started;
  changed.notify_all();
  if (options.trace != nullptr) options.trace->add(track, "start", "pool", creating, monotonic_ns(), current_cpu());

  std::size_t tasks = 0;
  detail::IdleSpin idle_spin(options.spin, options.spin_limit);
  for (;;) {
    std::size_t chunk = 0;
    detail::JobState* job = take(index, chunk);
    if (job == nullptr) {
      if (stopping) return;
      const std::uint64_t seen = posted.load();
      const std::int64_t waiting_since = monotonic_ns();
      lock.unlock();
      const bool spun =
          detail::spin_until([&] { return posted.load() != seen; }, idle_spin.current(), options.spin_style);
      lock.lock();
      const auto work_or_stop = [&] {
        return stopping || std::any_of(active.begin(), active.end(), [](const auto& j) { return j->handing_out(); });
      };
      // Asleep below also when the work it spun for went to another thread: that counts as a sleep.
      const bool sleeps = !work_or_stop();
      work_posted.wait(lock, work_or_stop);
      if (!spun || sleeps) {
        idle_spin.slept(monotonic_ns() - waiting_since);
      } else {
        idle_spin.caught_spinning();
      }
      continue;
    }
    lock.unlock();
    std::exception_ptr error = detail::run_chunk_traced(*job, chunk, index, options.trace);
    lock.lock();
    record(*job, chunk, std::move(error), lock);
    if (options.maxtasksperchild != 0 && ++tasks >= options.maxtasksperchild && !stopping) {
      // Retired: a new thread takes this slot (and runs the initializer); this one ends, joined later.
      retired.push_back(std::move(threads[index]));
      start(index);
      return;
    }
  }
}

void ThreadPool::Impl::submit(const std::shared_ptr<detail::JobState>& job) {
  {
    const std::lock_guard lock(mutex);
    if (terminated) throw PoolTerminated("ThreadPool: terminate() was called: the pool takes no more work");
    if (closed) throw PoolClosed("ThreadPool: close() was called: the pool takes no new work");
    job->id = ++last_job_id;
    active.push_back(job);
    if (detail::conclude_if_decided(*job)) {  // nothing to do (an empty input): finished at once
      std::erase(active, job);
      detail::announce(*job);
      return;
    }
    ++posted;
  }
  work_posted.notify_all();
}

bool ThreadPool::Impl::drive_until(const std::function<bool()>& done, detail::Deadline deadline) {
  // The threads make progress by themselves: waiting is all there is to do. (wait_finished spins on
  // a job's flag first; a spin here would take the lock the threads need to record their chunks.)
  std::unique_lock lock(mutex);
  while (!done()) {
    const auto until = detail::Clock::now() + kWaiterCheck;
    if (deadline && detail::Clock::now() >= *deadline) return false;
    changed.wait_until(lock, deadline && *deadline < until ? *deadline : until);
    lock.unlock();
    throw_if_interrupted();
    lock.lock();
  }
  return true;
}

void ThreadPool::Impl::compute_callers_share(detail::JobState& job) {
  if (!job.caller_region) return;
  const ScopedMoveOff off_the_threads(cpus);  // as for processes: a caller on a pinned thread's core pays
  std::unique_lock lock(mutex);
  while (const std::optional<std::size_t> chunk = job.take_for_caller()) {
    lock.unlock();
    std::exception_ptr error = detail::run_chunk_traced(job, *chunk, *job.caller_region, options.trace);
    lock.lock();
    record(job, *chunk, std::move(error), lock);
  }
}

void ThreadPool::Impl::wait_finished(detail::JobState& job) {
  if (detail::spin_until([&] { return job.finished.load(std::memory_order_acquire); }, options.spin,
                         options.spin_style)) {
    return;
  }
  drive_until([&job] { return job.finished.load(std::memory_order_acquire); }, std::nullopt);
}

void ThreadPool::Impl::wait_idle(detail::JobState& job) noexcept {
  std::unique_lock lock(mutex);
  job.abandoned = true;
  job.retry.clear();
  changed.wait(lock, [&] { return job.outstanding == 0; });
  std::erase_if(active, [](const auto& held) { return held->abandoned && held->outstanding == 0; });
}

void ThreadPool::Impl::abandon(const std::shared_ptr<detail::JobState>& job) noexcept {
  const std::lock_guard lock(mutex);
  job->abandoned = true;
  job->retry.clear();
  std::erase_if(active, [](const auto& held) { return held->abandoned && held->outstanding == 0; });
}

void ThreadPool::Impl::fail_unstarted(const std::exception_ptr& error, std::unique_lock<std::mutex>& lock) {
  std::vector<std::shared_ptr<detail::JobState>> concluded;
  for (const auto& job : active) {
    for (std::size_t chunk : job->retry) job->chunk_failed(chunk, error);
    job->retry.clear();
    for (std::size_t chunk : job->unstarted.drain()) job->chunk_failed(chunk, error);
    if (detail::conclude_if_decided(*job)) concluded.push_back(job);
  }
  std::erase_if(active, [](const auto& held) { return held->concluded && held->outstanding == 0; });
  lock.unlock();
  for (const auto& job : concluded) detail::announce(*job);
  lock.lock();
  changed.notify_all();
}

void ThreadPool::Impl::stop_threads() noexcept {
  {
    const std::lock_guard lock(mutex);
    stopping = true;
  }
  ++posted;  // a thread spinning for work stops spinning now, not at the end of its spin
  work_posted.notify_all();
  // A retiring thread may start its replacement until `stopping` is seen: join until none is left.
  for (;;) {
    std::vector<std::thread> joining;
    {
      const std::lock_guard lock(mutex);
      for (std::thread& thread : threads) {
        if (thread.joinable()) joining.push_back(std::move(thread));
      }
      for (std::thread& thread : retired) joining.push_back(std::move(thread));
      retired.clear();
    }
    if (joining.empty()) return;
    for (std::thread& thread : joining) thread.join();
  }
}

// ---- ThreadPool ----------------------------------------------------------------------------------

namespace {
PoolOptions with_workers(std::size_t workers, bool pin_workers) {
  PoolOptions options;
  options.workers = workers;
  options.pin_workers = pin_workers;
  return options;
}
}  // namespace

ThreadPool::ThreadPool(std::size_t workers, bool pin_workers) : ThreadPool(with_workers(workers, pin_workers)) {}

ThreadPool::ThreadPool(PoolOptions options) {
  const ScopedSpan span(options.trace, "start ThreadPool", "pool");
  const Topology& topology = system_topology();
  const std::size_t count = worker_count(options);
  const bool pin = options.pin_workers;
  options.spin_style = spin_style_for(options, count);
  impl_ = std::make_shared<Impl>(std::move(options));
  Impl& state = *impl_;
  state.threads.resize(count);
  for (std::size_t i = 0; i < count; ++i) state.cpus.push_back(pin ? topology.worker_cpu(i) : -1);
  try {
    for (std::size_t i = 0; i < count; ++i) {
      const std::lock_guard lock(state.mutex);  // a fast thread may look at its slot at once
      state.start(i);
    }
    std::unique_lock lock(state.mutex);
    state.changed.wait(lock, [&] { return state.started == count; });
    if (state.start_failure) std::rethrow_exception(state.start_failure);
  } catch (...) {
    state.stop_threads();
    throw;
  }
}

ThreadPool::~ThreadPool() {
  if (!impl_) return;
  const ScopedSpan span(impl_->options.trace, "stop ThreadPool", "pool");
  {
    std::unique_lock lock(impl_->mutex);
    impl_->terminated = true;
    impl_->fail_unstarted(
        std::make_exception_ptr(PoolTerminated("ThreadPool: the pool was destroyed before this work was started")),
        lock);
  }
  impl_->stop_threads();
}

ThreadPool::ThreadPool(ThreadPool&&) noexcept = default;
ThreadPool& ThreadPool::operator=(ThreadPool&& other) noexcept {
  if (this != &other) {
    ThreadPool discarded(std::move(*this));
    impl_ = std::move(other.impl_);
  }
  return *this;
}

ThreadPool::Impl& ThreadPool::impl() const {
  if (!impl_) throw std::logic_error("ThreadPool: this pool was moved from; it has no threads");
  return *impl_;
}

std::size_t ThreadPool::size() const noexcept { return impl_ ? impl_->cpus.size() : 0; }

void ThreadPool::close() {
  Impl& state = impl();
  const std::lock_guard lock(state.mutex);
  state.closed = true;
}

void ThreadPool::join() {
  Impl& state = impl();
  {
    std::unique_lock lock(state.mutex);
    if (!state.closed && !state.terminated) {
      throw std::logic_error("ThreadPool::join: the pool is still running; call close() or terminate() first");
    }
  }
  state.drive_until([&state] { return state.active.empty(); }, std::nullopt);
  state.stop_threads();
}

void ThreadPool::terminate() noexcept {
  if (!impl_) return;
  std::unique_lock lock(impl_->mutex);
  if (impl_->terminated) return;
  impl_->terminated = true;
  impl_->fail_unstarted(
      std::make_exception_ptr(PoolTerminated("ThreadPool: terminate() was called: this work was never started")), lock);
}

bool ThreadPool::closed() const noexcept {
  if (!impl_) return false;
  const std::lock_guard lock(impl_->mutex);
  return impl_->closed;
}

bool ThreadPool::terminated() const noexcept {
  if (!impl_) return false;
  const std::lock_guard lock(impl_->mutex);
  return impl_->terminated;
}

std::vector<std::thread::id> ThreadPool::thread_ids() const {
  const Impl& state = impl();
  const std::lock_guard lock(state.mutex);
  std::vector<std::thread::id> ids;
  for (const std::thread& thread : state.threads) ids.push_back(thread.get_id());
  return ids;
}

void ThreadPool::submit_job(const std::shared_ptr<detail::JobState>& job) { impl().submit(job); }

void ThreadPool::wait_for_job(detail::JobState& job) { impl().wait_finished(job); }

std::weak_ptr<detail::Driver> ThreadPool::driver_handle() const { return impl_; }

MapStats ThreadPool::execute(const ChunkKernel& kernel, const void* input, void* output, std::size_t size,
                             std::size_t chunksize) {
  Impl& state = impl();
  MapStats stats;
  const Stopwatch clock;
  PhaseMarks marks(state.options.trace);
  const auto job = std::make_shared<ElementJob>(kernel.for_elements(size), input, output, size, chunksize, this->size(),
                                                state.options.caller_computes);
  state.submit(job);
  try {
    state.compute_callers_share(*job);
    state.wait_finished(*job);
  } catch (...) {  // an interrupt: the kernels see it too, and stop within a block of elements
    state.wait_idle(*job);
    throw;
  }
  stats.phases.compute = clock.seconds();
  marks.mark("compute");
  if (job->failure) std::rethrow_exception(job->failure);
  return stats;
}

}  // namespace mpdemo
