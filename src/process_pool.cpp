// The master side of the ProcessPool: forking workers, handing out chunks, noticing failures.
#include "mpdemo/process_pool.hpp"

#include "mpdemo/child_process.hpp"
#include "mpdemo/chunk_plan.hpp"
#include "mpdemo/errors.hpp"
#include "mpdemo/fd.hpp"
#include "mpdemo/interrupt.hpp"
#include "mpdemo/topology.hpp"
#include "pool_protocol.hpp"
#include "spin_wait.hpp"

#include <algorithm>
#include <csignal>
#include <chrono>
#include <cstring>
#include <deque>
#include <fmt/format.h>
#include <optional>
#include <poll.h>
#include <unistd.h>

namespace mpdemo {

using detail::ReplyKind;
using detail::ReplyMessage;
using detail::TaskMessage;

namespace {

// Two tasks in flight per worker: while the master reads one answer and sends the next task, the
// worker is already busy with the second, so a pipe round trip is not paid between chunks.
constexpr std::size_t kTasksInFlight = 2;
constexpr auto kStopGrace = std::chrono::milliseconds(1000);
constexpr int kSendAttempts = 3;

struct WorkerSlot {
  ChildProcess process;
  FileDescriptor tasks;    // the master writes tasks here
  FileDescriptor replies;  // and reads the worker's answers here
  std::deque<std::uint64_t> in_flight;  // chunks sent and not yet answered, oldest first
  int cpu = -1;
};

}  // namespace

struct ProcessPool::Impl {
  std::shared_ptr<SharedArena> arena;
  std::chrono::microseconds spin{};
  std::vector<WorkerSlot> workers;
  pid_t master = ::getpid();
  double startup_seconds = 0;
  PhaseTimes last_map{};
  MapTraffic last_traffic{};
  std::uint64_t job = 0;
  // Reused by every wait, so that a warm map allocates nothing.
  std::vector<pollfd> poll_set;
  std::vector<std::size_t> poll_owners;
  std::vector<std::byte> discarded_payload;

  /// Forks the worker of slot `index` and waits until it says it is ready.
  void spawn(std::size_t index);
  /// Forks workers for slots whose worker died in an earlier map (see bury).
  void respawn_missing();
  void stop() noexcept;
  bool any_in_flight() const noexcept;
  /// Sends a task (and, on the pipe data path, the chunk's input bytes after it). Returns false if
  /// the worker is gone (EPIPE).
  bool send(std::size_t index, const TaskMessage& task, const void* payload);
  /// Reaps a dead worker and empties its slot; returns how it ended and the chunks it still held.
  /// The slot is refilled by respawn_missing at the next map, so a failing map throws at once.
  std::pair<ExitStatus, std::deque<std::uint64_t>> bury(std::size_t index);
  /// SIGKILLs and reaps every worker with tasks in flight: after an exception leaves a map half-way,
  /// none of them may write into memory the unwinding is about to free.
  void abandon_in_flight() noexcept;

  /// Blocks (spinning first) until answers or deaths arrive from workers with tasks in flight, or an
  /// interrupt (then throws Interrupted), and reports each: on_reply(worker, reply),
  /// on_death(worker, pid, status, lost chunks), destination(reply) for the pipe path's results.
  template <class OnReply, class OnDeath, class Destination>
  void await(OnReply&& on_reply, OnDeath&& on_death, Destination&& destination);

