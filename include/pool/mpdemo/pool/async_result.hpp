// AsyncResult and ImapResults: work given to a pool that the caller collects later, as Python's
// AsyncResult and imap iterator. The same on ProcessPool and ThreadPool.
//
//   mpdemo::AsyncResult<double> r = pool.apply_async(slow_square, 3.0);
//   ... other work; several jobs may be in flight at once ...
//   double nine = r.get();                           // waits; rethrows what the task threw
//   r.get(std::chrono::milliseconds(10));            // ResultTimeout if not ready by then
//
//   for (const double& x : pool.imap(square, input, 100)) use(x);   // each as soon as its chunk is done
//
// Progress. A process pool's master reads answers and hands out work while some thread waits on one
// of its results (get, wait, ready, an imap step, map, join): nothing runs behind the caller's back.
// So callbacks run in the thread that waits when the result arrives, and a result nobody waits for
// is collected by the next wait of any kind. A thread pool's threads make progress by themselves.
//
// Thread safety: an AsyncResult or ImapResults may be used by one thread at a time; different results
// of one pool may be waited for from different threads at once.
#pragma once

#include "mpdemo/pool/detail/job.hpp"
#include "mpdemo/sys/errors.hpp"

#include <chrono>
#include <cstddef>
#include <exception>
#include <functional>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>

namespace mpdemo {

/// What to call when a result is ready (Python's callback and error_callback). They run once, in the
/// thread that is waiting on the pool when the result arrives (a thread pool: its worker thread),
/// before get() returns. They must not throw: an exception from `callback` becomes the result's
/// failure, one from `error_callback` is dropped.
template <class T>
struct Callbacks {
  std::function<void(const T&)> callback;
  std::function<void(const std::exception_ptr&)> error_callback;
};

template <class T>
class AsyncResult {
 public:
  /// An empty result, not attached to any job: every call throws std::logic_error.
  AsyncResult() = default;

  /// Whether the result is ready (a value or a failure). Makes the progress that needs no waiting.
  bool ready() const {
    if (!job().finished.load(std::memory_order_acquire)) drive(std::chrono::steady_clock::now());
    return job_->finished.load(std::memory_order_acquire);
  }
  /// Whether the task succeeded; std::logic_error if it is not ready yet (as Python's ValueError).
  bool successful() const {
    if (!ready()) throw std::logic_error("AsyncResult::successful: the result is not ready yet");
    return !job_->failure;
  }
  /// Waits until the result is ready.
  void wait() const { drive(std::nullopt); }
  /// Waits at most `timeout`; returns whether the result is ready.
  template <class Rep, class Period>
  bool wait(std::chrono::duration<Rep, Period> timeout) const {
    return drive(std::chrono::steady_clock::now() +
                 std::chrono::duration_cast<std::chrono::steady_clock::duration>(timeout));
  }
  /// Waits, then returns the value or rethrows the task's failure (WorkerError, PoolTerminated, ...).
  const T& get() const {
    wait();
    return value();
  }
  /// As get(), but throws ResultTimeout if the result is not ready within `timeout`; the task goes on.
  template <class Rep, class Period>
  const T& get(std::chrono::duration<Rep, Period> timeout) const {
    if (!wait(timeout)) {
      throw ResultTimeout(fmt_timeout(std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count()));
    }
    return value();
  }

 private:
  template <class>
  friend class AsyncResultAccess;
  using Access = const T& (*)(detail::JobState&);

  AsyncResult(std::shared_ptr<detail::JobState> job, std::weak_ptr<detail::Driver> driver, Access access)
      : job_(std::move(job)), driver_(std::move(driver)), access_(access) {}

  detail::JobState& job() const {
    if (!job_) throw std::logic_error("AsyncResult: this result is empty (default-constructed or moved from)");
    return *job_;
  }
  bool drive(detail::Deadline deadline) const {
    detail::JobState& state = job();
    if (state.finished.load(std::memory_order_acquire)) return true;
    // A pool that is gone failed every job it had (PoolTerminated): nothing is left to drive.
    if (const std::shared_ptr<detail::Driver> driver = driver_.lock()) {
      return driver->drive_until([&state] { return state.finished.load(std::memory_order_acquire); }, deadline);
    }
    return state.finished.load(std::memory_order_acquire);
  }
  const T& value() const {
    if (job_->failure) std::rethrow_exception(job_->failure);
    return access_(*job_);
  }
  static std::string fmt_timeout(long long milliseconds) {
    return "AsyncResult::get: the result was not ready within " + std::to_string(milliseconds) +
           " ms; the task goes on running";
  }

