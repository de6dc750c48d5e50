// Mailboxes: the control messages' fast path between a ProcessPool master and one worker.
//
// Through a pipe every message costs a write() and a read(), and on a VM a system call is a
// microsecond or more: a warm map of two chunks on two workers paid tens of microseconds in them,
// ten times an OpenMP region. So each worker gets a page of shared memory, mapped before fork, with
// one ring of messages each way. Posting is a copy and a store; a reader that is spinning sees it in
// the time a cache line takes to move between cores, with no system call at all.
//
// The pipes stay, for what shared memory cannot do:
//  - sleeping. A reader that has spun without news (PoolOptions::spin; a worker's wait for its next
//    task may spin longer, PoolOptions::spin_limit) says so in the ring
//    (`reader_asleep`) and sleeps in poll() on its pipe; the writer that finds the flag raised
//    clears it and writes one byte, the doorbell. poll() is kept rather than a futex because the
//    master's wait must also end on a death, an interrupt, terminate() or a deadline, all of which
//    are descriptors or timeouts; a futex waits on one word.
//  - deaths. A dead worker's pipes hang up: the sleeping master wakes at once, never hangs.
//  - bytes: the pipe data path's slices and serialized results too large for their buffer still
//    follow their message through the pipe, in the order the messages were posted.
// ControlPath::pipes sends the messages themselves through the pipes, as the lesson's textbook
// design, to measure one against the other.
//
// Who owes the doorbell is decided by one exchange on `reader_asleep`: the reader raises it and then
// looks at the ring once more (both sequentially consistent); the writer publishes, then makes its
// count sequentially consistent and looks at the flag, so at least one of them sees the other.
// Whoever lowers the raised flag first wins: the writer, and a byte is on its way that the reader
// must consume; the reader, and none is.
//
// The writer's look may come later than its post (RingWriter::publish, then reader_may_sleep), as
// long as it comes before the writer waits for anything or begins anything long. The look waits
// until the post's stores are visible to the other core, and on the project's VM that wait, paid
// message by message, was a large part of what a warm map of 10^5 elements lost between its chunks
// (a trial without it: 0.4-0.8 us of 17). Looked at later, the stores have gone out meanwhile:
//  - a worker looks once it has claimed its next task (the claim waits for them anyway), or before
//    it waits for one;
//  - the master once it has handed out all it will (Dispatcher::ring_sleeping_workers): as submit()
//    and serve() leave, and before anything of theirs that may wait or run fn's code (a wait for
//    answers, a new worker or a leaving one, reading the next answer, writing a slice);
//  - either looks at once when bytes follow the message through a pipe: the reader must be awake to
//    read them, or a full pipe would block both.
#pragma once

#include "mpdemo/sys/fd.hpp"
#include "mpdemo/sys/trace.hpp"
#include "pool_protocol.hpp"

#include <sys/mman.h>
#include <unistd.h>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <new>
#include <system_error>
#include <type_traits>
#include <utility>

namespace mpdemo::detail {

/// A reader spinning for long (a long PoolOptions::spin, or a master kept busy by other workers)
/// would not see the other side hang up, which only shows on the pipes: every 10 ms it looks at them
/// without sleeping, so a death is noticed within that (a poll() call per 10 ms: free). A stop the
/// master says at once, in the mailbox (Mailbox::closing).
inline constexpr std::int64_t kHangUpCheckNs = 10'000'000;

/// When an awake reader next looks at its pipes for a hang-up: at once the first time, then every
/// kHangUpCheckNs.
class HangUpSchedule {
 public:
  /// True, and the period restarts, if a look is due now.
  bool due() noexcept {
    const std::int64_t now = monotonic_ns();
    if (now - last_ns_ < kHangUpCheckNs) return false;
    last_ns_ = now;
    return true;
  }
  /// The pipes were just looked at another way (asleep in poll): the next look is a period away.
  void looked() noexcept { last_ns_ = monotonic_ns(); }