  /// The pipe data path: slices are written into the task pipes and results read back from the
  /// reply pipes, as Python's Pool pickles them through its queues.
  struct PipeTransfer {
    const std::byte* input;
    std::size_t input_element_bytes;
    std::byte* output;
    std::size_t output_element_bytes;
  };
  void dispatch(const TaskMessage& task_template, const ChunkPlan& plan, const PipeTransfer* pipe);
  void run_chunks(const TaskMessage& task_template, const ChunkPlan& plan, const PipeTransfer* pipe);
};

void ProcessPool::Impl::spawn(std::size_t index) {
  WorkerSlot& slot = workers[index];
  slot.tasks.reset();
  slot.replies.reset();
  slot.in_flight.clear();
  Pipe tasks = Pipe::create();
  Pipe replies = Pipe::create();
  // Signals stay blocked across fork, so the child cannot run the master's handlers (an
  // InterruptGuard's, say) before it has set its own dispositions; it unblocks them itself.
  sigset_t all;
  sigset_t previous;
  sigfillset(&all);
  check_error_number(pthread_sigmask(SIG_SETMASK, &all, &previous), "block signals around fork");
  const pid_t pid = ::fork();
  if (pid == 0) {
    detail::run_worker({tasks.read_end.get(), replies.write_end.get(), master, slot.cpu, spin});
  }
  const int fork_error = errno;
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  if (pid < 0) {
    errno = fork_error;
    throw_errno(fmt::format("fork worker {}", index));
  }
  slot.process = ChildProcess(pid);
  // The master keeps only its own ends: from now on end-of-file on `replies` means exactly one
  // thing, that this worker is gone (and so a worker that dies before it is ready is noticed).
  tasks.read_end.reset();
  replies.write_end.reset();
  slot.tasks = std::move(tasks.write_end);
  slot.replies = std::move(replies.read_end);
  ReplyMessage ready{};
  bool started = false;
  try {
    started = read_exact(slot.replies.get(), &ready, sizeof(ready)) && ready.kind == ReplyKind::ready;
  } catch (const std::system_error&) {
    started = false;
  }
  if (!started) {
    const ExitStatus status = slot.process.wait_or_kill(kStopGrace);
    slot.tasks.reset();
    slot.replies.reset();
    throw std::runtime_error(fmt::format("worker {} (pid {}) did not start: {}", index, pid, status.str()));
  }
}

void ProcessPool::Impl::respawn_missing() {
  for (std::size_t i = 0; i < workers.size(); ++i) {
    if (!workers[i].process.running()) spawn(i);
  }
}

void ProcessPool::Impl::stop() noexcept {
  for (WorkerSlot& slot : workers) {
    // A worker still busy with an abandoned map would finish its chunk first: nobody wants it.
    if (!slot.in_flight.empty() && slot.process.running()) ::kill(slot.process.pid(), SIGKILL);
    slot.tasks.reset();  // end-of-file: a worker waiting for work leaves
  }
  for (WorkerSlot& slot : workers) {
    if (slot.process.running()) slot.process.wait_or_kill(kStopGrace);
  }
  workers.clear();
}

bool ProcessPool::Impl::any_in_flight() const noexcept {
  return std::any_of(workers.begin(), workers.end(), [](const WorkerSlot& slot) { return !slot.in_flight.empty(); });
}

bool ProcessPool::Impl::send(std::size_t index, const TaskMessage& task, const void* payload) {
  WorkerSlot& slot = workers[index];
  try {
    write_all(slot.tasks.get(), &task, sizeof(task));
    if (task.payload_bytes > 0) write_all(slot.tasks.get(), payload, task.payload_bytes);
  } catch (const std::system_error& error) {
    if (error.code().value() == EPIPE) return false;  // the worker is gone; SIGPIPE is blocked
    throw;
  }
  last_traffic.pipe_bytes += sizeof(task) + task.payload_bytes;
  slot.in_flight.push_back(task.chunk);
  return true;
}

std::pair<ExitStatus, std::deque<std::uint64_t>> ProcessPool::Impl::bury(std::size_t index) {
  WorkerSlot& slot = workers[index];
  const ExitStatus status = slot.process.wait();
  std::deque<std::uint64_t> lost = std::move(slot.in_flight);
  slot.in_flight.clear();
  slot.tasks.reset();
  slot.replies.reset();
  return {status, std::move(lost)};
}

void ProcessPool::Impl::abandon_in_flight() noexcept {
  for (WorkerSlot& slot : workers) {
    if (slot.in_flight.empty()) continue;
    slot.process.kill_and_wait();
    slot.in_flight.clear();
    slot.tasks.reset();
    slot.replies.reset();
  }
}

template <class OnReply, class OnDeath, class Destination>
void ProcessPool::Impl::await(OnReply&& on_reply, OnDeath&& on_death, Destination&& destination) {
  poll_set.clear();
  poll_owners.clear();
  for (std::size_t i = 0; i < workers.size(); ++i) {
    if (workers[i].in_flight.empty()) continue;
    poll_set.push_back({workers[i].replies.get(), POLLIN, 0});
    poll_owners.push_back(i);
  }
  const int wake_fd = interrupt_wake_fd();
  if (wake_fd >= 0) poll_set.push_back({wake_fd, POLLIN, 0});

  if (detail::poll_after_spinning(poll_set.data(), poll_set.size(), spin) < 0) {
    if (errno == EINTR) return;  // a signal: the caller loops, and the wake-up descriptor tells which
    throw_errno("wait for the workers");
  }
  if (wake_fd >= 0 && poll_set.back().revents != 0) {
    if (const int signal_number = pending_interrupt(); signal_number != 0) throw Interrupted(signal_number);
    clear_interrupt();  // a wake-up with nothing pending (cleared meanwhile): not ours to act on
  }

  for (std::size_t k = 0; k < poll_owners.size(); ++k) {
    if (poll_set[k].revents == 0) continue;
    const std::size_t index = poll_owners[k];
    const int fd = workers[index].replies.get();
    ReplyMessage reply{};
    bool whole = false;
    // A reply, and on the pipe path the results after it; end-of-file or a torn message in either
    // means the worker died, and is reported as a death, not as a protocol error.
    try {
      whole = read_exact(fd, &reply, sizeof(reply));
      if (whole && reply.payload_bytes > 0) {
        void* into = destination(reply);
        if (into == nullptr) {
          discarded_payload.resize(reply.payload_bytes);
          into = discarded_payload.data();
        }
        whole = read_exact(fd, into, reply.payload_bytes);
        last_traffic.pipe_bytes += reply.payload_bytes;
      }
    } catch (const std::system_error&) {
      whole = false;
    }
    if (whole) {
      last_traffic.pipe_bytes += sizeof(reply);
      if (!workers[index].in_flight.empty()) workers[index].in_flight.pop_front();
      on_reply(index, reply);
    } else {
      const pid_t pid = workers[index].process.pid();
      const auto [status, lost] = bury(index);
      on_death(index, pid, status, lost);
    }
  }
}

void ProcessPool::Impl::dispatch(const TaskMessage& task_template, const ChunkPlan& plan, const PipeTransfer* pipe) {
  respawn_missing();
  const ScopedSigpipeBlock no_sigpipe;
  try {
    run_chunks(task_template, plan, pipe);
  } catch (const WorkerError&) {
    throw;  // every chunk handed out was answered or died with its worker: nothing is left running
  } catch (...) {
    abandon_in_flight();
    throw;
  }
}

void ProcessPool::Impl::run_chunks(const TaskMessage& task_template, const ChunkPlan& plan, const PipeTransfer* pipe) {
  const std::uint64_t this_job = ++job;
  std::uint64_t next_chunk = 0;
  std::optional<WorkerError> failure;

  auto record_death = [&](std::size_t index, pid_t pid, const ExitStatus& status,
                          const std::deque<std::uint64_t>& lost) {
    if (lost.empty() || failure) return;
    const ChunkRange range = plan[lost.front()];
    failure.emplace(index, pid, range.begin, range.end, fmt::format("the worker was {}", status.str()));
  };
  // On the pipe data path one task at a time: a worker then only writes results after it has read its
  // whole slice, and the master only writes slices to workers that are reading, so the two blocking
  // directions can never wait on each other.
  const std::size_t depth = pipe != nullptr ? 1 : kTasksInFlight;
  // Sends worker `index` the next chunk. A worker found dead when sent a task died idle: it held no
  // chunk of this map, so it is replaced at once and the chunk goes to its replacement.
  auto feed_one = [&](std::size_t index) {
    for (int attempt = 0; !failure && next_chunk < plan.count(); ++attempt) {
      if (!workers[index].process.running()) return;  // died mid-map: refilled at the next map
      if (attempt == kSendAttempts) {
        throw std::runtime_error(fmt::format("worker {} died {} times in a row on start-up", index, kSendAttempts));
      }
      TaskMessage task = task_template;
      task.job = this_job;
      task.chunk = next_chunk;
      task.begin = plan[next_chunk].begin;
      task.end = plan[next_chunk].end;
      const void* payload = nullptr;
      if (pipe != nullptr) {
        task.payload_bytes = (task.end - task.begin) * pipe->input_element_bytes;
        payload = pipe->input + task.begin * pipe->input_element_bytes;
      }
      if (send(index, task, payload)) {
        ++next_chunk;
        return;
      }
      const pid_t pid = workers[index].process.pid();
      const auto [status, lost] = bury(index);
      record_death(index, pid, status, lost);
      if (lost.empty()) spawn(index);
    }
  };
  // Keeps worker `index` busy with up to `depth` chunks, until all are handed out or a failure stops
  // the handing out (the chunks already out are still waited for, so none is left behind).
  auto feed = [&](std::size_t index) {
    while (!failure && next_chunk < plan.count() && workers[index].process.running() &&
           workers[index].in_flight.size() < depth) {
      feed_one(index);
    }
  };

  // The first tasks go round the workers one at a time, so that a map of two chunks on two workers
  // runs on both, not twice on the first; from then on whoever answers is fed.
  for (std::size_t round = 1; round <= depth; ++round) {
    for (std::size_t i = 0; i < workers.size() && next_chunk < plan.count(); ++i) {
      if (workers[i].in_flight.size() < round) feed_one(i);
    }
  }
  while (any_in_flight()) {
    await(
        [&](std::size_t index, const ReplyMessage& reply) {
          if (reply.job != this_job) return;
          if (reply.kind == ReplyKind::failed && !failure) {
            const ChunkRange range = plan[reply.chunk];
            failure.emplace(index, workers[index].process.pid(), range.begin, range.end,
                            std::string(reply.what, strnlen(reply.what, sizeof(reply.what))));
          }
          feed(index);
        },
        [&](std::size_t index, pid_t pid, const ExitStatus& status, const std::deque<std::uint64_t>& lost) {
          record_death(index, pid, status, lost);
        },
        [&](const ReplyMessage& reply) -> void* {
          if (pipe == nullptr || reply.job != this_job) return nullptr;
          return pipe->output + plan[reply.chunk].begin * pipe->output_element_bytes;
        });
  }
  if (failure) throw *failure;
  // Every chunk must have been handed out: if all workers died idle and could not be replaced, say so
  // rather than return a partial result.
  if (next_chunk < plan.count()) {
    throw std::runtime_error(fmt::format("only {} of {} chunks could be handed out: no worker is left",
                                         next_chunk, plan.count()));
  }
}

ProcessPool::ProcessPool(std::size_t workers) : ProcessPool(ProcessPoolOptions{workers}) {}

ProcessPool::ProcessPool(ProcessPoolOptions options) : impl_(std::make_unique<Impl>()) {
  const Stopwatch clock;
  const Topology& topology = system_topology();
  const std::size_t count = options.workers != 0 ? options.workers : topology.default_workers();
  impl_->arena = options.arena ? std::move(options.arena) : SharedArena::process_default();
  impl_->spin = options.spin;
  impl_->workers.resize(count);
  try {
    for (std::size_t i = 0; i < count; ++i) {
      if (options.pin_workers && !topology.worker_cpus.empty()) {
        impl_->workers[i].cpu = topology.worker_cpus[i % topology.worker_cpus.size()];
      }
      impl_->spawn(i);
    }
  } catch (...) {
    impl_->stop();
    throw;
  }
  impl_->startup_seconds = clock.seconds();
}

ProcessPool::~ProcessPool() {
  if (impl_) impl_->stop();
}

ProcessPool::ProcessPool(ProcessPool&&) noexcept = default;

ProcessPool& ProcessPool::operator=(ProcessPool&& other) noexcept {
  if (this != &other) {
    if (impl_) impl_->stop();
    impl_ = std::move(other.impl_);
  }
  return *this;
}

std::size_t ProcessPool::size() const noexcept { return impl_->workers.size(); }

std::vector<pid_t> ProcessPool::worker_pids() const {
  std::vector<pid_t> pids;
  for (const WorkerSlot& slot : impl_->workers) pids.push_back(slot.process.running() ? slot.process.pid() : -1);
  return pids;
}

double ProcessPool::startup_seconds() const noexcept { return impl_->startup_seconds; }
const std::shared_ptr<SharedArena>& ProcessPool::arena() const noexcept { return impl_->arena; }
const PhaseTimes& ProcessPool::last_map_timings() const noexcept { return impl_->last_map; }
const MapTraffic& ProcessPool::last_map_traffic() const noexcept { return impl_->last_traffic; }

void ProcessPool::add_collect_time(double seconds) noexcept { impl_->last_map.collect += seconds; }

void ProcessPool::execute(const Request& request, const std::function<void(const void*)>& collect) {
  PhaseTimes& times = impl_->last_map;
  times = {};
  impl_->last_traffic = {};
  Stopwatch clock;
  const ChunkPlan plan(request.size, request.chunksize, size());
  TaskMessage task{};
  task.kernel = request.kernel;
  task.input_element_bytes = request.input_element_bytes;
  task.output_element_bytes = request.output_element_bytes;

  if (request.data_path == DataPath::pipe) {
    // Nothing is shared: slices travel through the pipes during compute, straight from the caller's
    // input and into the caller's output.
    const Impl::PipeTransfer pipe{static_cast<const std::byte*>(request.input), request.input_element_bytes,
                                  static_cast<std::byte*>(request.output), request.output_element_bytes};
    impl_->dispatch(task, plan, &pipe);
    times.compute = clock.lap();
    return;
  }

  SharedArena& arena = *impl_->arena;
  const std::size_t input_bytes = request.size * request.input_element_bytes;
  const std::size_t output_bytes = request.size * request.output_element_bytes;
  // Data the caller made in the arena is used where it is; anything else is copied in (and results
  // copied out), and that copy is the price of moving data between processes.
  SharedArray<std::byte> staged_input;
  const void* input = request.input;
  if (request.size > 0 && !arena.contains(input, input_bytes)) {
    staged_input = SharedArray<std::byte>(impl_->arena, input_bytes);
    std::memcpy(staged_input.data(), request.input, input_bytes);
    impl_->last_traffic.copied_in_bytes = input_bytes;
    input = staged_input.data();
  }
  SharedArray<std::byte> staged_output;
  void* output = request.output;
  if (request.size > 0 && (output == nullptr || !arena.contains(output, output_bytes))) {
    staged_output = SharedArray<std::byte>(impl_->arena, output_bytes);
    output = staged_output.data();
  }
  times.move_in = clock.lap();

  task.input = input;
  task.output = output;
  impl_->dispatch(task, plan, nullptr);
  times.compute = clock.lap();

  if (collect) {
    collect(output);
  } else if (staged_output.data() != nullptr) {
    std::memcpy(request.output, staged_output.data(), output_bytes);
  }
  if (staged_output.data() != nullptr) impl_->last_traffic.copied_out_bytes = output_bytes;
  staged_input = {};
  staged_output = {};
  times.collect = clock.lap();
}

}  // namespace mpdemo
