// The control protocol between a ProcessPool master and its workers: fixed-size messages, each
// smaller than PIPE_BUF so that one write() delivers it whole. Data does not travel here, only where
// it is (pointers into the shared arena) and what to do with it. Two exceptions, both measured
// against the rest: the pipe data path, whose slices follow their messages (what Python's Pool does),
// and serialized results too large for the worker's result buffer, which follow their replies.
#pragma once

#include "mpdemo/pool/chunk_kernel.hpp"
#include "mpdemo/pool/pool_options.hpp"
#include "mpdemo/pool/task.hpp"

#include <sys/types.h>
#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <functional>

namespace mpdemo::detail {

// Two tasks in flight per worker: while the master reads one answer and sends the next task, the
// worker is already busy with the second, so a round trip is not paid between chunks.
inline constexpr std::size_t kTasksInFlight = 2;

enum class TaskKind : std::uint32_t {
  elements = 1,    ///< `kernel` over elements [begin, end) of `input` into `output` (or the pipe's slice)
  serialized = 2,  ///< `serial` over the serialized elements at `serialized`; results to `result_buffer`
};

/// Master -> worker: one chunk of one job.
struct TaskMessage {
  TaskKind kind;
  std::uint64_t job;
  std::uint64_t chunk;
  std::uint64_t begin;
  std::uint64_t end;
  // TaskKind::elements. With payload_bytes > 0 (the pipe data path, for comparison only) the chunk's
  // input elements follow the message in the pipe instead, and the results follow the reply.
  const void* input;
  void* output;
  std::uint64_t payload_bytes;
  std::uint64_t input_element_bytes;
  std::uint64_t output_element_bytes;
  ChunkKernel kernel;
  // TaskKind::serialized. Results that do not fit in [result_buffer, + result_capacity) follow the
  // reply in the pipe instead.
  SerialKernel serial;
  const std::byte* serialized;
  std::uint64_t serialized_bytes;
  std::byte* result_buffer;
  std::uint64_t result_capacity;
};

enum class ReplyKind : std::uint32_t {
  ready = 1,              ///< once, after start-up (and the initializer)
  done = 2,               ///< a task's results are in place
  failed = 3,             ///< a task's function threw: `what` says what
  initializer_failed = 4  ///< the pool's initializer threw in this worker: `what` says what; it leaves
};

/// Worker -> master: ready (once, after start-up), or done / failed for one task.
struct ReplyMessage {
  ReplyKind kind;
  std::uint64_t job;
  std::uint64_t chunk;
  std::uint64_t payload_bytes;  ///< result bytes that follow this message in the pipe
  std::uint64_t result_bytes;   ///< serialized result bytes written to the task's result buffer
  // When the worker began and finished the task (monotonic_ns, its slice read from the pipe
  // included), and the CPU it finished on: what a Trace draws as the chunk's span. Always sent:
  // reading them costs less than 0.1 us a task, and a pool need not know whether anyone looks.
  std::int64_t began_ns;
  std::int64_t ended_ns;
  std::int32_t cpu;
  char what[208];  ///< failed: the exception's what(), truncated, NUL-terminated
};

static_assert(sizeof(TaskMessage) <= PIPE_BUF && sizeof(ReplyMessage) <= PIPE_BUF,
              "control messages must be atomic pipe writes");

/// What a worker needs to know, decided by the master before fork (spawn() has already pinned it,
/// set its signals, armed its parent-death signal and closed every other descriptor).
struct Mailbox;

struct WorkerSetup {
  int task_fd;                           ///< read end of the master's task pipe
  int reply_fd;                          ///< write end of the reply pipe
  Mailbox* mailbox;                      ///< the messages' rings (mailbox.hpp); null: through the pipes
  int mailbox_fd;                        ///< with mailbox null, a mailbox to map first (a ForkServer's child); -1: none
  int task_bell_fd;                      ///< with a mailbox: read end of the master's doorbell pipe
  int reply_bell_fd;                     ///< with a mailbox: write end of the worker's doorbell pipe
  std::chrono::microseconds spin;        ///< how long to poll for the next task before sleeping, at first
  std::chrono::microseconds spin_limit;  ///< how long that may grow (IdleSpin)
  PoolOptions::SpinStyle spin_style;     ///< between two looks of a spin (resolved: yield or pause)
  const std::function<void()>* initializer;  ///< run once before "ready"; null or empty: none
};

/// A worker's exit status when its function called exit() or quick_exit(): the worker's own handler
/// runs first and leaves with it, so the master's atexit handlers and stdio buffers never run there.
inline constexpr int kExitCalledExit = 6;
/// A worker's exit status after its initializer threw (it said so in an initializer_failed reply).
inline constexpr int kExitInitializerFailed = 7;
/// A worker forked by a ForkServer could not map the mailbox it was sent.
inline constexpr int kExitMailboxUnmapped = 8;

/// The worker process's whole life after fork: the initializer, the handshake, then tasks until
/// end-of-file on its task pipe. Returns the worker's exit status, for spawn() to _exit with (it
/// leaves with _exit itself when a pipe fails), so nothing of the master runs there.
int run_worker(const WorkerSetup& setup) noexcept;

}  // namespace mpdemo::detail
