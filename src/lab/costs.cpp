#include "mpdemo/lab/costs.hpp"

#include "mpdemo/pool/shared_arena.hpp"
#include "mpdemo/sys/child_process.hpp"
#include "mpdemo/sys/detail/system_call.hpp"
#include "mpdemo/sys/errors.hpp"
#include "mpdemo/sys/fd.hpp"
#include "mpdemo/sys/interrupt.hpp"
#include "mpdemo/sys/spawn.hpp"

#include <fmt/format.h>
#include <linux/futex.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <type_traits>
#include <vector>

namespace mpdemo {

namespace {

void require_positive(std::size_t value, const char* what) {
  if (value == 0) throw BadArgument(fmt::format("costs: {} must be at least 1", what));
}

// Runs `batch` (which returns the seconds it took for `operations` operations) once untimed, so that
// caches, page tables and lazily bound symbols are warm, then `repeats` times; seconds per operation.
template <class Batch>
Summary per_operation(std::size_t repeats, std::size_t operations, Batch batch) {
  require_positive(repeats, "the number of repeats");
  require_positive(operations, "the number of operations per sample");
  batch();
  std::vector<double> samples;
  samples.reserve(repeats);
  for (std::size_t i = 0; i < repeats; ++i) {
    throw_if_interrupted();
    samples.push_back(batch() / static_cast<double>(operations));
  }
  return Summary::of(samples);
}

// ---- What a forked child may do ------------------------------------------------------------------
// The parent may have had other threads at the fork, so a child must not allocate or take a lock: it
// makes system calls only, and any failure ends it with a status the parent decodes.

constexpr int kChildIoFailed = 3;
// The waker of measure_wake_of_sleeper never found the sleeper asleep in 100 tries a wake-up, or
// futex_wake failed: it leaves rather than try for ever.
constexpr int kChildNoWakeUp = 4;

// A child that cannot talk to its parent has nothing left to do: it leaves with a status the parent decodes.
void child_write(int fd, const void* data, std::size_t size) noexcept {
  if (!write_whole(fd, data, size)) ::_exit(kChildIoFailed);
}

// False on end-of-file before the first byte: the parent has closed its end, time to leave.
bool child_read(int fd, void* data, std::size_t size) noexcept {
  const ReadOutcome outcome = read_whole(fd, data, size);
  if (outcome != ReadOutcome::complete && outcome != ReadOutcome::end_of_file) ::_exit(kChildIoFailed);
  return outcome == ReadOutcome::complete;
}

// A child with nothing but stdio and `keep` open, pinned to `cpu` (-1: anywhere; a pin that fails
// ends it, since its figures would mean something else), that runs `body` and exits 0.
template <class Body>
ChildProcess fork_child(const char* role, std::vector<int> keep, int cpu, Body&& body) {
  static_assert(std::is_nothrow_invocable_v<Body&>, "a forked child's body must not throw");
  SpawnOptions options;
  options.keep_descriptors = std::move(keep);
  options.cpu = cpu;
  options.cpu_required = true;
  return spawn(role, options, [&]() noexcept {
    body();
    return 0;
  });
}

// The two pipe ends a helper child uses: commands from the parent, replies to it.
struct HelperEnds {
  int command;
  int reply;
};

// A forked child the parent drives with one-byte commands, reading replies back. The child leaves when
// the parent closes the command pipe; if the parent dies first, so does that pipe, and the child too.
class HelperProcess {
 public:
  /// `body(HelperEnds)` runs in the child, which keeps only its two ends and `keep_in_child` (ends
  /// of other pipes it uses); every other descriptor is closed there, so that the end-of-file of a
  /// pipe that belongs to someone else still reaches its reader. `cpu` pins it (-1: anywhere).
  template <class Body>
  HelperProcess(const char* role, std::initializer_list<int> keep_in_child, int cpu, Body&& body) : role_(role) {
    static_assert(std::is_nothrow_invocable_v<Body&, HelperEnds>, "a helper's body must not throw");
    Pipe command = Pipe::create();
    Pipe reply = Pipe::create();
    const HelperEnds ends{command.read_end.get(), reply.write_end.get()};
    std::vector<int> keep{ends.command, ends.reply};
    keep.insert(keep.end(), keep_in_child.begin(), keep_in_child.end());
    process_ = fork_child(role, std::move(keep), cpu, [&]() noexcept { body(ends); });
    command_ = std::move(command.write_end);
    reply_ = std::move(reply.read_end);
  }