 private:
  std::int64_t last_ns_ = 0;
};

/// Messages one way, at most kTasksInFlight unread at once (the master holds back a worker's next
/// task until it has read an answer, and a worker answers only tasks it was given), so a slot is
/// never written while it is unread. (A task the master took back, Mailbox::tasks_claimed, is not
/// held: its slot may be written again, and the worker drops what it read there.)
template <class Message>
struct Ring {
  static_assert(std::is_trivially_copyable_v<Message>);
  alignas(64) std::atomic<std::uint64_t> posted{0};  ///< messages written so far (by the writer only)
  std::atomic<std::uint32_t> reader_asleep{0};       ///< raised: the reader sleeps in poll() on its pipe
  alignas(64) Message slots[kTasksInFlight];
};

/// One worker's page of shared memory.
struct Mailbox {
  Ring<TaskMessage> tasks;     ///< master -> worker
  Ring<ReplyMessage> replies;  ///< worker -> master
  /// Tasks claimed so far, in the order they were posted: by the worker as it takes one out of its
  /// ring (before it runs it), or by the master taking back the oldest unclaimed one, which the
  /// worker has not begun (Dispatcher::claim_held_task: a caller computing its share, with nothing
  /// else left, runs it itself; or another worker left with nothing runs it, Dispatcher::rebalance).
  /// Each side claims task k by moving this word from k to k + 1, so exactly one of them gets it; the
  /// worker reads a task, then claims it, and drops it if the master claimed it first. A task's slot
  /// is written again only once the task is claimed. After a death, the tasks posted and not claimed
  /// were never started, and are handed out again.
  alignas(64) std::atomic<std::uint64_t> tasks_claimed{0};
  /// Raised by the master as it hangs up the worker's task side (the pool stops, or retires it): a
  /// worker spinning for its next task leaves at once, rather than at its next look at the pipes.
  alignas(64) std::atomic<std::uint32_t> closing{0};
};
static_assert(std::atomic<std::uint64_t>::is_always_lock_free && std::atomic<std::uint32_t>::is_always_lock_free,
              "the rings' counters are shared between processes: they must not hide a lock");

/// Rings a sleeping reader's doorbell: one byte on its doorbell pipe. False if the write failed (the
/// reader is gone: EPIPE, or SIGPIPE where it is not blocked).
inline bool ring_doorbell(int bell_fd) noexcept {
  const char doorbell = 1;
  ssize_t written;
  do {
    written = ::write(bell_fd, &doorbell, 1);
  } while (written < 0 && errno == EINTR);
  return written == 1;
}

/// The writing end of a ring: posts a message, and says when the reader sleeps and must be rung.
template <class Message>
class RingWriter {
 public:
  RingWriter() = default;
  explicit RingWriter(Ring<Message>* ring) noexcept : ring_(ring) {}

  /// Posts `message` without looking whether the reader sleeps: the caller owes that look,
  /// reader_may_sleep(), before it waits for anything or begins anything long.
  void publish(const Message& message) noexcept {
    ring_->slots[posted_ % kTasksInFlight] = message;
    ring_->posted.store(++posted_, std::memory_order_release);
  }
  /// The look every publish owes (one look answers for all before it): true if the reader said it
  /// sleeps, and the caller must then claim_doorbell(). The count is made sequentially consistent
  /// first, the other half of the reader's doze(): by a fence, or, under ThreadSanitizer, which does
  /// not model fences, by writing the count again (dearer: it takes the line back from a reader
  /// spinning on it).
  [[nodiscard]] bool reader_may_sleep() noexcept {
#if defined(__SANITIZE_THREAD__)
    ring_->posted.fetch_add(0, std::memory_order_seq_cst);
#else
    std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
    return ring_->reader_asleep.load(std::memory_order_seq_cst) != 0;
  }
  /// Lowers the flag reader_may_sleep() found raised. True if this did (the reader sleeps): the caller
  /// now owes it ring_doorbell(), at once. False if the reader woke by itself first.
  [[nodiscard]] bool claim_doorbell() noexcept {
    return ring_->reader_asleep.exchange(0, std::memory_order_seq_cst) == 1;
  }
  /// Messages posted so far.
  std::uint64_t posted() const noexcept { return posted_; }

 private:
  Ring<Message>* ring_ = nullptr;
  std::uint64_t posted_ = 0;
};

/// The reading end of a ring: takes messages, and sleeps on the pipe when there are none.
template <class Message>
class RingReader {
 public:
  RingReader() = default;
  explicit RingReader(Ring<Message>* ring) noexcept : ring_(ring) {}

  bool has_message() const noexcept { return ring_->posted.load(std::memory_order_seq_cst) != taken_; }
  /// Copies out the oldest unread message; false if there is none.
  bool take(Message& message) noexcept {
    if (!has_message()) return false;
    message = ring_->slots[taken_ % kTasksInFlight];
    ++taken_;
    return true;
  }
  /// The number, counting from 0 in the order they were posted, of the message take() reads next.
  std::uint64_t next_number() const noexcept { return taken_; }
  /// Says the reader is about to sleep in poll() on the pipe. Look at the ring once more before
  /// sleeping, and call settle() after, whatever woke it.
  void doze() noexcept { ring_->reader_asleep.store(1, std::memory_order_seq_cst); }

