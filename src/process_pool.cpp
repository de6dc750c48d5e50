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
  std::uint64_t job = 0;

  void spawn(std::size_t index);
  void stop() noexcept;
  bool any_in_flight() const noexcept;
  /// Sends a task (and, on the pipe data path, the chunk's input bytes after it). Returns false if
  /// the worker is gone (EPIPE).
  bool send(std::size_t index, const TaskMessage& task, const void* payload);
  /// Reaps a dead worker, forks its replacement, and returns how it ended and what it still held.
  std::pair<ExitStatus, std::deque<std::uint64_t>> replace(std::size_t index);

  struct Events {
    std::function<void(std::size_t worker, const ReplyMessage&)> reply;
    /// Pipe data path: where the results that follow a reply go (null: read and dropped).
    std::function<void*(const ReplyMessage&)> payload_destination;
    std::function<void(std::size_t worker, pid_t pid, const ExitStatus&, const std::deque<std::uint64_t>& lost)>
        death;
  };
  /// Blocks in poll() until answers or deaths arrive from workers with tasks in flight, or an
  /// interrupt (then throws Interrupted); reports each to `events`.
  void await(const Events& events);
  /// Waits out the tasks of a map that was abandoned (by an interrupt) so their answers cannot be
  /// mistaken for the next map's.
  void drain_abandoned();
  /// The pipe data path: slices are written into the task pipes and results read back from the
  /// reply pipes, as Python's Pool pickles them through its queues.
  struct PipeTransfer {
    const std::byte* input;
    std::size_t input_element_bytes;
    std::byte* output;
    std::size_t output_element_bytes;
  };
  void dispatch(const TaskMessage& task_template, const ChunkPlan& plan, const PipeTransfer* pipe);
  std::vector<std::byte> discarded_payload;
};

void ProcessPool::Impl::spawn(std::size_t index) {
  WorkerSlot& slot = workers[index];
  Pipe tasks = Pipe::create();
  Pipe replies = Pipe::create();
  const pid_t pid = ::fork();
  if (pid < 0) throw_errno(fmt::format("fork worker {}", index));
  if (pid == 0) {
    detail::run_worker({tasks.read_end.get(), replies.write_end.get(), master, slot.cpu, spin});
  }
  slot.process = ChildProcess(pid);
  slot.tasks = std::move(tasks.write_end);
  slot.replies = std::move(replies.read_end);
  slot.in_flight.clear();
  // The child's ends close here, as `tasks` and `replies` go out of scope: from now on end-of-file on
  // `slot.replies` means exactly one thing, that this worker is gone.
  ReplyMessage ready{};
  if (!read_exact(slot.replies.get(), &ready, sizeof(ready)) || ready.kind != ReplyKind::ready) {
    const pid_t failed = slot.process.pid();
    const ExitStatus status = slot.process.wait();
    throw std::runtime_error(fmt::format("worker {} (pid {}) did not start: {}", index, failed, status.str()));
  }
}