  void send(char command) {
    const ScopedSigpipeBlock no_sigpipe;  // a dead child must give EPIPE, not kill this process
    try {
      write_all(command_.get(), &command, 1);
    } catch (const std::system_error&) {
      fail();
    }
  }

  void receive(void* data, std::size_t size) {
    bool complete = false;
    try {
      complete = read_exact(reply_.get(), data, size);
    } catch (const std::system_error&) {
    }
    if (!complete) fail();
  }

  /// Closes the command pipe and waits for the child to leave; throws unless it exited cleanly.
  void finish() {
    command_.reset();
    const ExitStatus status = process_.wait_or_kill(std::chrono::seconds(5));
    if (!status.success()) throw std::runtime_error(fmt::format("costs: {} {}", role_, status.str()));
  }

 private:
  [[noreturn]] void fail() {
    throw_if_interrupted();  // Ctrl-C reached the child too: report the interrupt, not its death
    const pid_t pid = process_.pid();
    const ExitStatus status = process_.wait_or_kill(std::chrono::seconds(1));
    throw std::runtime_error(fmt::format("costs: {} (pid {}) stopped answering: it {}", role_, pid, status.str()));
  }

  const char* role_;
  FileDescriptor command_;
  FileDescriptor reply_;
  ChildProcess process_;  // declared last, destroyed first: killed and reaped before its pipes close
};

// An anonymous private mapping in 4 KiB pages: what a process's own heap is made of.
class PrivateMemory {
 public:
  explicit PrivateMemory(std::size_t bytes) : size_(bytes) {
    require_positive(bytes, "a memory size");
    void* mapped = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mapped == MAP_FAILED) throw_errno(fmt::format("map {} bytes of private memory", bytes));
    data_ = static_cast<unsigned char*>(mapped);
    // Small pages on purpose: fork and copy-on-write pay per page, and transparent huge pages (the
    // default on some systems) would make them 512 times fewer. Best effort.
    ::madvise(mapped, bytes, MADV_NOHUGEPAGE);
  }
  ~PrivateMemory() { ::munmap(data_, size_); }
  PrivateMemory(const PrivateMemory&) = delete;
  PrivateMemory& operator=(const PrivateMemory&) = delete;

  unsigned char* data() noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  std::size_t pages() const noexcept { return (size_ + page_size() - 1) / page_size(); }

  /// One byte of every page, summed: the cheapest read that touches every page.
  std::uint64_t read_every_page() const noexcept {
    const volatile unsigned char* bytes = data_;  // the loads are the experiment
    const std::size_t step = page_size();
    std::uint64_t sum = 0;
    for (std::size_t offset = 0; offset < size_; offset += step) sum += bytes[offset];
    return sum;
  }

  /// One byte per page: the cheapest write that makes every page present and this process's own.
  void write_every_page(unsigned char value) noexcept {
    // volatile: the stores are the experiment, the compiler must not merge or drop them
    volatile unsigned char* bytes = data_;
    const std::size_t step = page_size();
    for (std::size_t offset = 0; offset < size_; offset += step) bytes[offset] = value;
  }

 private:
  unsigned char* data_ = nullptr;
  std::size_t size_;
};

CostMeasurement row(std::string name, std::string unit, const Summary& summary, std::size_t repeats,
                    std::vector<CostDetail> details = {}) {
  return {std::move(name), std::move(unit), summary, repeats, true, std::move(details)};
}

double ratio(double a, double b) { return b > 0 ? a / b : 0.0; }

}  // namespace

Summary measure_fork(std::size_t repeats, std::size_t forks) {
  return per_operation(repeats, forks, [forks] {
    const Stopwatch clock;
    for (std::size_t i = 0; i < forks; ++i) {
      ChildProcess child = fork_child("a child that exits at once", {}, -1, []() noexcept {});
      const ExitStatus status = child.wait();
      if (!status.success()) {
        throw_if_interrupted();
        throw std::runtime_error("costs: a child that should just exit " + status.str());
      }
    }
    return clock.seconds();
  });
}

Summary measure_fork_holding(std::size_t bytes, std::size_t repeats, std::size_t forks) {
  PrivateMemory held(bytes);
  held.write_every_page(1);
  return measure_fork(repeats, forks);
}

