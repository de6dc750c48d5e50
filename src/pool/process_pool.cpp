// The master side of the ProcessPool: forking workers, handing out chunks, noticing failures.
#include "mpdemo/pool/process_pool.hpp"

#include "mpdemo/pool/chunk_plan.hpp"
#include "mpdemo/sys/child_process.hpp"
#include "mpdemo/sys/detail/system_call.hpp"
#include "mpdemo/sys/errors.hpp"
#include "mpdemo/sys/fd.hpp"
#include "mpdemo/sys/interrupt.hpp"
#include "mpdemo/sys/spawn.hpp"
#include "mpdemo/sys/topology.hpp"
#include "pool_protocol.hpp"
#include "spin_wait.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <deque>
#include <iostream>
#include <mutex>
#include <optional>

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
  FileDescriptor tasks;                 // the master writes tasks here
  FileDescriptor replies;               // and reads the worker's answers here
  std::deque<std::uint64_t> in_flight;  // chunks sent and not yet answered, oldest first
  int cpu = -1;
};

}  // namespace

struct ProcessPool::Impl {
  std::shared_ptr<SharedArena> arena;
  std::chrono::microseconds spin{};
  std::chrono::milliseconds map_timeout{};
  std::chrono::milliseconds start_timeout{};
  // terminate() may come from another thread: it takes `control`, and either kills the workers
  // itself (no map running) or wakes the running map through `terminate_wake`, whose thread kills
  // them. Everything else is touched only by the one thread that runs maps.
  mutable std::mutex control;
  bool map_running = false;
  std::atomic<bool> terminated{false};
  Pipe terminate_wake = Pipe::create(O_NONBLOCK);
  std::vector<WorkerSlot> workers;
  double startup_seconds = 0;
  PhaseTimes last_map{};
  MapTraffic last_traffic{};
  std::uint64_t job = 0;
  // Reused by every wait, so that a warm map allocates nothing.
  std::vector<pollfd> poll_set;
  std::vector<std::size_t> poll_owners;
  std::vector<std::byte> discarded_payload;

