// The worker side of the ProcessPool. Runs in a child forked from a master that may have threads,
// so it sticks to system calls and the kernel it is sent: no locks of the master's, no stdio.
#include "mailbox.hpp"
#include "pool_protocol.hpp"
#include "spin_wait.hpp"

#include "mpdemo/sys/fd.hpp"
#include "mpdemo/sys/topology.hpp"
#include "mpdemo/sys/trace.hpp"

#include <sys/mman.h>
#include <unistd.h>
#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <vector>

namespace mpdemo::detail {

namespace {

constexpr int kExitPipeError = 4;
constexpr int kExitOutOfMemory = 5;

bool receive(int fd, void* data, std::size_t size) noexcept {
  return read_whole(fd, data, size) == ReadOutcome::complete;
}

void send(int fd, const void* data, std::size_t size) noexcept {
  if (!write_whole(fd, data, size)) ::_exit(kExitPipeError);  // the master is gone: nobody is left to tell
}

// The pipe data path's slices, in memory of the worker's own: mmap rather than malloc, since the
// master may have had threads (and so locks in any state) when it forked.
class PayloadBuffer {
 public:
  PayloadBuffer() = default;
  PayloadBuffer(const PayloadBuffer&) = delete;
  PayloadBuffer& operator=(const PayloadBuffer&) = delete;
  ~PayloadBuffer() {
    if (data_ != nullptr) ::munmap(data_, capacity_);
  }
  void* reserve(std::size_t bytes) noexcept {
    if (bytes > capacity_) {
      if (data_ != nullptr) ::munmap(data_, capacity_);
      void* mapped = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (mapped == MAP_FAILED) ::_exit(kExitOutOfMemory);
      data_ = mapped;
      capacity_ = bytes;
    }
    return data_;
  }

 private:
  void* data_ = nullptr;
  std::size_t capacity_ = 0;
};

void describe(ReplyMessage& reply, const char* what) noexcept {
  std::strncpy(reply.what, what, sizeof(reply.what) - 1);
  reply.what[sizeof(reply.what) - 1] = '\0';
}

// Faults in, with one call per range, the pages a chunk will read and write. A worker that has not
// touched them yet would otherwise take a page fault per page (per 4 KiB, unless the kernel gives the
// arena huge pages), several times slower than MADV_POPULATE_* (Linux 5.14). Ranges it has populated
// are remembered, so a warm pool pays this once per array and chunk layout; small ranges are left to
// ordinary faults, cheaper than a call.
class PagePopulator {
 public:
  void ensure(const void* address, std::size_t bytes, bool for_writing) noexcept {
    if (bytes < kSmallestRange) return;
    const auto page = static_cast<std::uintptr_t>(page_size());
    const auto begin = reinterpret_cast<std::uintptr_t>(address) & ~(page - 1);
    const auto end = (reinterpret_cast<std::uintptr_t>(address) + bytes + page - 1) & ~(page - 1);
    for (std::size_t i = 0; i < count_; ++i) {
      const Range& seen = seen_[i];
      if (seen.begin <= begin && end <= seen.end && (seen.for_writing || !for_writing)) return;
    }
    // Best effort: an old kernel (EINVAL) or a failure leaves the pages to ordinary faults.
    ::madvise(reinterpret_cast<void*>(begin), end - begin, for_writing ? MADV_POPULATE_WRITE : MADV_POPULATE_READ);
    if (count_ == seen_.size()) count_ = 0;
    seen_[count_++] = {begin, end, for_writing};
  }

 private:
  static constexpr std::size_t kSmallestRange = std::size_t{256} << 10;
  struct Range {
    std::uintptr_t begin;
    std::uintptr_t end;
    bool for_writing;
  };
  std::array<Range, 256> seen_{};
  std::size_t count_ = 0;
};

/// One worker's life after the handshake, in steps: wait for a task, find its data (in shared memory,
/// or read from the pipe), run the kernel, answer. Its fields are what lives from one task to the next.
class Worker {
 public:
  explicit Worker(const WorkerSetup& setup) noexcept : setup_(setup), idle_spin_(setup.spin, setup.spin_limit) {
    if (setup.mailbox != nullptr) {
      tasks_ = RingReader<TaskMessage>(&setup.mailbox->tasks);
      replies_ = RingWriter<ReplyMessage>(&setup.mailbox->replies);
    }
  }