void ProcessPool::Impl::stop() noexcept {
  for (WorkerSlot& slot : workers) {
    // A worker still busy with an abandoned map would finish its chunk first: nobody wants it.
    if (!slot.in_flight.empty()) slot.process.send_signal(SIGKILL);
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
  slot.in_flight.push_back(task.chunk);
  return true;
}

std::pair<ExitStatus, std::deque<std::uint64_t>> ProcessPool::Impl::replace(std::size_t index) {
  WorkerSlot& slot = workers[index];
  ExitStatus status = slot.process.wait();
  std::deque<std::uint64_t> lost = std::move(slot.in_flight);
  slot.in_flight.clear();
  spawn(index);
  return {status, std::move(lost)};
}

void ProcessPool::Impl::await(const Events& events) {
  std::vector<pollfd> fds;
  std::vector<std::size_t> owners;
  for (std::size_t i = 0; i < workers.size(); ++i) {
    if (workers[i].in_flight.empty()) continue;
    fds.push_back({workers[i].replies.get(), POLLIN, 0});
    owners.push_back(i);
  }
  const int wake_fd = interrupt_wake_fd();
  if (wake_fd >= 0) fds.push_back({wake_fd, POLLIN, 0});

  if (detail::poll_after_spinning(fds.data(), fds.size(), spin) < 0) {
    if (errno == EINTR) return;  // a signal: the caller loops, and the wake-up descriptor tells which
    throw_errno("wait for the workers");
  }
  if (wake_fd >= 0 && fds.back().revents != 0) throw Interrupted(pending_interrupt());

  for (std::size_t k = 0; k < owners.size(); ++k) {
    if (fds[k].revents == 0) continue;
    const std::size_t index = owners[k];
    ReplyMessage reply{};
    if (read_exact(workers[index].replies.get(), &reply, sizeof(reply))) {
      if (reply.payload_bytes > 0) {
        void* destination = events.payload_destination ? events.payload_destination(reply) : nullptr;
        if (destination == nullptr) {
          discarded_payload.resize(reply.payload_bytes);
          destination = discarded_payload.data();
        }
        if (!read_exact(workers[index].replies.get(), destination, reply.payload_bytes)) {
          throw std::runtime_error(fmt::format("worker {} sent a reply without its results", index));
        }
      }
      if (!workers[index].in_flight.empty()) workers[index].in_flight.pop_front();
      events.reply(index, reply);
    } else {
      const pid_t pid = workers[index].process.pid();
      const auto [status, lost] = replace(index);
      events.death(index, pid, status, lost);
    }
  }
}

void ProcessPool::Impl::drain_abandoned() {
  const Events ignore{[](std::size_t, const ReplyMessage&) {}, {},
                      [](std::size_t, pid_t, const ExitStatus&, const std::deque<std::uint64_t>&) {}};
  while (any_in_flight()) await(ignore);
}

void ProcessPool::Impl::dispatch(const TaskMessage& task_template, const ChunkPlan& plan, const PipeTransfer* pipe) {
  drain_abandoned();
  const ScopedSigpipeBlock no_sigpipe;
  const std::uint64_t this_job = ++job;
  std::uint64_t next_chunk = 0;
  std::optional<WorkerError> failure;

  auto record_death = [&](std::size_t index, pid_t pid, const ExitStatus& status,
                          const std::deque<std::uint64_t>& lost) {
    if (lost.empty() || failure) return;  // died idle: the replacement simply takes over
    const ChunkRange range = plan[lost.front()];
    failure.emplace(index, pid, range.begin, range.end, fmt::format("the worker was {}", status.str()));
  };
  // On the pipe data path one task at a time: a worker then only writes results after it has read its
  // whole slice, and the master only writes slices to workers that are reading, so the two blocking
  // directions can never wait on each other.
  const std::size_t depth = pipe != nullptr ? 1 : kTasksInFlight;
  // Sends worker `index` the next chunk. A worker found dead is replaced, and the chunk goes to the
  // replacement; if the dead one held chunks of this map, the map fails once the others are done.
  auto feed_one = [&](std::size_t index) {
    for (int attempt = 0; !failure && next_chunk < plan.count(); ++attempt) {
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
      const auto [status, lost] = replace(index);
      record_death(index, pid, status, lost);
    }
  };
  // Keeps worker `index` busy with up to `depth` chunks, until all are handed out or a failure stops
  // the handing out (the chunks already out are still waited for, so none is left behind).
  auto feed = [&](std::size_t index) {
    while (!failure && next_chunk < plan.count() && workers[index].in_flight.size() < depth) feed_one(index);
  };

  // The first tasks go round the workers one at a time, so that a map of two chunks on two workers
  // runs on both, not twice on the first; from then on whoever answers is fed.
  for (std::size_t round = 1; round <= depth; ++round) {
    for (std::size_t i = 0; i < workers.size() && next_chunk < plan.count(); ++i) {
      if (workers[i].in_flight.size() < round) feed_one(i);
    }
  }
  const Events events{
      [&](std::size_t index, const ReplyMessage& reply) {
        if (reply.job != this_job) return;
        if (reply.kind == ReplyKind::failed && !failure) {
          const ChunkRange range = plan[reply.chunk];
          failure.emplace(index, workers[index].process.pid(), range.begin, range.end,
                          std::string(reply.what, strnlen(reply.what, sizeof(reply.what))));
        }
        feed(index);
      },
      [&](const ReplyMessage& reply) -> void* {
        if (pipe == nullptr || reply.job != this_job) return nullptr;
        return pipe->output + plan[reply.chunk].begin * pipe->output_element_bytes;
      },
      [&](std::size_t index, pid_t pid, const ExitStatus& status, const std::deque<std::uint64_t>& lost) {
        record_death(index, pid, status, lost);
        feed(index);
      }};
  while (any_in_flight()) await(events);
  if (failure) throw *failure;
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
  for (const WorkerSlot& slot : impl_->workers) pids.push_back(slot.process.pid());
  return pids;
}

double ProcessPool::startup_seconds() const noexcept { return impl_->startup_seconds; }
const std::shared_ptr<SharedArena>& ProcessPool::arena() const noexcept { return impl_->arena; }
const PhaseTimes& ProcessPool::last_map_timings() const noexcept { return impl_->last_map; }

void ProcessPool::add_collect_time(double seconds) noexcept { impl_->last_map.collect += seconds; }

void ProcessPool::check_sizes(std::size_t input, std::size_t output) {
  if (input != output) {
    throw std::invalid_argument(
        fmt::format("map_into: output has {} elements but input has {}; they must be equal", output, input));
  }
}

void ProcessPool::execute(const Request& request, const std::function<void(const void*)>& collect) {
  PhaseTimes& times = impl_->last_map;
  times = {};
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
  staged_input = {};
  staged_output = {};
  times.collect = clock.lap();
}

}  // namespace mpdemo