  /// Forks the worker of slot `index` and waits until it says it is ready (up to start_timeout,
  /// answering interrupts, deadlines and terminate() meanwhile).
  void start_worker(std::size_t index);
  /// Waits until `fd` is readable: throws Interrupted, DeadlineExceeded or PoolTerminated if one of
  /// those comes first, and returns false when `timeout` (-1: none) passes.
  bool wait_readable(int fd, int timeout_ms);
  /// The poll timeout, in milliseconds, until the first of `map_deadline` and the ScopedDeadline; -1
  /// for none.
  static int milliseconds_until(std::optional<std::chrono::steady_clock::time_point> map_deadline);
  /// Throws what woke a wait on the interrupt or terminate descriptors, if anything did.
  void throw_if_stopped();
  /// SIGKILLs and reaps the worker of `slot` and empties the slot (respawn_missing refills it).
  static void discard(WorkerSlot& slot) noexcept;
  void kill_all() noexcept;
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
  void await(OnReply&& on_reply, OnDeath&& on_death, Destination&& destination,
             std::optional<std::chrono::steady_clock::time_point> map_deadline);

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

void ProcessPool::Impl::start_worker(std::size_t index) {
  WorkerSlot& slot = workers[index];
  slot.tasks.reset();
  slot.replies.reset();
  slot.in_flight.clear();
  Pipe tasks = Pipe::create();
  Pipe replies = Pipe::create();
  SpawnOptions options;
  options.cpu = slot.cpu;
  // Ctrl-C and a group-wide SIGTERM reach every process in the group. A worker must not die half-way
  // through a chunk on its own: the master decides, and stops the workers itself.
  options.ignore_interrupts = true;
  // Only its own two pipe ends: another worker's, inherited because the master held them at fork
  // time, would hide that worker's death from the master.
  options.keep_descriptors = {tasks.read_end.get(), replies.write_end.get()};
  const detail::WorkerSetup setup{tasks.read_end.get(), replies.write_end.get(), spin};
  slot.process = mpdemo::spawn(fmt::format("worker {}", index), options,
                               [&setup]() noexcept { return detail::run_worker(setup); });
  const pid_t pid = slot.process.pid();
  // The master keeps only its own ends: from now on end-of-file on `replies` means exactly one
  // thing, that this worker is gone (and so a worker that dies before it is ready is noticed).
  tasks.read_end.reset();
  replies.write_end.reset();
  slot.tasks = std::move(tasks.write_end);
  slot.replies = std::move(replies.read_end);
  ReplyMessage ready{};
  bool started = false;
  bool in_time = false;
  try {
    in_time = wait_readable(slot.replies.get(), static_cast<int>(start_timeout.count()));
    started = in_time && read_exact(slot.replies.get(), &ready, sizeof(ready)) && ready.kind == ReplyKind::ready;
  } catch (const std::system_error&) {
    started = false;
  } catch (...) {  // an interrupt, a deadline, terminate(): this worker goes with the rest
    discard(slot);
    throw;
  }
  if (!started) {
    const ExitStatus status = slot.process.wait_or_kill(in_time ? kStopGrace : std::chrono::milliseconds(0));
    slot.tasks.reset();
    slot.replies.reset();
    if (!in_time) {
      throw std::runtime_error(
          fmt::format("worker {} (pid {}) did not say it was ready within {} ms (stopped, or "
                      "starved of CPU): it was killed",
                      index, pid, start_timeout.count()));
    }
    throw std::runtime_error(fmt::format("worker {} (pid {}) did not start: {}", index, pid, status.str()));
  }
}

int ProcessPool::Impl::milliseconds_until(std::optional<std::chrono::steady_clock::time_point> map_deadline) {
  std::optional<std::chrono::steady_clock::time_point> first = current_deadline();
  if (map_deadline && (!first || *map_deadline < *first)) first = map_deadline;
  if (!first) return -1;
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(*first - std::chrono::steady_clock::now());
  return static_cast<int>(std::clamp<long long>(left.count(), 0, 24LL * 3600 * 1000));
}

void ProcessPool::Impl::throw_if_stopped() {
  throw_if_interrupted();
  char drained[16];
  if (::read(terminate_wake.read_end.get(), drained, sizeof(drained)) > 0 || terminated) {
    throw PoolTerminated("ProcessPool: terminate() was called: its workers were killed");
  }
}

bool ProcessPool::Impl::wait_readable(int fd, int timeout_ms) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    throw_if_stopped();
    int left = -1;
    if (timeout_ms >= 0) {
      const auto remaining = std::chrono::ceil<std::chrono::milliseconds>(give_up - std::chrono::steady_clock::now());
      if (remaining.count() <= 0) return false;
      left = static_cast<int>(remaining.count());
    }
    if (const int deadline_ms = milliseconds_until(std::nullopt);
        deadline_ms >= 0 && (left < 0 || deadline_ms < left)) {
      left = deadline_ms;
    }
    pollfd fds[3] = {{fd, POLLIN, 0}, {terminate_wake.read_end.get(), POLLIN, 0}, {interrupt_wake_fd(), POLLIN, 0}};
    const int ready = ::poll(fds, fds[2].fd >= 0 ? 3 : 2, left);
    if (ready < 0 && errno != EINTR) throw_errno("wait for a worker");
    if (ready > 0 && fds[0].revents != 0) return true;
    // Otherwise: a signal, a wake-up or a timeout; the top of the loop tells which. A wake-up with
    // nothing pending (an interrupt cleared meanwhile) is drained, not acted on.
    if (ready > 0 && fds[2].revents != 0 && pending_interrupt() == 0) clear_interrupt();
  }
}

void ProcessPool::Impl::discard(WorkerSlot& slot) noexcept {
  slot.process.kill_and_wait();
  slot.in_flight.clear();
  slot.tasks.reset();
  slot.replies.reset();
}