  /// Runs the pool's initializer, if it has one; false (after saying why) if it threw.
  bool initialize() noexcept {
    if (setup_.initializer == nullptr || !*setup_.initializer) return true;
    ReplyMessage failure{};
    failure.kind = ReplyKind::initializer_failed;
    try {
      (*setup_.initializer)();
      return true;
    } catch (const std::exception& e) {
      describe(failure, e.what());
    } catch (...) {
      describe(failure, "an exception not derived from std::exception");
    }
    send(setup_.reply_fd, &failure, sizeof(failure));
    return false;
  }

  /// Tells the master this worker is ready: the master's start-up waits for exactly this.
  void announce_ready() noexcept {
    ReplyMessage ready{};
    ready.kind = ReplyKind::ready;
    send(setup_.reply_fd, &ready, sizeof(ready));
  }

  /// Waits (spinning first) for the next task; false at end-of-file, when the pool stops (or retires
  /// this worker after its maxtasksperchild tasks).
  bool next_task(TaskMessage& task) noexcept {
    const std::int64_t waiting_since = monotonic_ns();
    if (setup_.mailbox == nullptr) {
      pollfd next{setup_.task_fd, POLLIN, 0};
      while (poll_after_spinning(&next, 1, idle_spin_.current(), setup_.spin_style) < 0 && errno == EINTR) {
      }
      // poll_after_spinning does not say whether it slept; a wait longer than the spin did (or was
      // about to), which is all IdleSpin needs to know.
      const std::int64_t waited = monotonic_ns() - waiting_since;
      if (waited > idle_spin_.current().count() * 1000) {
        idle_spin_.slept(waited);
      } else {
        idle_spin_.caught_spinning();
      }
      return receive(setup_.task_fd, &task, sizeof(task));
    }
    for (;;) {
      // About to wait: the master hears of the last answer first.
      if (!tasks_.has_message()) tell_master_if_asleep();
      if (!spin_until([this] { return tasks_.has_message() || stop_announced(); }, idle_spin_.current(),
                      setup_.spin_style) ||
          !tasks_.has_message()) {
        // Asleep until the doorbell rings, or end-of-file says the pool stops (or retires this worker).
        tasks_.doze();
        pollfd next{setup_.task_bell_fd, POLLIN, 0};
        bool readable = false;
        if (!tasks_.has_message()) {
          while (::poll(&next, 1, -1) < 0 && errno == EINTR) {
          }
          readable = true;
        }
        if (tasks_.settle(setup_.task_bell_fd, readable) == RingReader<TaskMessage>::Settled::hung_up) return false;
        idle_spin_.slept(monotonic_ns() - waiting_since);
      } else {
        idle_spin_.caught_spinning();
      }
      // Read, then claimed: a task is kept only if the master has not taken it back, and its slot is
      // written again only once it is claimed (by either side), so what was read is that task. A task
      // the master took back is dropped (what was read may then be a newer task's message, or half of
      // one), and the wait goes on. Claimed first and read after, the slot could be reused between
      // the two: the master may post again once it has taken back the task behind this one.
      std::uint64_t number = tasks_.next_number();
      if (tasks_.take(task) &&
          setup_.mailbox->tasks_claimed.compare_exchange_strong(number, number + 1, std::memory_order_acq_rel)) {
        // Before the task, which may be long. On x86 the claim's locked instruction has already waited
        // for the answer's stores, so the look's fence costs little here.
        tell_master_if_asleep();
        return true;
      }
    }
  }

