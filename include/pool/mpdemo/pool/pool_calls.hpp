// PoolCalls: the calls of Python's multiprocessing.Pool, written once for ProcessPool and ThreadPool
// (each derives from PoolCalls<itself> and says how a job is made, submitted and waited for), so that
// a comparison between the two measures processes against threads and nothing else.
//
//   Python                                  mpdemo (on a ProcessPool or a ThreadPool)
//   pool.apply(f, (a, b))                   pool.apply(f, a, b)
//   pool.apply_async(f, (a, b), cb, ecb)    pool.apply_async(f, a, b)   or   pool.apply_async(f, std::tuple{a, b}, {cb,
//   ecb}) pool.map(f, xs, chunksize)              pool.map(f, xs, chunksize)          (ProcessPool/ThreadPool::map)
//   pool.map_async(f, xs, cs, cb, ecb)      pool.map_async(f, xs, cs, {cb, ecb})
//   pool.starmap(f, [(a, b), ...])          pool.starmap(f, std::vector<std::tuple<A, B>>{...})
//   pool.imap(f, xs, chunksize=1)           for (const R& r : pool.imap(f, xs, 1)) ...
//   pool.imap_unordered(f, xs, 1)           for (const R& r : pool.imap_unordered(f, xs, 1)) ...
//
// fn is a TaskFunction (a function pointer, a captureless lambda, a small trivially copyable function
// object: see task.hpp); elements and results are Transferable (trivially copyable, or serializable
// with cereal: std::string, std::vector, your structs with a serialize() member). Inputs are taken
// at the call, as Python takes them: an async call copies (or serializes) them before it returns, so
// the caller may let them go at once. Results are in input order, but for imap_unordered.
//
// Failures: a task's exception reaches get(), the imap step that reaches its chunk, or the
// error_callback, as a WorkerError naming the worker, its pid, the chunk and the original what().
// A map reports its first failure at once; the chunks still out finish on their own (a hung one is
// ended by terminate()). Giving work to a closed pool throws PoolClosed, to a terminated one
// PoolTerminated. Under an InterruptGuard, a call made while an interrupt is pending may throw
// Interrupted itself, before anything is submitted (its results vector is made with interrupt
// checks, as map's is); otherwise the interrupt reaches the next wait.
#pragma once

#include "mpdemo/pool/async_result.hpp"
#include "mpdemo/pool/detail/job.hpp"
#include "mpdemo/pool/task.hpp"
#include "mpdemo/sys/errors.hpp"

#include <array>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <ranges>
#include <tuple>
#include <utility>
#include <vector>

namespace mpdemo {

/// What apply(fn, args...) returns.
template <class F, class... Args>
using apply_result_t = element_result_t<Unpack::tuple, F, std::tuple<Args...>>;

/// A range a pool can map over: its size known, walked once, its elements transferable.
template <class Input>
concept MapInput = std::ranges::forward_range<Input> && std::ranges::sized_range<Input>;

/// The vector of results of fn over Input, its elements called as U says.
template <Unpack U, class F, class Input>
using results_of_t = std::vector<element_result_t<U, F, std::ranges::range_value_t<Input>>>;

template <class Pool>
class PoolCalls {
 public:
  /// Python's apply(fn, args): fn(args...) in a worker; waits and returns what it returned, or
  /// rethrows what it threw (as a WorkerError).
  template <class F, class... Args>
  requires ElementTask<F, std::tuple<Args...>, Unpack::tuple> apply_result_t<F, Args...> apply(F fn, Args... args) {
    std::array<std::tuple<Args...>, 1> one{std::tuple<Args...>(std::move(args)...)};
    return std::move(run_now<Unpack::tuple>(fn, one, 1).front());
  }

  /// Python's apply_async(fn, args): returns at once; the AsyncResult gives fn(args...) later.
  template <class F, class... Args>
  requires ElementTask<F, std::tuple<Args...>, Unpack::tuple> AsyncResult<apply_result_t<F, Args...>> apply_async(
      F fn, Args... args) {
    return apply_async(fn, std::tuple<Args...>(std::move(args)...), Callbacks<apply_result_t<F, Args...>>{});
  }
  /// The same with Python's callback and error_callback (the arguments as a tuple, as Python's args).
  template <class F, class... Args>
  requires ElementTask<F, std::tuple<Args...>, Unpack::tuple> AsyncResult<apply_result_t<F, Args...>> apply_async(
      F fn, std::tuple<Args...> args, Callbacks<apply_result_t<F, Args...>> callbacks) {
    using R = apply_result_t<F, Args...>;
    std::array<std::tuple<Args...>, 1> one{std::move(args)};
    auto job = make<Unpack::tuple>(fn, one, 1, true);
    return submit_for_result<R>(std::move(job), std::move(callbacks), &first_result<R>);
  }

  /// Python's map_async: returns at once; the AsyncResult gives every fn(x), in input order.
  /// chunksize 0 means Python's default, ceil(n / (4 * workers)).
  template <class F, MapInput Input>
  requires ElementTask<F, std::ranges::range_value_t<Input>, Unpack::whole>
  auto map_async(F fn, const Input& input, std::size_t chunksize = 0,
                 Callbacks<results_of_t<Unpack::whole, F, Input>> callbacks = {}) {
    return map_later<Unpack::whole>(fn, input, chunksize, std::move(callbacks));
  }