void ProcessPool::Impl::kill_all() noexcept {
  for (WorkerSlot& slot : workers) discard(slot);
}

void ProcessPool::Impl::respawn_missing() {
  for (std::size_t i = 0; i < workers.size(); ++i) {
    if (!workers[i].process.running()) start_worker(i);
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
    if (!slot.in_flight.empty()) discard(slot);
  }
}

template <class OnReply, class OnDeath, class Destination>
void ProcessPool::Impl::await(OnReply&& on_reply, OnDeath&& on_death, Destination&& destination,
                              std::optional<std::chrono::steady_clock::time_point> map_deadline) {
  poll_set.clear();
  poll_owners.clear();
  for (std::size_t i = 0; i < workers.size(); ++i) {
    if (workers[i].in_flight.empty()) continue;
    poll_set.push_back({workers[i].replies.get(), POLLIN, 0});
    poll_owners.push_back(i);
  }
  const std::size_t stop_index = poll_set.size();
  poll_set.push_back({terminate_wake.read_end.get(), POLLIN, 0});
  const int wake_fd = interrupt_wake_fd();
  if (wake_fd >= 0) poll_set.push_back({wake_fd, POLLIN, 0});

  const int timeout_ms = milliseconds_until(map_deadline);
  const int ready = detail::poll_after_spinning(poll_set.data(), poll_set.size(), spin, timeout_ms);
  if (ready < 0) {
    if (errno == EINTR) return;  // a signal: the caller loops, and the wake-up descriptor tells which
    throw_errno("wait for the workers");
  }
  if (ready == 0) {  // a timeout: the ScopedDeadline's, or the map's own
    throw_if_interrupted();
    if (map_deadline && std::chrono::steady_clock::now() >= *map_deadline) {
      throw MapTimeout(
          fmt::format("ProcessPool::map did not finish within {} ms (map_timeout): its busy workers "
                      "were killed, and are replaced at the next map",
                      map_timeout.count()));
    }
    return;
  }
  for (std::size_t k = stop_index; k < poll_set.size(); ++k) {
    if (poll_set[k].revents != 0) throw_if_stopped();
  }
  if (wake_fd >= 0 && poll_set.back().revents != 0) {
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
  {
    const std::lock_guard lock(control);
    if (terminated) throw PoolTerminated("ProcessPool: terminate() was called: the pool runs no more maps");
    map_running = true;
  }
  // Whatever way the map ends: a terminate() that came meanwhile is carried out here, by this thread.
  struct MapEnd {
    Impl& impl;
    ~MapEnd() {
      const std::lock_guard lock(impl.control);
      impl.map_running = false;
      if (impl.terminated) impl.kill_all();
    }
  } map_end{*this};
  const ScopedSigpipeBlock no_sigpipe;
  try {
    respawn_missing();
    run_chunks(task_template, plan, pipe);
  } catch (...) {
    // After an exception (a death, an interrupt, a timeout) workers may still be busy with chunks of
    // this map: none of them may write into memory the unwinding is about to free.
    abandon_in_flight();
    throw;
  }
}

void ProcessPool::Impl::run_chunks(const TaskMessage& task_template, const ChunkPlan& plan, const PipeTransfer* pipe) {
  const std::uint64_t this_job = ++job;
  std::uint64_t next_chunk = 0;
  std::optional<WorkerError> failure;
  bool a_worker_died = false;
  const std::optional<std::chrono::steady_clock::time_point> map_deadline =
      map_timeout.count() > 0 ? std::optional(std::chrono::steady_clock::now() + map_timeout) : std::nullopt;

  auto record_death = [&](std::size_t index, pid_t pid, const ExitStatus& status,
                          const std::deque<std::uint64_t>& lost) {
    if (lost.empty() || failure) return;
    const ChunkRange range = plan[lost.front()];
    a_worker_died = true;
    const std::string how = status.exited() && status.exit_code() == detail::kExitCalledExit
                                ? std::string("its function called exit() or quick_exit() in the worker")
                                : fmt::format("the worker was {}", status.str());
    failure.emplace(index, pid, range.begin, range.end, how);
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
      if (lost.empty()) start_worker(index);
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
  // A death abandons the map at once (dispatch kills the workers still busy): waiting for the
  // survivors' long chunks would only delay the error. A thrown exception waits for the chunks already
  // handed out, which end by themselves.
  while (any_in_flight() && !a_worker_died) {
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
        },
        map_deadline);
  }
  if (failure) throw *failure;
  // Every chunk must have been handed out: if all workers died idle and could not be replaced, say so
  // rather than return a partial result.
  if (next_chunk < plan.count()) {
    throw std::runtime_error(
        fmt::format("only {} of {} chunks could be handed out: no worker is left", next_chunk, plan.count()));
  }
}