  /// Whether, spinning, the worker is told to leave (the pool stops or retires it): at once by the
  /// master's flag in the mailbox, and should the master die without raising it, by its doorbell
  /// hung up, a look every kHangUpCheckNs, so that a long spin does not delay the pool's stop.
  bool stop_announced() noexcept {
    if (setup_.mailbox->closing.load(std::memory_order_acquire) != 0) return true;
    if (!hang_up_looks_.due()) return false;
    pollfd bell{setup_.task_bell_fd, POLLIN, 0};
    return ::poll(&bell, 1, 0) > 0;  // awake, nobody rings: only end-of-file makes it readable
  }

  /// Carries out one task and answers it.
  void serve(const TaskMessage& task) noexcept {
    const std::int64_t began = monotonic_ns();
    if (task.kind == TaskKind::serialized) {
      serve_serialized(task, began);
      return;
    }
    const Chunk chunk = task.payload_bytes > 0 ? receive_slice(task) : locate_in_shared_memory(task);
    ReplyMessage reply = run_kernel(task, chunk);
    stamp(reply, began);
    answer(reply, chunk, task);
  }

 private:
  /// Where a task's elements are read and written, and the index of its first element there.
  struct Chunk {
    const void* input;
    void* output;
    std::size_t begin;
    std::size_t count;
  };

  /// The pipe data path: the slice follows the task; results go to a buffer of the worker's own.
  Chunk receive_slice(const TaskMessage& task) noexcept {
    const std::size_t count = task.end - task.begin;
    void* slice = input_slice_.reserve(task.payload_bytes);
    if (!receive(setup_.task_fd, slice, task.payload_bytes)) ::_exit(kExitPipeError);
    return {slice, output_slice_.reserve(count * task.output_element_bytes), 0, count};
  }

  /// The shared-memory path: the data is where the task says, at the same address as in the master.
  Chunk locate_in_shared_memory(const TaskMessage& task) noexcept {
    const std::size_t count = task.end - task.begin;
    pages_.ensure(static_cast<const char*>(task.input) + task.begin * task.input_element_bytes,
                  count * task.input_element_bytes, false);
    pages_.ensure(static_cast<char*>(task.output) + task.begin * task.output_element_bytes,
                  count * task.output_element_bytes, true);
    return {task.input, task.output, task.begin, count};
  }

  static ReplyMessage reply_to(const TaskMessage& task) noexcept {
    ReplyMessage reply{};
    reply.kind = ReplyKind::done;
    reply.job = task.job;
    reply.chunk = task.chunk;
    return reply;
  }

  /// When the task ran and where, for the master's Trace.
  static void stamp(ReplyMessage& reply, std::int64_t began) noexcept {
    reply.began_ns = began;
    reply.ended_ns = monotonic_ns();
    reply.cpu = current_cpu();
  }

  /// Runs `work`; an exception becomes a failed answer carrying its what().
  template <class Work>
  static void run_guarded(ReplyMessage& reply, Work&& work) noexcept {
    try {
      work();
    } catch (const std::exception& e) {
      reply.kind = ReplyKind::failed;
      describe(reply, e.what());
    } catch (...) {
      reply.kind = ReplyKind::failed;
      describe(reply, "an exception not derived from std::exception");
    }
  }

  /// Runs the element kernel over the chunk.
  static ReplyMessage run_kernel(const TaskMessage& task, const Chunk& chunk) noexcept {
    ReplyMessage reply = reply_to(task);
    run_guarded(reply, [&] { task.kernel(chunk.input, chunk.output, chunk.begin, chunk.begin + chunk.count); });
    return reply;
  }

  /// Sends the answer, and on the pipe path the results after it.
  void answer(ReplyMessage& reply, const Chunk& chunk, const TaskMessage& task) noexcept {
    const bool through_pipe = task.payload_bytes > 0;
    if (through_pipe && reply.kind == ReplyKind::done) reply.payload_bytes = chunk.count * task.output_element_bytes;
    post(reply);
    if (reply.payload_bytes > 0) send(setup_.reply_fd, chunk.output, reply.payload_bytes);
  }

