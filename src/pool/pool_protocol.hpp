// The control protocol between a ProcessPool master and its workers: fixed-size messages, each
// smaller than PIPE_BUF so that one write() delivers it whole. Data does not travel here, only where
// it is (pointers into the shared arena) and what to do with it; the one exception is the pipe data
// path, kept to measure what Python's way costs, whose slices follow their messages.
#pragma once

#include "mpdemo/pool/chunk_kernel.hpp"

#include <sys/types.h>
#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>

namespace mpdemo::detail {

/// Master -> worker: apply `kernel` to elements [begin, end) of `input`, writing `output`.
/// With payload_bytes > 0 (the pipe data path, for comparison only) the chunk's input elements follow
/// the message in the pipe instead, and the worker sends its results back after its reply.
struct TaskMessage {
  std::uint64_t job;
  std::uint64_t chunk;
  std::uint64_t begin;
  std::uint64_t end;
  const void* input;
  void* output;
  std::uint64_t payload_bytes;
  std::uint64_t input_element_bytes;
  std::uint64_t output_element_bytes;
  ChunkKernel kernel;
};

enum class ReplyKind : std::uint32_t { ready = 1, done = 2, failed = 3 };

/// Worker -> master: ready (once, after start-up), or done / failed for one task.
struct ReplyMessage {
  ReplyKind kind;
  std::uint64_t job;
  std::uint64_t chunk;
  std::uint64_t payload_bytes;  ///< result bytes that follow this message (pipe data path only)
  char what[240];               ///< failed: the exception's what(), truncated, NUL-terminated
};

static_assert(sizeof(TaskMessage) <= PIPE_BUF && sizeof(ReplyMessage) <= PIPE_BUF,
              "control messages must be atomic pipe writes");

/// What a worker needs to know, decided by the master before fork (spawn() has already pinned it,
/// set its signals, armed its parent-death signal and closed every other descriptor).
struct WorkerSetup {
  int task_fd;                     ///< read end of the master's task pipe
  int reply_fd;                    ///< write end of the reply pipe
  std::chrono::microseconds spin;  ///< how long to poll for the next task before sleeping
};

/// A worker's exit status when its function called exit() or quick_exit(): the worker's own handler
/// runs first and leaves with it, so the master's atexit handlers and stdio buffers never run there.
inline constexpr int kExitCalledExit = 6;

/// The worker process's whole life after fork: the handshake, then tasks until end-of-file on its task
/// pipe. Returns the worker's exit status, for spawn() to _exit with (it leaves with _exit itself
/// when a pipe fails), so nothing of the master (atexit handlers, stdio buffers) runs there.
int run_worker(const WorkerSetup& setup) noexcept;

}  // namespace mpdemo::detail