  std::shared_ptr<detail::JobState> job_;
  std::weak_ptr<detail::Driver> driver_;
  Access access_ = nullptr;
};

/// The pools' way to make AsyncResults (not for user code).
template <class T>
class AsyncResultAccess {
 public:
  static AsyncResult<T> make(std::shared_ptr<detail::JobState> job, std::weak_ptr<detail::Driver> driver,
                             typename AsyncResult<T>::Access access) {
    return AsyncResult<T>(std::move(job), std::move(driver), access);
  }
};

/// The results of imap (in input order) or imap_unordered (in the order chunks end), as an input
/// range: each result is available as soon as its chunk is done, not when the whole map is. A chunk
/// that failed throws its failure from the step that reaches it; the iterator has then moved past
/// that chunk, so the caller may catch and go on. Destroying the range before its end abandons the
/// job: no more of its chunks are handed out, those already out finish, and the pool stays usable.
template <class R>
class ImapResults {
 public:
  ImapResults(const ImapResults&) = delete;
  ImapResults& operator=(const ImapResults&) = delete;
  ImapResults(ImapResults&&) noexcept = default;
  ImapResults& operator=(ImapResults&& other) noexcept {
    if (this != &other) {
      abandon();
      job_ = std::move(other.job_);
      driver_ = std::move(other.driver_);
      ordered_ = other.ordered_;
      started_ = other.started_;
      position_ = other.position_;
      current_index_ = other.current_index_;
      settled_ = other.settled_;
      chunk_first_position_ = other.chunk_first_position_;
      chunk_begin_ = other.chunk_begin_;
      chunk_end_ = other.chunk_end_;
    }
    return *this;
  }
  ~ImapResults() { abandon(); }

  class iterator {
   public:
    using iterator_concept = std::input_iterator_tag;
    using value_type = R;
    using difference_type = std::ptrdiff_t;

    iterator() = default;
    const R& operator*() const { return range_->current(); }
    const R* operator->() const { return &range_->current(); }
    iterator& operator++() {
      range_->advance();
      return *this;
    }
    void operator++(int) { ++*this; }
    friend bool operator==(const iterator& it, std::default_sentinel_t) { return it.finished(); }

   private:
    friend class ImapResults;
    explicit iterator(ImapResults* range) : range_(range) {}
    bool finished() const { return range_->at_end(); }
    ImapResults* range_ = nullptr;
  };

  /// Waits for the first result (or the end); throws what its chunk failed with.
  iterator begin() {
    settle(std::nullopt);
    return iterator(this);
  }
  std::default_sentinel_t end() const noexcept { return {}; }

  /// Python's next(timeout): waits at most `timeout` for the next result and returns it, or nullopt
  /// at the end; throws ResultTimeout if it is not ready in time (it may still come later).
  template <class Rep, class Period>
  std::optional<R> next(std::chrono::duration<Rep, Period> timeout) {
    const bool consumed = started_ && settled_;  // after a failed chunk, position_ is already past it
    if (consumed) ++position_;
    started_ = true;
    if (!settle(std::chrono::steady_clock::now() +
                std::chrono::duration_cast<std::chrono::steady_clock::duration>(timeout))) {
      if (consumed) --position_;  // not consumed: the next call waits for the same result
      throw ResultTimeout("imap: the next result was not ready within " +
                          std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count()) +
                          " ms; it may still come");
    }
    if (at_end()) return std::nullopt;
    return current();
  }

 private:
  template <class>
  friend class ImapResultsAccess;

  ImapResults(std::shared_ptr<detail::ResultsJob<R>> job, std::weak_ptr<detail::Driver> driver, bool ordered)
      : job_(std::move(job)), driver_(std::move(driver)), ordered_(ordered) {}