  /// The serialized path: elements read from shared memory, results written to the task's result
  /// buffer in shared memory, or after the reply when they do not fit there.
  void serve_serialized(const TaskMessage& task, std::int64_t began) noexcept {
    ReplyMessage reply = reply_to(task);
    results_.clear();
    run_guarded(reply, [&] { task.serial({task.serialized, task.serialized_bytes}, results_); });
    stamp(reply, began);
    if (reply.kind == ReplyKind::done) {
      if (results_.size() <= task.result_capacity) {
        if (!results_.empty()) std::memcpy(task.result_buffer, results_.data(), results_.size());
        reply.result_bytes = results_.size();
      } else {
        reply.payload_bytes = results_.size();
      }
    }
    post(reply);
    if (reply.payload_bytes > 0) send(setup_.reply_fd, results_.data(), reply.payload_bytes);
  }

  /// Answers a task: into the mailbox, or through the reply pipe. Whether the master sleeps is looked
  /// at when the next task is claimed or the wait for it begins (tell_master_if_asleep), so the answer's
  /// stores go out meanwhile. Results that follow through the pipe wait for no look: the master must
  /// be awake to read them, or a full pipe would block both.
  void post(const ReplyMessage& reply) noexcept {
    if (setup_.mailbox == nullptr) {
      send(setup_.reply_fd, &reply, sizeof(reply));
      return;
    }
    replies_.publish(reply);
    answer_look_owed_ = true;
    if (reply.payload_bytes > 0) tell_master_if_asleep();
  }

  /// The look an answer owes: rings the master if it sleeps.
  void tell_master_if_asleep() noexcept {
    if (!answer_look_owed_) return;
    answer_look_owed_ = false;
    if (replies_.reader_may_sleep() && replies_.claim_doorbell() && !ring_doorbell(setup_.reply_bell_fd)) {
      ::_exit(kExitPipeError);  // the master is gone
    }
  }

  WorkerSetup setup_;
  RingReader<TaskMessage> tasks_;     // with a mailbox: where tasks arrive
  RingWriter<ReplyMessage> replies_;  // and where answers go
  bool answer_look_owed_ = false;     // an answer was published: a look for a sleeping master is owed
  HangUpSchedule hang_up_looks_;
  IdleSpin idle_spin_;  // how long the next wait for a task spins before it sleeps
  PayloadBuffer input_slice_;
  PayloadBuffer output_slice_;
  PagePopulator pages_;
  // Serialized results, kept from one task to the next. Values that are not trivially copyable need
  // the heap anyway (a std::string's characters): glibc's fork leaves malloc usable in the child.
  std::vector<std::byte> results_;
};

}  // namespace

int run_worker(const WorkerSetup& sent) noexcept {
  // exit() in fn would run the master's atexit handlers (and C++ static destructors, and flush the
  // master's stdio buffers) here. Handlers run last-registered first, so this one, registered after
  // fork, runs before any of them and leaves at once. glibc's fork keeps malloc usable in the child,
  // which atexit may need.
  std::atexit([] { ::_exit(kExitCalledExit); });
  std::at_quick_exit([] { ::_exit(kExitCalledExit); });

  // Forked by a ForkServer, the worker did not inherit its mailbox: it maps it from the memfd sent.
  WorkerSetup setup = sent;
  if (setup.mailbox == nullptr && setup.mailbox_fd >= 0) {
    setup.mailbox = MailboxMapping::map_sent(setup.mailbox_fd);
    if (setup.mailbox == nullptr) return kExitMailboxUnmapped;
    ::close(setup.mailbox_fd);
  }

  Worker worker(setup);
  if (!worker.initialize()) return kExitInitializerFailed;
  worker.announce_ready();
  TaskMessage task;
  while (worker.next_task(task)) worker.serve(task);
  return 0;  // end-of-file on the task pipe: the pool stops, or has retired this worker
}

}  // namespace mpdemo::detail