ProcessPool::ProcessPool(std::size_t workers) : ProcessPool(ProcessPoolOptions{workers}) {}

ProcessPool::ProcessPool(ProcessPoolOptions options) : impl_(std::make_unique<Impl>()) {
  const Stopwatch clock;
  const Topology& topology = system_topology();
  const std::size_t count = options.workers != 0 ? options.workers : topology.default_workers();
  impl_->arena = options.arena ? std::move(options.arena) : SharedArena::process_default();
  impl_->spin = options.spin;
  impl_->map_timeout = options.map_timeout;
  impl_->start_timeout = options.start_timeout;
  impl_->workers.resize(count);
  try {
    for (std::size_t i = 0; i < count; ++i) {
      if (options.pin_workers) impl_->workers[i].cpu = topology.worker_cpu(i);
      impl_->start_worker(i);
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

std::size_t ProcessPool::size() const noexcept { return impl_ ? impl_->workers.size() : 0; }

ProcessPool::Impl& ProcessPool::impl() const {
  if (!impl_) throw std::logic_error("ProcessPool: this pool was moved from; it has no workers");
  return *impl_;
}

std::vector<std::optional<pid_t>> ProcessPool::worker_pids() const {
  const Impl& state = impl();
  const std::lock_guard lock(state.control);
  std::vector<std::optional<pid_t>> pids;
  for (const WorkerSlot& slot : state.workers) {
    pids.push_back(slot.process.running() ? std::optional(slot.process.pid()) : std::nullopt);
  }
  return pids;
}

void ProcessPool::terminate() noexcept {
  if (!impl_) return;
  const std::lock_guard lock(impl_->control);
  if (impl_->terminated) return;
  impl_->terminated = true;
  if (impl_->map_running) {
    const char byte = 1;
    [[maybe_unused]] const auto ignored = ::write(impl_->terminate_wake.write_end.get(), &byte, 1);
  } else {
    impl_->kill_all();
  }
}

bool ProcessPool::terminated() const noexcept {
  if (!impl_) return false;
  const std::lock_guard lock(impl_->control);
  return impl_->terminated;
}

double ProcessPool::startup_seconds() const noexcept { return impl_ ? impl_->startup_seconds : 0.0; }
const std::shared_ptr<SharedArena>& ProcessPool::arena() const { return impl().arena; }
const PhaseTimes& ProcessPool::last_map_timings() const { return impl().last_map; }
const MapTraffic& ProcessPool::last_map_traffic() const { return impl().last_traffic; }

void ProcessPool::add_collect_time(double seconds) noexcept { impl_->last_map.collect += seconds; }

void ProcessPool::execute(const Request& request, const std::function<void(const void*)>& collect) {
  impl();  // a moved-from pool throws here, before anything is touched
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
    interruptible_copy(staged_input.data(), request.input, input_bytes);
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
    interruptible_copy(request.output, staged_output.data(), output_bytes);
  }
  if (staged_output.data() != nullptr) impl_->last_traffic.copied_out_bytes = output_bytes;
  staged_input = {};
  staged_output = {};
  times.collect = clock.lap();
}

}  // namespace mpdemo
