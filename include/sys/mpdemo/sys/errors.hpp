// Errors: the errors mpdemo raises, under one base class. (How a failed system call becomes one is
// internal: mpdemo/sys/detail/system_call.hpp.)
#pragma once

#include <sys/types.h>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

namespace mpdemo {

/// What every error of mpdemo's own derives from (a std::runtime_error), so that a program can catch
/// "mpdemo said no" in one place:
///   WorkerError       a worker's function threw, or the worker died (pool)
///   MapTimeout        a map outlived ProcessPoolOptions::map_timeout (pool)
///   PoolTerminated    a call on a pool after terminate(), or a result terminate() cut short (pool)
///   PoolClosed        new work given to a pool after close() (pool)
///   ResultTimeout     AsyncResult::get(timeout) or an imap step ran out of time; the task runs on (pool)
///   ArenaExhausted    shared memory for a map does not fit in the arena (pool/shared_arena.hpp)
///   BadArgument       an argument outside what the call accepts (sizes that differ, a zero count)
///   Interrupted, DeadlineExceeded   SIGINT/SIGTERM or a ScopedDeadline stopped the work (interrupt.hpp)
/// Failed system calls are std::system_error (with what was being done), and misuse of an object in a
/// state that allows nothing (a moved-from pool, an empty ChildProcess) is std::logic_error.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// An argument outside what the call accepts; the message names the call, the value and the range.
class BadArgument : public Error {
 public:
  using Error::Error;
};

/// A worker failed while computing a chunk of a map: its function threw, or the worker died.
/// Thrown by ProcessPool::map in the master; the pool stays usable afterwards.
class WorkerError : public Error {
 public:
  /// `in_caller`: the failure was in the share the map's caller computes (PoolOptions::caller_computes),
  /// whose `worker` number is the pool's size(); the message then names the caller, not a worker.
  WorkerError(std::size_t worker, pid_t pid, std::size_t chunk_begin, std::size_t chunk_end, std::string cause,
              bool in_caller = false);

  std::size_t worker() const noexcept { return worker_; }
  /// Whether the chunk was the caller's own share, computed in the caller's thread.
  bool in_caller() const noexcept { return in_caller_; }
  pid_t pid() const noexcept { return pid_; }
  /// The half-open index range [chunk_begin, chunk_end) of the input that the worker was given.
  std::size_t chunk_begin() const noexcept { return chunk_begin_; }
  std::size_t chunk_end() const noexcept { return chunk_end_; }
  /// The worker's own words: the exception's what(), or how it died ("killed by signal 9 (SIGKILL)").
  const std::string& cause() const noexcept { return cause_; }

 private:
  std::size_t worker_;
  pid_t pid_;
  std::size_t chunk_begin_;
  std::size_t chunk_end_;
  std::string cause_;
  bool in_caller_;
};

/// A map that did not finish within ProcessPoolOptions::map_timeout. Its busy workers were killed
/// (they are replaced at the next map); the pool stays usable.
class MapTimeout : public Error {
 public:
  using Error::Error;
};

/// A call on a pool after terminate(), or a result that terminate() (or the pool's destruction) cut
/// short: its work will never be done.
class PoolTerminated : public Error {
 public:
  using Error::Error;
};

/// New work given to a pool after close(): Python's ValueError("Pool not running").
class PoolClosed : public Error {
 public:
  using Error::Error;
};

/// A wait for a result that ran out of time (multiprocessing.TimeoutError). The task goes on running,
/// and a later wait may still get its result.
class ResultTimeout : public Error {
 public:
  using Error::Error;
};

/// The soft limit of a resource (RLIMIT_NOFILE, RLIMIT_NPROC, RLIMIT_AS, ...), or nullopt when it is
/// unlimited or cannot be read.
std::optional<std::uint64_t> soft_limit(int resource) noexcept;

/// Why a system call failed, for people: for the errors that mean a resource limit was hit (EAGAIN
/// from fork, EMFILE, ENOMEM, ...), which limit and its current value ("the process limit, ulimit -u
/// = 50"); an empty string for other errors.
std::string limit_hint(int error_number);

}  // namespace mpdemo