BareTeamTimes time_bare_team(std::size_t members, ForkServer* server) {
  require_positive(members, "the number of children");
  BareTeamTimes times;
  Stopwatch clock;
  // Everything the forks need is made first, as the pool makes it: after a fork every page the parent
  // writes costs a copy-on-write fault, so between two forks it only forks, or the floor would pay more
  // than the pool it is a floor for.
  struct Member {
    Pipe hang_up = Pipe::create();  // end-of-file on it tells the child to leave
    Pipe ready = Pipe::create();    // the child's one byte
  };
  std::vector<Member> team(members);
  const auto body_for = [](int hang_up, int ready) {
    return [hang_up, ready]() noexcept {
      const char byte = 1;
      child_write(ready, &byte, 1);
      char ignored = 0;
      while (child_read(hang_up, &ignored, 1)) {
      }
      return 0;
    };
  };
  using Body = decltype(body_for(-1, -1));
  constexpr const char* kRole = "a bare team's child";
  std::vector<SpawnOrder<Body>> orders;
  orders.reserve(members);
  for (Member& member : team) {
    const int hang_up = member.hang_up.read_end.get();
    const int ready = member.ready.write_end.get();
    SpawnOptions options;
    options.keep_descriptors = {hang_up, ready};
    orders.push_back({kRole, std::move(options), body_for(hang_up, ready)});
  }
  // Declared after the pipes: killed and reaped before they close. A server is asked for all of them
  // at once, as a pool asks it (spawn_each).
  std::vector<ChildProcess> children = spawn_each(orders, server);
  // A child that did not answer, or left badly, is named with how it ended.
  auto reap = [&](std::size_t i, std::chrono::milliseconds grace, bool answered) {
    const pid_t pid = children[i].pid();
    const ExitStatus status = children[i].wait_or_kill(grace);
    if (answered && status.success()) return;
    throw_if_interrupted();
    throw std::runtime_error(fmt::format("costs: a bare team's child (pid {}) {}{}", pid,
                                         answered ? "" : "did not say it was ready: it ", status.str()));
  };
  for (std::size_t i = 0; i < members; ++i) {
    team[i].hang_up.read_end.reset();
    team[i].ready.write_end.reset();
  }
  for (std::size_t i = 0; i < members; ++i) {
    char byte = 0;
    bool answered = false;
    try {
      answered = read_exact(team[i].ready.read_end.get(), &byte, 1);
    } catch (const std::system_error&) {
    }
    if (!answered) reap(i, std::chrono::seconds(1), false);
  }
  times.start = clock.lap();
  for (Member& member : team) member.hang_up.write_end.reset();
  for (std::size_t i = 0; i < members; ++i) reap(i, std::chrono::seconds(5), true);
  times.stop = clock.lap();
  return times;
}

Summary measure_thread_start(std::size_t repeats, std::size_t threads) {
  return per_operation(repeats, threads, [threads] {
    const Stopwatch clock;
    for (std::size_t i = 0; i < threads; ++i) std::thread([] {}).join();
    return clock.seconds();
  });
}

namespace {

// Seconds per round trip: `server` (a helper that, on each command, plays `round_trips` round trips
// and replies with the seconds they took, timed on its side) is asked once untimed, then `repeats` times.
Summary time_rallies(HelperProcess& server, std::size_t repeats, std::size_t round_trips) {
  return per_operation(repeats, round_trips, [&] {
    server.send('r');
    double seconds = 0;
    server.receive(&seconds, sizeof seconds);
    return seconds;
  });
}

}  // namespace

Summary measure_process_round_trip(std::size_t repeats, std::size_t round_trips, CpuPair cpus) {
  require_positive(round_trips, "the number of round trips");
  Pipe ping = Pipe::create();
  Pipe pong = Pipe::create();
  const int ping_in = ping.read_end.get(), ping_out = ping.write_end.get();
  const int pong_in = pong.read_end.get(), pong_out = pong.write_end.get();

  HelperProcess echo("the echo process", {ping_in, pong_out}, cpus.second, [&](HelperEnds) noexcept {
    char ball = 0;
    while (child_read(ping_in, &ball, 1)) child_write(pong_out, &ball, 1);
  });
  // The rally is timed inside the child that serves, so the parent's own wake-ups are not counted.
  HelperProcess server("the serving process", {ping_out, pong_in}, cpus.first, [&](HelperEnds ends) noexcept {
    char ball = 0;
    while (child_read(ends.command, &ball, 1)) {
      const auto start = std::chrono::steady_clock::now();  // clock_gettime: no allocation, no lock
      for (std::size_t i = 0; i < round_trips; ++i) {
        child_write(ping_out, &ball, 1);
        if (!child_read(pong_in, &ball, 1)) ::_exit(kChildIoFailed);
      }
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      child_write(ends.reply, &seconds, sizeof seconds);
    }
  });
  // Only the two children hold the rally's pipes now, so either one's death ends the other's read.
  ping = {};
  pong = {};

  const Summary summary = time_rallies(server, repeats, round_trips);
  server.finish();
  echo.finish();
  return summary;
}

