#include "mpdemo/pool/thread_pool.hpp"

#include "mpdemo/pool/chunk_plan.hpp"
#include "mpdemo/pool/process_pool.hpp"
#include "mpdemo/sys/errors.hpp"
#include "mpdemo/sys/topology.hpp"
#include "spin_wait.hpp"

#include <fmt/format.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>

namespace mpdemo {

struct ThreadPool::Impl {
  std::mutex mutex;
  std::condition_variable work_posted;
  std::condition_variable work_finished;
  std::vector<std::thread> threads;

  // The current job, written under `mutex`. `generation` and `threads_busy` are atomics too, so
  // that a waiter can spin on them before it sleeps (the same policy as the process pool).
  std::atomic<std::uint64_t> generation{0};
  std::atomic<bool> stopping{false};
  ChunkKernel kernel{};
  const void* input = nullptr;
  void* output = nullptr;
  ChunkPlan plan{0, 1, 1};
  std::atomic<std::size_t> next_chunk{0};
  std::atomic<std::size_t> threads_busy{0};
  std::exception_ptr first_error;
  std::chrono::microseconds spin{ProcessPoolOptions::kDefaultSpin};

  void run(std::size_t index, int cpu) {
    pin_calling_thread(cpu);  // best effort, as for processes
    std::uint64_t seen = 0;
    std::unique_lock lock(mutex);
    for (;;) {
      lock.unlock();
      detail::spin_until([&] { return stopping || generation != seen; }, spin);
      lock.lock();
      work_posted.wait(lock, [&] { return stopping || generation != seen; });
      if (stopping) return;
      seen = generation;
      lock.unlock();
      std::exception_ptr error;
      ChunkRange range{0, 0};
      // The same contract as the process pool: fn's exception becomes a WorkerError naming the
      // worker and the chunk; an interrupt or a deadline stays what it is.
      try {
        for (std::size_t chunk = next_chunk++; chunk < plan.count(); chunk = next_chunk++) {
          range = plan[chunk];
          kernel(input, output, range.begin, range.end);
        }
      } catch (const Error&) {
        error = std::current_exception();
      } catch (const std::exception& e) {
        error = std::make_exception_ptr(WorkerError(index, ::getpid(), range.begin, range.end, e.what()));
      } catch (...) {
        error = std::make_exception_ptr(
            WorkerError(index, ::getpid(), range.begin, range.end, "an exception not derived from std::exception"));
      }
      if (error) next_chunk = plan.count();  // the others stop taking chunks; the ones in hand finish
      lock.lock();
      if (error && !first_error) first_error = error;
      if (--threads_busy == 0) work_finished.notify_one();
    }
  }
};

ThreadPool::ThreadPool(std::size_t workers, bool pin_workers) : impl_(std::make_unique<Impl>()) {
  const Topology& topology = system_topology();
  const std::size_t count = workers != 0 ? workers : topology.default_workers();
  impl_->threads.reserve(count);
  try {
    for (std::size_t i = 0; i < count; ++i) {
      const int cpu = pin_workers ? topology.worker_cpu(i) : -1;
      try {
        impl_->threads.emplace_back([impl = impl_.get(), i, cpu] { impl->run(i, cpu); });
      } catch (const std::system_error& error) {
        const std::string hint = limit_hint(error.code().value());
        throw std::system_error(error.code(), fmt::format("start thread {} of {}{}", i, count,
                                                          hint.empty() ? "" : fmt::format(" ({})", hint)));
      }
    }
  } catch (...) {
    {
      const std::lock_guard lock(impl_->mutex);
      impl_->stopping = true;
    }
    impl_->work_posted.notify_all();
    for (std::thread& thread : impl_->threads) thread.join();
    throw;
  }
}

ThreadPool::~ThreadPool() {
  if (!impl_) return;
  {
    const std::lock_guard lock(impl_->mutex);
    impl_->stopping = true;
  }
  impl_->work_posted.notify_all();
  for (std::thread& thread : impl_->threads) thread.join();
}

ThreadPool::ThreadPool(ThreadPool&&) noexcept = default;
ThreadPool& ThreadPool::operator=(ThreadPool&& other) noexcept {
  if (this != &other) {
    ThreadPool discarded(std::move(*this));
    impl_ = std::move(other.impl_);
  }
  return *this;
}

std::size_t ThreadPool::size() const noexcept { return impl_ ? impl_->threads.size() : 0; }

MapStats ThreadPool::execute(const ChunkKernel& kernel, const void* input, void* output, std::size_t size,
                             std::size_t chunksize) {
  if (!impl_) throw std::logic_error("ThreadPool: this pool was moved from; it has no threads");
  MapStats stats;
  const Stopwatch clock;
  Impl& impl = *impl_;
  std::unique_lock lock(impl.mutex);
  impl.kernel = kernel;
  impl.input = input;
  impl.output = output;
  impl.plan = ChunkPlan(size, chunksize, impl.threads.size());
  impl.next_chunk = 0;
  impl.first_error = nullptr;
  impl.threads_busy = impl.threads.size();
  ++impl.generation;
  impl.work_posted.notify_all();
  lock.unlock();
  detail::spin_until([&] { return impl.threads_busy == 0; }, impl.spin);
  lock.lock();
  impl.work_finished.wait(lock, [&] { return impl.threads_busy == 0; });
  stats.phases.compute = clock.seconds();
  if (impl.first_error) std::rethrow_exception(std::exchange(impl.first_error, nullptr));
  return stats;
}

}  // namespace mpdemo