  enum class Settled {
    awake,    ///< no doorbell byte is owed, and the pipe has nothing else to say
    rung,     ///< the writer rang: its byte was consumed, a message is in the ring
    hung_up,  ///< end-of-file on the pipe: the writer is gone
  };
  /// Ends a doze: consumes the doorbell byte if the writer rang (blocking for it: the writer writes
  /// it right after the exchange, or dies and hangs up), or, if `pipe_readable`, reads what made the
  /// pipe readable -- only end-of-file can, since bytes are read as soon as their message is.
  Settled settle(int pipe_fd, bool pipe_readable) noexcept {
    const bool rung = ring_->reader_asleep.exchange(0, std::memory_order_seq_cst) == 0;
    if (!rung && !pipe_readable) return Settled::awake;
    char byte;
    ssize_t got;
    do {
      got = ::read(pipe_fd, &byte, 1);
    } while (got < 0 && errno == EINTR);
    if (got <= 0) return Settled::hung_up;
    return rung ? Settled::rung : Settled::awake;
  }

 private:
  Ring<Message>* ring_ = nullptr;
  std::uint64_t taken_ = 0;
};

/// One Mailbox in a page of shared memory, mapped by the master before it forks the worker (which
/// inherits it at the same address), or, for a worker a ForkServer forks, in a memfd the worker maps
/// itself (at an address of its own); unmapped on destruction. Move-only; empty by default.
class MailboxMapping {
 public:
  MailboxMapping() = default;
  /// Maps and constructs a fresh Mailbox. `with_descriptor`: in a memfd whose descriptor is kept
  /// (descriptor()), for a worker that does not inherit the mapping (forked by a ForkServer) and maps
  /// it itself (map_sent). Throws std::system_error if the kernel refuses.
  static MailboxMapping create(bool with_descriptor = false) {
    MailboxMapping mapping;
    int fd = -1;
    if (with_descriptor) {
      mapping.descriptor_ = FileDescriptor::adopt(::memfd_create("mpdemo mailbox", MFD_CLOEXEC));
      fd = mapping.descriptor_.get();
      if (fd < 0 || ::ftruncate(fd, sizeof(Mailbox)) != 0) {
        throw std::system_error(errno, std::generic_category(), "make a worker's mailbox (memfd)");
      }
    }
    void* page = ::mmap(nullptr, sizeof(Mailbox), PROT_READ | PROT_WRITE,
                        MAP_SHARED | (with_descriptor ? 0 : MAP_ANONYMOUS), fd, 0);
    if (page == MAP_FAILED) throw std::system_error(errno, std::generic_category(), "map a worker's mailbox");
    mapping.mailbox_ = new (page) Mailbox;
    return mapping;
  }
  /// In the worker: maps the mailbox the master made with a descriptor; null if the kernel refuses.
  static Mailbox* map_sent(int fd) noexcept {
    void* page = ::mmap(nullptr, sizeof(Mailbox), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    return page == MAP_FAILED ? nullptr : static_cast<Mailbox*>(page);
  }
  MailboxMapping(MailboxMapping&& other) noexcept
      : mailbox_(std::exchange(other.mailbox_, nullptr)), descriptor_(std::move(other.descriptor_)) {}
  MailboxMapping& operator=(MailboxMapping&& other) noexcept {
    if (this != &other) {
      reset();
      mailbox_ = std::exchange(other.mailbox_, nullptr);
      descriptor_ = std::move(other.descriptor_);
    }
    return *this;
  }
  ~MailboxMapping() { reset(); }

  Mailbox* get() const noexcept { return mailbox_; }
  /// The memfd behind it (create(true)); -1 otherwise.
  int descriptor() const noexcept { return descriptor_.get(); }
  /// Once the worker has it: nothing else needs the descriptor.
  void forget_descriptor() noexcept { descriptor_.reset(); }
  void reset() noexcept {
    descriptor_.reset();
    if (mailbox_ == nullptr) return;
    mailbox_->~Mailbox();
    ::munmap(mailbox_, sizeof(Mailbox));
    mailbox_ = nullptr;
  }

 private:
  Mailbox* mailbox_ = nullptr;
  FileDescriptor descriptor_;
};

}  // namespace mpdemo::detail