  /// Python's starmap: fn(members of x...) for every tuple-like x (std::tuple, std::pair, std::array),
  /// in input order. (A struct is passed whole: use map; C++ cannot unpack it without reflection.)
  template <class F, MapInput Input>
  requires ElementTask<F, std::ranges::range_value_t<Input>, Unpack::tuple>
  auto starmap(F fn, const Input& input, std::size_t chunksize = 0) {
    return run_now<Unpack::tuple>(fn, input, chunksize);
  }
  /// Python's starmap_async.
  template <class F, MapInput Input>
  requires ElementTask<F, std::ranges::range_value_t<Input>, Unpack::tuple>
  auto starmap_async(F fn, const Input& input, std::size_t chunksize = 0,
                     Callbacks<results_of_t<Unpack::tuple, F, Input>> callbacks = {}) {
    return map_later<Unpack::tuple>(fn, input, chunksize, std::move(callbacks));
  }

  /// Python's imap: the results in input order, each as soon as its chunk is done. chunksize must be
  /// at least 1 (Python's default is 1: one task per element; larger chunks cost less per element).
  template <class F, MapInput Input>
  requires ElementTask<F, std::ranges::range_value_t<Input>, Unpack::whole>
  auto imap(F fn, const Input& input, std::size_t chunksize = 1) { return iterate(fn, input, chunksize, true, "imap"); }
  /// Python's imap_unordered: the results in the order their chunks end.
  template <class F, MapInput Input>
  requires ElementTask<F, std::ranges::range_value_t<Input>, Unpack::whole>
  auto imap_unordered(F fn, const Input& input, std::size_t chunksize = 1) {
    return iterate(fn, input, chunksize, false, "imap_unordered");
  }

 protected:
  /// Runs fn over `input` now, in the pool, and returns the results (the generic path of map, starmap
  /// and apply): the first failure is rethrown as soon as it is known.
  template <Unpack U, class F, class Input>
  auto run_now(F fn, const Input& input, std::size_t chunksize) {
    auto job = make<U>(fn, input, chunksize, true);
    pool().submit_job(job);
    pool().wait_for_job(*job);
    if (job->failure) std::rethrow_exception(job->failure);
    return std::move(job->results);
  }

 private:
  Pool& pool() { return static_cast<Pool&>(*this); }

  /// map_async and starmap_async.
  template <Unpack U, class F, class Input>
  auto map_later(F fn, const Input& input, std::size_t chunksize, Callbacks<results_of_t<U, F, Input>> callbacks) {
    using R = typename results_of_t<U, F, Input>::value_type;
    return submit_for_result<std::vector<R>>(make<U>(fn, input, chunksize, true), std::move(callbacks),
                                             &all_results<R>);
  }

  template <Unpack U, class F, class Input>
  auto make(F fn, const Input& input, std::size_t chunksize, bool fail_fast) {
    using T = std::ranges::range_value_t<Input>;
    using R = element_result_t<U, F, T>;
    return pool().template make_job<T, R, U>(fn, input, chunksize, fail_fast);
  }

  template <class R>
  static const std::vector<R>& all_results(detail::JobState& job) {
    return static_cast<detail::ResultsJob<R>&>(job).results;
  }
  template <class R>
  static const R& first_result(detail::JobState& job) {
    return static_cast<detail::ResultsJob<R>&>(job).results.front();
  }

  template <class T, class Job>
  AsyncResult<T> submit_for_result(std::shared_ptr<Job> job, Callbacks<T> callbacks,
                                   const T& (*access)(detail::JobState&)) {
    if (callbacks.callback || callbacks.error_callback) {
      detail::JobState* state = job.get();  // the callbacks live in the job: a plain pointer is enough
      job->callbacks = [state, callbacks = std::move(callbacks), access] {
        if (state->failure) {
          if (callbacks.error_callback) {
            try {
              callbacks.error_callback(state->failure);
            } catch (...) {  // dropped: the result already carries its failure
            }
          }
        } else if (callbacks.callback) {
          try {
            callbacks.callback(access(*state));
          } catch (...) {
            state->failure = std::current_exception();
          }
        }
      };
    }
    pool().submit_job(job);
    return AsyncResultAccess<T>::make(std::move(job), pool().driver_handle(), access);
  }

  template <class F, class Input>
  auto iterate(F fn, const Input& input, std::size_t chunksize, bool ordered, const char* call) {
    using R = element_result_t<Unpack::whole, F, std::ranges::range_value_t<Input>>;
    if (chunksize == 0) throw BadArgument(std::string(call) + ": chunksize must be at least 1, not 0");
    auto job = make<Unpack::whole>(fn, input, chunksize, false);
    pool().submit_job(job);
    return ImapResultsAccess<R>::make(std::move(job), pool().driver_handle(), ordered);
  }
};

}  // namespace mpdemo