  std::size_t size() const noexcept { return job_->plan.size(); }
  bool at_end() const noexcept { return position_ >= size(); }

  /// Where result `position` is: its chunk and its index in the job's results; false while its chunk
  /// (unordered: enough chunks) has not ended. Reads the job's state: call it under the pool's lock.
  bool locate(std::size_t position, std::size_t& chunk, std::size_t& index) const {
    if (ordered_) {
      chunk = position / job_->plan.chunksize();
      index = position;
      return job_->chunk_states[chunk] != detail::ChunkState::pending;
    }
    std::size_t skipped = 0;  // unordered: chunks in the order they ended, each whole, one after another
    for (const std::size_t ended : job_->completion_order) {
      const std::size_t length = job_->plan[ended].size();
      if (position < skipped + length) {
        chunk = ended;
        index = job_->plan[ended].begin + (position - skipped);
        return true;
      }
      skipped += length;
    }
    return false;
  }
  /// Waits until result `position_` is known or `deadline` passes (false). A failed chunk throws its
  /// failure, with position_ moved past the chunk first.
  bool settle(detail::Deadline deadline) {
    // Still inside the chunk the last step found ended: its results are there, nothing to ask anyone.
    if (settled_ && !at_end() && position_ < chunk_end_) {
      current_index_ = chunk_begin_ + (position_ - chunk_first_position_);
      return true;
    }
    std::size_t chunk = 0;
    std::size_t index = 0;
    std::exception_ptr failed;
    const auto known = [&] {  // evaluated by the pool under its lock: the job's state is consistent
      if (at_end()) return true;
      if (!locate(position_, chunk, index)) return false;
      if (job_->chunk_states[chunk] == detail::ChunkState::failed) failed = job_->chunk_failures.at(chunk);
      return true;
    };
    if (const std::shared_ptr<detail::Driver> driver = driver_.lock()) {
      if (!driver->drive_until(known, deadline)) return false;
    } else if (!known()) {  // a pool that is gone left every job finished: its state is final
      throw PoolTerminated("imap: the pool was destroyed before this result was ready");
    }
    if (at_end()) return true;
    current_index_ = index;
    settled_ = !failed;
    // The rest of this chunk's results follow from here, in order (both orders walk a chunk whole).
    const ChunkRange range = job_->plan[chunk];
    chunk_first_position_ = position_;
    chunk_begin_ = index;
    chunk_end_ = position_ + (range.end - index);
    if (failed) {
      position_ += job_->plan[chunk].end - index;  // its elements have no results
      std::rethrow_exception(failed);
    }
    return true;
  }
  const R& current() {
    if (!settled_) settle(std::nullopt);  // the step after a failed chunk: wait for the next result
    if (at_end()) throw std::out_of_range("imap: read past the last result");
    return job_->results[current_index_];
  }
  void advance() {
    if (settled_) ++position_;  // after a failed chunk, position_ is already past it
    settle(std::nullopt);
  }
  void abandon() noexcept {
    if (!job_ || job_->finished.load(std::memory_order_acquire)) return;
    if (const std::shared_ptr<detail::Driver> driver = driver_.lock()) driver->abandon(job_);
  }

  std::shared_ptr<detail::ResultsJob<R>> job_;
  std::weak_ptr<detail::Driver> driver_;
  bool ordered_ = true;
  bool started_ = false;  ///< next() has been called (it consumes before it waits)
  std::size_t position_ = 0;
  std::size_t current_index_ = 0;  ///< where result position_ is in the job's results, once settled
  bool settled_ = false;           ///< current_index_ is result position_'s
  // The chunk of the last settled result: positions [chunk_first_position_, chunk_end_) are its
  // results from index chunk_begin_ on, already known.
  std::size_t chunk_first_position_ = 0;
  std::size_t chunk_begin_ = 0;
  std::size_t chunk_end_ = 0;
};

/// The pools' way to make ImapResults (not for user code).
template <class R>
class ImapResultsAccess {
 public:
  static ImapResults<R> make(std::shared_ptr<detail::ResultsJob<R>> job, std::weak_ptr<detail::Driver> driver,
                             bool ordered) {
    return ImapResults<R>(std::move(job), std::move(driver), ordered);
  }
};

}  // namespace mpdemo