namespace {

// The shared-word rally's end: a value the counter never reaches (it counts up from 0 by ones).
constexpr std::uint32_t kRallyOver = 0xffffffffU;

/// Wakes a process asleep on `word`; returns how many were (0: nobody slept there yet).
long wake_word(std::uint32_t* word) noexcept {
  // A shared futex (not FUTEX_PRIVATE_FLAG): the word is in memory two processes map.
  return ::syscall(SYS_futex, word, FUTEX_WAKE, 1, nullptr, nullptr, 0);
}

/// Waits until the shared `word` holds `wanted` or kRallyOver; returns what it holds then.
std::uint32_t await_word(std::uint32_t* word, std::uint32_t wanted, WordWait how, bool same_cpu) noexcept {
  const std::atomic_ref<std::uint32_t> value(*word);
  for (;;) {
    const std::uint32_t seen = value.load(std::memory_order_acquire);
    if (seen == wanted || seen == kRallyOver) return seen;
    if (how == WordWait::futex) {
      ::syscall(SYS_futex, word, FUTEX_WAIT, seen, nullptr, nullptr, 0);  // returns at once if it changed
    } else if (same_cpu) {
      ::sched_yield();  // the other side needs this CPU to answer
    } else {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
  }
}

void set_word(std::uint32_t* word, std::uint32_t value, WordWait how) noexcept {
  std::atomic_ref<std::uint32_t>(*word).store(value, std::memory_order_release);
  if (how == WordWait::futex) wake_word(word);
}

/// Tells the process at the other end of a shared-word rally that it is over: when the rally is
/// done, and on the way out of an exception.
struct RallyEnd {
  std::uint32_t* word;
  void announce() noexcept {
    std::atomic_ref<std::uint32_t>(*word).store(kRallyOver, std::memory_order_release);
    wake_word(word);
  }
  ~RallyEnd() { announce(); }
};

/// The far side of a shared-word rally, pinned to `cpu`: it waits for each odd value of `word` and
/// answers with the next even one, until the rally is over.
HelperProcess word_echo(const char* role, std::uint32_t* word, WordWait how, bool same_cpu, int cpu) {
  return HelperProcess(role, {}, cpu, [word, how, same_cpu](HelperEnds) noexcept {
    for (std::uint32_t odd = 1;; odd += 2) {
      if (await_word(word, odd, how, same_cpu) == kRallyOver) return;
      set_word(word, odd + 1, how);
    }
  });
}

/// Times `server`'s batches of `operations` (time_rallies), then ends the rally: the server first,
/// then the echo, once told it is over.
Summary time_word_rallies(HelperProcess& server, HelperProcess& echo, RallyEnd& end, std::size_t repeats,
                          std::size_t operations) {
  const Summary summary = time_rallies(server, repeats, operations);
  server.finish();
  end.announce();
  echo.finish();
  return summary;
}

}  // namespace

Summary measure_shared_word_round_trip(std::size_t repeats, std::size_t round_trips, WordWait wait, CpuPair cpus) {
  require_positive(round_trips, "the number of round trips");
  // One word on a page of its own, in memory both children inherit.
  SharedArray<std::uint32_t> shared(SharedArena::process_default(), 1);
  std::uint32_t* const word = shared.data();
  *word = 0;
  const bool same_cpu = cpus.first >= 0 && cpus.first == cpus.second;

  HelperProcess echo = word_echo("the echo process", word, wait, same_cpu, cpus.second);
  // As with the pipes, the rally is timed inside the child that serves.
  HelperProcess server("the serving process", {}, cpus.first, [&](HelperEnds ends) noexcept {
    char command = 0;
    std::uint32_t even = 0;
    while (child_read(ends.command, &command, 1)) {
      const auto start = std::chrono::steady_clock::now();
      for (std::size_t i = 0; i < round_trips; ++i, even += 2) {
        set_word(word, even + 1, wait);
        if (await_word(word, even + 2, wait, same_cpu) == kRallyOver) ::_exit(kChildIoFailed);
      }
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      child_write(ends.reply, &seconds, sizeof seconds);
    }
  });
  // The echo leaves once told the rally is over: before it is waited for, or on the way out of an exception.
  RallyEnd rally_end{word};
  return time_word_rallies(server, echo, rally_end, repeats, round_trips);
}

Summary measure_wake_of_sleeper(std::size_t repeats, std::size_t wakes, CpuPair cpus) {
  require_positive(wakes, "the number of wake-ups");
  SharedArray<std::uint32_t> shared(SharedArena::process_default(), 1);
  std::uint32_t* const word = shared.data();
  *word = 0;

  // It sleeps in FUTEX_WAIT at once, never spinning: each wake-up finds it asleep, its core idle.
  HelperProcess sleeper = word_echo("the sleeping process", word, WordWait::futex, false, cpus.second);
  HelperProcess waker("the waking process", {}, cpus.first, [&](HelperEnds ends) noexcept {
    char command = 0;
    std::uint32_t even = 0;
    while (child_read(ends.command, &command, 1)) {
      double waking = 0;
      std::size_t tries = 0;
      for (std::size_t counted = 0; counted < wakes; even += 2) {
        if (++tries > 100 * wakes) ::_exit(kChildNoWakeUp);
        // Long enough for the sleeper to be in the kernel and its core to have halted (an idle vCPU
        // halts at once when the guest has no cpuidle driver that polls first). A signal does not
        // cut it short.
        timespec pause{0, std::chrono::nanoseconds(kSleeperPause).count()};
        while (::nanosleep(&pause, &pause) != 0 && errno == EINTR) {
        }
        const auto start = std::chrono::steady_clock::now();
        std::atomic_ref<std::uint32_t>(*word).store(even + 1, std::memory_order_release);
        const long woken = wake_word(word);
        const auto end = std::chrono::steady_clock::now();
        if (woken < 0) ::_exit(kChildNoWakeUp);
        if (await_word(word, even + 2, WordWait::futex, false) == kRallyOver) ::_exit(kChildIoFailed);
        // Not yet asleep (its FUTEX_WAIT had not begun): it saw the word change by itself, and that
        // was no wake-up.
        if (woken != 1) continue;
        waking += std::chrono::duration<double>(end - start).count();
        ++counted;
      }
      child_write(ends.reply, &waking, sizeof waking);
    }
  });
  RallyEnd rally_end{word};
  return time_word_rallies(waker, sleeper, rally_end, repeats, wakes);
}

Summary measure_thread_round_trip(std::size_t repeats, std::size_t round_trips) {
  // `hits` is odd while the ball is with the echo thread, even when it is back.
  struct Rally {
    std::mutex mutex;
    std::condition_variable turn;
    std::uint64_t hits = 0;
    bool over = false;
  } rally;
  std::thread echo([&rally] {
    std::unique_lock lock(rally.mutex);
    for (;;) {
      rally.turn.wait(lock, [&] { return rally.over || rally.hits % 2 == 1; });
      if (rally.over) return;
      ++rally.hits;
      rally.turn.notify_one();
    }
  });
  // Ends the rally and joins on every way out, exceptions included.
  struct EndRally {
    Rally& rally;
    std::thread& echo;
    ~EndRally() {
      {
        const std::lock_guard lock(rally.mutex);
        rally.over = true;
      }
      rally.turn.notify_one();
      echo.join();
    }
  } end_rally{rally, echo};

  return per_operation(repeats, round_trips, [&] {
    const Stopwatch clock;
    std::unique_lock lock(rally.mutex);
    for (std::size_t i = 0; i < round_trips; ++i) {
      ++rally.hits;
      rally.turn.notify_one();
      rally.turn.wait(lock, [&] { return rally.hits % 2 == 0; });
    }
    return clock.seconds();
  });
}

Summary measure_transfer(DataPath path, std::size_t bytes, std::size_t repeats) {
  // The sender's data exists before the clock starts, in its own memory; the receiver's buffer is
  // already touched, so the figure is the move and not page faults.
  PrivateMemory source(bytes);
  std::memset(source.data(), 0x5a, bytes);
  std::optional<PrivateMemory> received;
  SharedArray<unsigned char> shared;
  if (path == DataPath::pipe) {
    received.emplace(bytes);
    std::memset(received->data(), 0, bytes);
  } else {
    shared = SharedArray<unsigned char>(SharedArena::process_default(), bytes);
    std::memset(shared.data(), 0, bytes);
  }
  unsigned char* const destination = path == DataPath::pipe ? received->data() : shared.data();
  unsigned char* const from = source.data();

  HelperProcess sender("the sending process", {}, -1, [&](HelperEnds ends) noexcept {
    char tag = 0;
    while (child_read(ends.command, &tag, 1)) {
      // Stamp both ends with the tag, so the parent can tell this transfer arrived whole.
      from[0] = from[bytes - 1] = static_cast<unsigned char>(tag);
      if (path == DataPath::pipe) {
        child_write(ends.reply, from, bytes);
      } else {
        std::memcpy(destination, from, bytes);
        child_write(ends.reply, &tag, 1);
      }
    }
  });

  unsigned char tag = 0;
  const Summary summary = per_operation(repeats, 1, [&] {
    tag = static_cast<unsigned char>(tag % 255 + 1);
    const Stopwatch clock;
    sender.send(static_cast<char>(tag));
    if (path == DataPath::pipe) {
      sender.receive(destination, bytes);
    } else {
      char done = 0;
      sender.receive(&done, 1);
    }
    const double seconds = clock.seconds();
    if (destination[0] != tag || destination[bytes - 1] != tag) {
      throw std::runtime_error(fmt::format("costs: transfer {} did not arrive whole (first byte {}, last {})", tag,
                                           destination[0], destination[bytes - 1]));
    }
    return seconds;
  });
  sender.finish();
  return summary;
}

PageWriteCosts measure_page_writes_after_fork(std::size_t bytes, std::size_t repeats) {
  require_positive(repeats, "the number of repeats");
  PrivateMemory memory(bytes);
  memory.write_every_page(1);
  const auto pages = static_cast<double>(memory.pages());
  std::vector<double> first, owned;
  for (std::size_t i = 0; i < repeats; ++i) {
    throw_if_interrupted();
    // A live child holds the pages shared: the parent's first write to each must copy it. (Once the
    // child has gone, the kernel would hand the page back without a copy.)
    HelperProcess holder("the process sharing the pages", {}, -1, [](HelperEnds ends) noexcept {
      char unused = 0;
      while (child_read(ends.command, &unused, 1)) {
      }
    });
    Stopwatch clock;
    memory.write_every_page(2);
    first.push_back(clock.lap() / pages);
    memory.write_every_page(3);
    owned.push_back(clock.lap() / pages);
    holder.finish();
  }
  return {Summary::of(first), Summary::of(owned)};
}

PageReadCosts measure_page_reads_after_fork(std::size_t bytes, std::size_t repeats) {
  require_positive(repeats, "the number of repeats");
  constexpr unsigned char kValue = 7;
  PrivateMemory memory(bytes);
  memory.write_every_page(kValue);
  const auto pages = static_cast<double>(memory.pages());
  PageReadCosts costs;
  costs.value_written = kValue;
  std::vector<double> in_child, owned, faults;
  for (std::size_t i = 0; i < repeats; ++i) {
    throw_if_interrupted();
    struct ChildReport {
      double seconds;
      std::uint64_t sum;
      long faults;  // minor faults the kernel counted during the reads
    };
    HelperProcess reader("the child reading its parent's pages", {}, -1, [&memory](HelperEnds ends) noexcept {
      rusage before{};
      rusage after{};
      ::getrusage(RUSAGE_SELF, &before);
      const Stopwatch clock;
      const std::uint64_t sum = memory.read_every_page();
      const double seconds = clock.seconds();
      ::getrusage(RUSAGE_SELF, &after);
      const ChildReport report{seconds, sum, after.ru_minflt - before.ru_minflt};
      child_write(ends.reply, &report, sizeof report);
    });
    ChildReport report{};
    reader.receive(&report, sizeof report);
    reader.finish();
    in_child.push_back(report.seconds / pages);
    faults.push_back(static_cast<double>(report.faults) / pages);
    costs.child_sum = report.sum;
    const Stopwatch clock;
    [[maybe_unused]] const std::uint64_t again = memory.read_every_page();
    owned.push_back(clock.seconds() / pages);
  }
  costs.first_read_in_child = Summary::of(in_child);
  costs.read_owned = Summary::of(owned);
  costs.child_faults_per_page = Summary::of(faults).median;
  return costs;
}

CopyOnWriteDemo show_copy_on_write() {
  constexpr int kBefore = 1;
  constexpr int kWritten = 2;
  CopyOnWriteDemo demo;
  demo.before = kBefore;
  demo.written = kWritten;

  std::vector<int> own(1024, kBefore);  // ordinary heap memory: private, copied on write after fork
  SharedArray<int> shared(SharedArena::process_default(), 1024);
  std::fill(shared.begin(), shared.end(), kBefore);
  // volatile: each access is a real load or store, never folded by the compiler into a constant
  volatile int* const own_value = own.data();
  volatile int* const shared_value = shared.data();

  HelperProcess child("the copy-on-write child", {}, -1, [&](HelperEnds ends) noexcept {
    *own_value = kWritten;
    *shared_value = kWritten;
    const int seen = *own_value;
    child_write(ends.reply, &seen, sizeof seen);
  });
  child.receive(&demo.child_read, sizeof demo.child_read);
  child.finish();  // the child has written and left: what the parent reads now is final
  demo.parent_read_after_child = *own_value;
  demo.parent_read_after_child_shared = *shared_value;

  std::thread([own_value] { *own_value = kWritten; }).join();
  demo.parent_read_after_thread = *own_value;
  return demo;
}

std::optional<CpuPair> cpus_on_two_cores(const Topology& topology) {
  if (topology.worker_cpus.size() < 2) return std::nullopt;
  return CpuPair{topology.worker_cpus[0], topology.worker_cpus[1]};
}

std::vector<CostMeasurement> measure_costs(const CostOptions& options) {
  require_positive(options.repeat, "repeat");
  require_positive(options.operations, "operations");
  const std::size_t repeats = options.repeat;
  const std::size_t operations = options.operations;
  const Topology& topology = system_topology();
  std::vector<CostMeasurement> costs;

  // Starting a process or a thread. Forking a large parent costs ~50x more: fewer per sample.
  const Summary fork_small = measure_fork(repeats, operations);
  const Summary fork_large =
      measure_fork_holding(options.large_parent_bytes, repeats, std::max<std::size_t>(1, operations / 20));
  const Summary thread_start = measure_thread_start(repeats, operations);
  costs.push_back(row("fork_small_parent", "seconds per fork", fork_small, repeats,
                      {{"times_thread_start", ratio(fork_small.median, thread_start.median)}}));
  costs.push_back(row("fork_large_parent", "seconds per fork", fork_large, repeats,
                      {{"parent_bytes", static_cast<double>(options.large_parent_bytes)},
                       {"times_small_parent", ratio(fork_large.median, fork_small.median)}}));
  costs.push_back(row("thread_start", "seconds per thread", thread_start, repeats));

  // Handing over a message.
  const Summary process_trip = measure_process_round_trip(repeats, operations);
  const Summary thread_trip = measure_thread_round_trip(repeats, operations);
  costs.push_back(row("pipe_round_trip_processes", "seconds per round trip", process_trip, repeats));
  costs.push_back(row("condvar_round_trip_threads", "seconds per round trip", thread_trip, repeats,
                      {{"times_process_round_trip", ratio(thread_trip.median, process_trip.median)}}));
  // The same hand-off through a word of shared memory: asleep (futex), then awake on two cores (spin).
  const Summary futex_trip = measure_shared_word_round_trip(repeats, operations, WordWait::futex);
  costs.push_back(row("futex_round_trip_processes", "seconds per round trip", futex_trip, repeats,
                      {{"times_pipe_round_trip", ratio(futex_trip.median, process_trip.median)}}));
  // Two processes on two cores: what a wake-up costs the one who wakes (a pool's master pays it for
  // each worker it finds asleep), and the hand-off awake.
  if (const std::optional<CpuPair> pair = cpus_on_two_cores(topology)) {
    const Summary wake = measure_wake_of_sleeper(repeats, std::max<std::size_t>(1, operations / 20), *pair);
    costs.push_back(row("wake_sleeping_process", "seconds per wake-up", wake, repeats,
                        {{"first_cpu", static_cast<double>(pair->first)},
                         {"second_cpu", static_cast<double>(pair->second)},
                         {"times_futex_round_trip", ratio(wake.median, futex_trip.median)}}));
    const Summary spin_trip = measure_shared_word_round_trip(repeats, operations, WordWait::spin, *pair);
    costs.push_back(row("spin_round_trip_processes", "seconds per round trip", spin_trip, repeats,
                        {{"first_cpu", static_cast<double>(pair->first)},
                         {"second_cpu", static_cast<double>(pair->second)},
                         {"times_pipe_round_trip", ratio(spin_trip.median, process_trip.median)}}));
  } else {
    costs.push_back({"wake_sleeping_process", "seconds per wake-up", {}, 0, false, {}});
    costs.push_back({"spin_round_trip_processes", "seconds per round trip", {}, 0, false, {}});
  }

  // Context switches: a round trip between two processes is two hand-offs.
  const auto per_hand_off = [](const Summary& trip) { return Summary{trip.median / 2, trip.min / 2, trip.max / 2}; };
  const int first_cpu = topology.worker_cpus.empty() ? -1 : topology.worker_cpus.front();
  const Summary same_core = per_hand_off(measure_process_round_trip(repeats, operations, {first_cpu, first_cpu}));
  costs.push_back(row("context_switch_same_core", "seconds per switch", same_core, repeats,
                      {{"cpu", static_cast<double>(first_cpu)}}));
  if (const std::optional<CpuPair> pair = cpus_on_two_cores(topology)) {
    const Summary two_cores = per_hand_off(measure_process_round_trip(repeats, operations, *pair));
    costs.push_back(row("context_switch_two_cores", "seconds per switch", two_cores, repeats,
                        {{"first_cpu", static_cast<double>(pair->first)},
                         {"second_cpu", static_cast<double>(pair->second)},
                         {"times_same_core", ratio(two_cores.median, same_core.median)}}));
  } else {
    costs.push_back({"context_switch_two_cores", "seconds per switch", {}, 0, false, {}});
  }

  // Moving data.
  const std::size_t bytes = options.transfer_bytes;
  const Summary by_pipe = measure_transfer(DataPath::pipe, bytes, repeats);
  const Summary by_shared = measure_transfer(DataPath::shared_memory, bytes, repeats);
  costs.push_back(row("transfer_pipe", "seconds per transfer", by_pipe, repeats,
                      {{"bytes", static_cast<double>(bytes)},
                       {"bytes_per_second", ratio(static_cast<double>(bytes), by_pipe.median)}}));
  costs.push_back(row("transfer_shared_memory", "seconds per transfer", by_shared, repeats,
                      {{"bytes", static_cast<double>(bytes)},
                       {"bytes_per_second", ratio(static_cast<double>(bytes), by_shared.median)},
                       {"times_pipe", ratio(by_shared.median, by_pipe.median)}}));

  // Copy-on-write: shown, then priced.
  const CopyOnWriteDemo demo = show_copy_on_write();
  const PageWriteCosts pages = measure_page_writes_after_fork(options.page_probe_bytes, repeats);
  const auto probe_pages = static_cast<double>((options.page_probe_bytes + page_size() - 1) / page_size());
  costs.push_back(
      row("page_write_after_fork", "seconds per page", pages.first_write_after_fork, repeats,
          {{"value_before", static_cast<double>(demo.before)},
           {"value_written", static_cast<double>(demo.written)},
           {"child_read", static_cast<double>(demo.child_read)},
           {"parent_read_after_child", static_cast<double>(demo.parent_read_after_child)},
           {"parent_read_after_child_shared", static_cast<double>(demo.parent_read_after_child_shared)},
           {"parent_read_after_thread", static_cast<double>(demo.parent_read_after_thread)},
           {"pages", probe_pages},
           {"times_owned_page", ratio(pages.first_write_after_fork.median, pages.write_to_owned_page.median)}}));
  costs.push_back(row("page_write_owned", "seconds per page", pages.write_to_owned_page, repeats));
  // Reading needs no copy, and fork copied the page tables: the price left is the machine's.
  const PageReadCosts reads = measure_page_reads_after_fork(options.page_probe_bytes, repeats);
  costs.push_back(row("page_read_after_fork", "seconds per page", reads.first_read_in_child, repeats,
                      {{"pages", probe_pages},
                       {"value_written", static_cast<double>(reads.value_written)},
                       {"child_sum", static_cast<double>(reads.child_sum)},
                       {"child_faults_per_page", reads.child_faults_per_page},
                       {"times_owned_read", ratio(reads.first_read_in_child.median, reads.read_owned.median)}}));
  costs.push_back(row("page_read_owned", "seconds per page", reads.read_owned, repeats));
  return costs;
}

}  // namespace mpdemo
