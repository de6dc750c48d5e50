#include "dispatcher.hpp"

#include "mpdemo/sys/detail/system_call.hpp"
#include "mpdemo/sys/interrupt.hpp"
#include "mpdemo/sys/spawn.hpp"
#include "spin_wait.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>
#include <algorithm>
#include <csignal>
#include <cstring>
#include <stdexcept>
#include <string>

namespace mpdemo::detail {

namespace {

constexpr auto kStopGrace = std::chrono::milliseconds(1000);
constexpr int kSendAttempts = 3;
// Result buffers: each half starts at 1 MiB and grows (to at most 64 MiB) after a result had to
// come through the pipe for lack of room.
constexpr std::size_t kFirstResultHalf = std::size_t{1} << 20;
constexpr std::size_t kLargestResultHalf = std::size_t{64} << 20;

/// The look a task published into the worker's mailbox owes: rings its doorbell if it sleeps. False
/// if the worker is gone (EPIPE). With mailboxes most looks write nothing, so the SIGPIPE block (three
/// system calls; over pipes the ProcessPool blocks it for its whole call) is paid here, around the
/// rare write, and made before the flag is lowered: once lowered, the byte must follow. `index` names
/// the worker in the timeline ("doorbell 1").
bool ring_if_asleep(WorkerSlot& slot, std::size_t index, Trace* trace) {
  if (!slot.look_owed || slot.mailbox.get() == nullptr) return true;
  if (!slot.task_ring.reader_may_sleep()) {
    slot.look_owed = false;
    return true;
  }
  const ScopedSigpipeBlock no_sigpipe;
  slot.look_owed = false;
  if (!slot.task_ring.claim_doorbell()) return true;  // it woke by itself
  // The worker sleeps. Waking it costs the master too (measure_wake_of_sleeper: ~20 us on the
  // project's VM, more than a map of 10^5 doubles): a span of its own on the master's track.
  const std::int64_t began = trace != nullptr ? monotonic_ns() : 0;
  const bool rang = ring_doorbell(slot.task_bell.get());
  if (trace != nullptr) {
    try {
      trace->add_here("doorbell", "doorbell", began, static_cast<std::int64_t>(index));
    } catch (...) {  // the task is out: a timeline that cannot record it must not lose it
    }
  }
  return rang;
}

/// Sends a task (into the worker's mailbox, or through its pipe), and on the pipe data path the
/// chunk's input after it. False if the worker is gone (EPIPE). A task in the mailbox is published:
/// whether the worker sleeps is looked at later (Dispatcher::ring_sleeping_workers), unless a slice
/// follows, which the worker must be awake to read (a full pipe would block both).
bool write_task(WorkerSlot& slot, std::size_t index, const TaskMessage& task, const void* payload, Trace* trace) {
  try {
    if (slot.mailbox.get() == nullptr) {
      write_all(slot.tasks.get(), &task, sizeof(task));
    } else {
      slot.task_ring.publish(task);
      slot.look_owed = true;
      if (task.payload_bytes > 0 && !ring_if_asleep(slot, index, trace)) return false;
    }
    if (task.payload_bytes > 0) {
      const ScopedSigpipeBlock no_sigpipe;
      write_all(slot.tasks.get(), payload, task.payload_bytes);
    }
  } catch (const std::system_error& error) {
    if (error.code().value() == EPIPE) return false;
    throw;
  }
  return true;
}

/// Calls Dispatcher::ring_sleeping_workers as a call that hands out tasks leaves it, returning or
/// throwing: every task it published is then looked at once, after all of them went out.
class RingOnLeaving {
 public:
  explicit RingOnLeaving(Dispatcher& dispatcher) noexcept : dispatcher_(dispatcher) {}
  RingOnLeaving(const RingOnLeaving&) = delete;
  RingOnLeaving& operator=(const RingOnLeaving&) = delete;
  ~RingOnLeaving() {
    try {
      dispatcher_.ring_sleeping_workers();
    } catch (...) {  // SIGPIPE could not be blocked: the look stays owed, and the one before the
                     // next wait throws the same error
    }
  }

 private:
  Dispatcher& dispatcher_;
};

/// How a worker ended, in the words a WorkerError gives.
std::string how_it_ended(const ExitStatus& status) {
  if (status.exited() && status.exit_code() == kExitCalledExit) {
    return "its function called exit() or quick_exit() in the worker";
  }
  return fmt::format("the worker was {}", status.str());
}

/// The poll timeout, in milliseconds, until the first of `deadline` and the ScopedDeadline's; -1 for none.
int milliseconds_until(Deadline deadline) {
  std::optional<Clock::time_point> first = current_deadline();
  if (deadline && (!first || *deadline < *first)) first = deadline;
  if (!first) return -1;
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(*first - Clock::now());
  return static_cast<int>(std::clamp<long long>(left.count(), 0, 24LL * 3600 * 1000));
}

std::string text_of(const ReplyMessage& reply) {
  return std::string(reply.what, strnlen(reply.what, sizeof(reply.what)));
}

// A worker's body, as spawn() and a ForkServer take it: its setup by value, so that it travels as
// bytes to a ForkServer's child.
struct WorkerBody {
  WorkerSetup setup;
  int operator()() const noexcept { return run_worker(setup); }
};

void drain(const FileDescriptor& wake) noexcept {
  char bytes[64];
  while (::read(wake.get(), bytes, sizeof(bytes)) > 0) {
  }
}

}  // namespace

Dispatcher::Dispatcher(Settings settings, std::vector<int> cpus)
    : settings_(std::move(settings)), workers_(cpus.size()), wake_(Pipe::create(O_NONBLOCK)) {
  for (std::size_t i = 0; i < cpus.size(); ++i) workers_[i].cpu = cpus[i];
}

Dispatcher::~Dispatcher() { stop(); }

// ---- Workers ----------------------------------------------------------------------------------

void Dispatcher::start_missing() {
  // Everything the forks need is made first, then all are forked, then each is waited for. A worker's
  // own start-up (its first page faults, its pinning, the initializer) overlaps the next one's fork
  // instead of following it; and between two forks the master writes as little as it can, since
  // after the first fork every page it writes is copied (a fault each, ~0.5 ms a worker on a VM).
  std::vector<Launch> launches;
  launches.reserve(workers_.size());
  for (std::size_t i = 0; i < workers_.size(); ++i) {
    if (!workers_[i].process.running()) launches.push_back(prepare_launch(i));
  }
  launch_workers(launches);
  for (std::size_t k = 0; k < launches.size(); ++k) {
    try {
      await_ready(launches[k].index);
    } catch (...) {
      // The others' "ready" would be read later as an answer: they go too, and are forked again next time.
      for (std::size_t later = k + 1; later < launches.size(); ++later) discard(launches[later].index);
      throw;
    }
  }
}

void Dispatcher::ring_sleeping_workers() {
  // A worker woken on the CPU the master runs on takes that CPU at once (the scheduler favours a task
  // that slept), and the master waits to get it back, a scheduler tick or more: 1-5 ms on the
  // project's VM. Rung first, it would hold up every doorbell after it, and their workers would start
  // that much later. So the workers pinned to this CPU are rung last.
  // A doorbell that cannot be written (false) is a dead worker's: it is found so on its reply side.
  const int here = current_cpu();
  for (const bool on_this_cpu : {false, true}) {
    for (std::size_t i = 0; i < workers_.size(); ++i) {
      WorkerSlot& slot = workers_[i];
      if ((here >= 0 && slot.cpu == here) == on_this_cpu) (void)ring_if_asleep(slot, i, settings_.trace);
    }
  }
}

void Dispatcher::start_worker(std::size_t index) {
  ring_sleeping_workers();  // a fork and a start-up wait: the others should not sleep through them
  std::vector<Launch> launch;
  launch.push_back(prepare_launch(index));
  launch_workers(launch);
  await_ready(index);
}

Dispatcher::Launch Dispatcher::prepare_launch(std::size_t index) {
  WorkerSlot& slot = workers_[index];
  slot.close_task_side();
  slot.close_reply_side();
  slot.in_flight.clear();
  slot.tasks_handed = 0;
  Launch launch{index, Pipe::create(), Pipe::create(), {}, {}, {}};
  // A fresh mailbox for every worker: nothing a dead one left half-written is read again. The other
  // workers of its batch inherit the mapping (made before their fork), as every worker inherits the
  // arena: only this worker and the master are told where it is, but a stray write in a batch-mate
  // could reach it, and a batch-mate keeps its pages mapped until it exits, after a replacement too.
  // A ForkServer's child inherits nothing this process mapped since the server started: the mailbox is
  // sent to it as a descriptor.
  slot.mailbox = settings_.mailboxes ? MailboxMapping::create(settings_.fork_server != nullptr) : MailboxMapping();
  if (settings_.mailboxes) {
    launch.task_bell = Pipe::create();
    launch.reply_bell = Pipe::create();
  }
  // A new process: none of the arrays' pages are in its page tables yet.
  for (auto& [arrays, remembered] : localities_) remembered.locality->forget(index);
  SpawnOptions& options = launch.options;
  options.cpu = slot.cpu;
  // Ctrl-C and a group-wide SIGTERM reach every process in the group. A worker must not die half-way
  // through a chunk on its own: the master decides, and stops the workers itself.
  options.ignore_interrupts = true;
  // Only its own pipe ends: another worker's, inherited because the master held them at fork time,
  // would hide that worker's death from the master.
  options.keep_descriptors = {launch.tasks.read_end.get(), launch.replies.write_end.get()};
  if (settings_.mailboxes) {
    options.keep_descriptors.push_back(launch.task_bell.read_end.get());
    options.keep_descriptors.push_back(launch.reply_bell.write_end.get());
    if (slot.mailbox.descriptor() >= 0) options.keep_descriptors.push_back(slot.mailbox.descriptor());
  }
  return launch;
}

void Dispatcher::launch_workers(std::vector<Launch>& launches) {
  const bool served = settings_.fork_server != nullptr;
  // A ForkServer's child is a copy of the server: only what the setup holds by value, the descriptors
  // sent and the mappings made before the server started mean anything there (the pool refuses an
  // initializer and an arena that would not be). Every order is made before the first fork.
  std::vector<SpawnOrder<WorkerBody>> orders;
  orders.reserve(launches.size());
  for (Launch& launch : launches) {
    const WorkerSlot& slot = workers_[launch.index];
    const WorkerSetup setup{launch.tasks.read_end.get(),
                            launch.replies.write_end.get(),
                            served ? nullptr : slot.mailbox.get(),
                            served ? slot.mailbox.descriptor() : -1,
                            launch.task_bell.read_end.get(),
                            launch.reply_bell.write_end.get(),
                            settings_.spin,
                            settings_.spin_limit,
                            settings_.spin_style,
                            served ? nullptr : settings_.initializer};
    orders.push_back({fmt::format("worker {}", launch.index), std::move(launch.options), WorkerBody{setup}});
  }
  // Asked of a server, the team is asked for at once and forked back to back: the second fork does
  // not wait for this process to read the first's answer and ask again (a few hundred microseconds on
  // the project's VM). Should one fail, those made are killed and reaped before this unwinds.
  std::vector<ChildProcess> children = spawn_each(orders, settings_.fork_server, [&](std::size_t k) noexcept {
    workers_[launches[k].index].launched_ns = monotonic_ns();
  });
  for (std::size_t k = 0; k < launches.size(); ++k) keep_launched(launches[k], std::move(children[k]));
}

void Dispatcher::keep_launched(Launch& launch, ChildProcess process) {
  WorkerSlot& slot = workers_[launch.index];
  slot.process = std::move(process);
  slot.mailbox.forget_descriptor();
  // The master keeps only its own ends: from now on end-of-file on `replies` means exactly one
  // thing, that this worker is gone (and so a worker that dies before it is ready is noticed).
  launch.tasks.read_end.reset();
  launch.replies.write_end.reset();
  slot.tasks = std::move(launch.tasks.write_end);
  slot.replies = std::move(launch.replies.read_end);
  if (Mailbox* mailbox = slot.mailbox.get()) {
    slot.task_ring = RingWriter<TaskMessage>(&mailbox->tasks);
    slot.reply_ring = RingReader<ReplyMessage>(&mailbox->replies);
    slot.task_bell = std::move(launch.task_bell.write_end);
    slot.reply_bell = std::move(launch.reply_bell.read_end);
  }
  launch.task_bell.read_end.reset();  // the worker's ends of the doorbells
  launch.reply_bell.write_end.reset();
}

void Dispatcher::await_ready(std::size_t index) {
  WorkerSlot& slot = workers_[index];
  const pid_t pid = slot.process.pid();
  ReplyMessage first{};
  bool answered = false;
  bool in_time = false;
  try {
    const Clock::time_point give_up = Clock::now() + settings_.start_timeout;
    poll_set_.assign(1, pollfd{slot.replies.get(), POLLIN, 0});
    Wake woken = Wake::spurious;
    while ((woken = wait(1, give_up, std::chrono::microseconds(0))) == Wake::spurious) {
    }
    in_time = woken == Wake::readable;
    answered = in_time && read_exact(slot.replies.get(), &first, sizeof(first));
  } catch (const std::system_error&) {
    answered = false;
  } catch (...) {  // an interrupt, a deadline, terminate(): this worker goes with the rest
    discard(index);
    throw;
  }
  if (answered && first.kind == ReplyKind::ready) {
    // From fork to "ready": what starting this worker cost, on the worker's own track.
    if (settings_.trace != nullptr) {
      settings_.trace->add(name_trace_track(index), "start", "pool", slot.launched_ns, monotonic_ns(), slot.cpu);
    }
    return;
  }
  const ExitStatus status = slot.process.wait_or_kill(in_time ? kStopGrace : std::chrono::milliseconds(0));
  slot.close_task_side();
  slot.close_reply_side();
  if (answered && first.kind == ReplyKind::initializer_failed) {
    throw WorkerError(index, pid, 0, 0, "the pool's initializer threw: " + text_of(first));
  }
  if (!in_time) {
    throw std::runtime_error(fmt::format(
        "worker {} (pid {}) did not say it was ready within {} ms (stopped, or starved of CPU): it was killed", index,
        pid, settings_.start_timeout.count()));
  }
  throw std::runtime_error(fmt::format("worker {} (pid {}) did not start: {}", index, pid, status.str()));
}

void Dispatcher::lose(std::size_t index, pid_t pid, const std::deque<WorkerSlot::Task>& lost, std::size_t started,
                      const std::string& how) {
  for (std::size_t k = 0; k < lost.size(); ++k) {
    JobState* job = active_job(lost[k].job);
    if (job == nullptr) continue;
    --job->outstanding;
    if (k >= started) {
      job->retry.push_back(lost[k].chunk);
      continue;
    }
    job->lost_a_chunk = true;
    const ChunkRange range = job->plan[lost[k].chunk];
    job->chunk_failed(lost[k].chunk, std::make_exception_ptr(WorkerError(index, pid, range.begin, range.end, how)));
  }
}

void Dispatcher::discard(std::size_t index) noexcept {
  WorkerSlot& slot = workers_[index];
  const std::deque<WorkerSlot::Task> lost = std::move(slot.in_flight);
  slot.in_flight.clear();
  // Killed on purpose (another job's failure, an interrupt): what it held is handed out again.
  for (const WorkerSlot::Task& task : lost) {
    if (JobState* job = active_job(task.job)) {
      --job->outstanding;
      job->retry.push_back(task.chunk);
    }
  }
  slot.process.kill_and_wait();
  slot.close_task_side();
  slot.close_reply_side();
}

void Dispatcher::bury(std::size_t index) {
  ring_sleeping_workers();  // a wait for the dead process: the others should not sleep through it
  WorkerSlot& slot = workers_[index];
  const pid_t pid = slot.process.pid();
  const ExitStatus status = slot.process.wait();
  const std::deque<WorkerSlot::Task> lost = std::move(slot.in_flight);
  slot.in_flight.clear();
  slot.close_task_side();
  slot.close_reply_side();
  // A worker runs its tasks in order, one at a time, answering each before it takes the next: of the
  // tasks it had not answered, only the oldest can have been started. With a mailbox the worker
  // counted the tasks it took, so a task it never took (it died idle) is known to be untouched too.
  // (Tasks the master took back are claimed too, and are no longer in `lost`.)
  std::size_t started = std::min<std::size_t>(lost.size(), 1);
  if (const Mailbox* mailbox = slot.mailbox.get()) {
    const std::uint64_t untaken = slot.task_ring.posted() - mailbox->tasks_claimed.load(std::memory_order_acquire);
    if (untaken >= lost.size()) started = 0;
  }
  // The slot stays empty until start_missing(): the next submit, or a serve with work to hand out.
  lose(index, pid, lost, started, how_it_ended(status));
}

void Dispatcher::retire(std::size_t index) {
  ring_sleeping_workers();  // a wait for the process to leave: the others should not sleep through it
  WorkerSlot& slot = workers_[index];
  slot.close_task_side();  // end-of-file: it leaves, as at the pool's end
  slot.process.wait_or_kill(kStopGrace);
  slot.close_reply_side();
  if (!terminated_) start_worker(index);
}

void Dispatcher::abandon_in_flight(const JobState* job) noexcept {
  for (std::size_t i = 0; i < workers_.size(); ++i) {
    const auto& tasks = workers_[i].in_flight;
    const bool holds = std::any_of(tasks.begin(), tasks.end(),
                                   [&](const WorkerSlot::Task& task) { return job == nullptr || task.job == job->id; });
    if (holds) discard(i);
  }
  // The abandoned job's own chunks were queued again by discard: it wants none of them.
  for (const std::shared_ptr<JobState>& active : active_) {
    if (active.get() == job) active->retry.clear();
  }
  drop_settled();
}

void Dispatcher::kill_all() noexcept {
  for (std::size_t i = 0; i < workers_.size(); ++i) discard(i);
}

void Dispatcher::fail_all(const std::exception_ptr& error, std::vector<std::shared_ptr<JobState>>& finished) noexcept {
  for (const std::shared_ptr<JobState>& job : active_) {
    job->fail_the_rest(error);
    if (conclude_if_decided(*job)) finished.push_back(job);
  }
  active_.clear();
  for (WorkerSlot& slot : workers_) slot.in_flight.clear();
}

void Dispatcher::stop() noexcept {
  const std::int64_t stopping = monotonic_ns();
  for (WorkerSlot& slot : workers_) {
    // A worker still busy with an abandoned job would finish its chunk first: nobody wants it.
    if (!slot.in_flight.empty() && slot.process.running()) ::kill(slot.process.pid(), SIGKILL);
    slot.close_task_side();  // end-of-file: a worker waiting for work leaves
  }
  for (WorkerSlot& slot : workers_) {
    if (slot.process.running()) {
      slot.process.wait_or_kill(kStopGrace);
      // From end-of-file to reaped (add() never throws).
      if (settings_.trace != nullptr) {
        settings_.trace->add(slot.trace_track, "stop", "pool", stopping, monotonic_ns(), slot.cpu);
      }
    }
    slot.close_reply_side();
    slot.in_flight.clear();
    slot.result_buffer = {};
  }
}

void Dispatcher::request_termination() noexcept {
  terminated_ = true;
  const char byte = 1;
  [[maybe_unused]] const auto ignored = ::write(wake_.write_end.get(), &byte, 1);
}

void Dispatcher::kick() noexcept {
  if (kicked_.exchange(true)) return;  // one byte wakes the wait; more would only need draining
  const char byte = 1;
  [[maybe_unused]] const auto ignored = ::write(wake_.write_end.get(), &byte, 1);
}

// ---- Handing out ------------------------------------------------------------------------------

std::size_t Dispatcher::depth(const JobState& job) {
  // On the pipe data path one task at a time: a worker then only writes results after it has read
  // its whole slice, and the master only writes slices to workers that are reading, so the two
  // blocking directions can never wait on each other.
  return job.one_task_per_worker ? 1 : kTasksInFlight;
}

bool Dispatcher::can_take(std::size_t index) const noexcept {
  const WorkerSlot& slot = workers_[index];
  return slot.process.running() && (settings_.maxtasksperchild == 0 || slot.tasks_handed < settings_.maxtasksperchild);
}

std::pair<std::byte*, std::size_t> Dispatcher::result_space(WorkerSlot& slot) noexcept {
  // Grown only when nothing the worker holds may still be writing into the old one.
  if (slot.wanted_half > slot.result_half && slot.in_flight.empty()) {
    slot.result_buffer = {};
    slot.result_half = 0;
  }
  if (slot.result_half == 0 && settings_.arena) {
    const std::size_t half = std::clamp(slot.wanted_half, kFirstResultHalf, kLargestResultHalf);
    try {
      slot.result_buffer = SharedArray<std::byte>(settings_.arena, 2 * half);
      slot.result_half = half;
    } catch (const std::exception&) {  // no room in the arena: results come through the pipe
      slot.wanted_half = 0;
      return {nullptr, 0};
    }
  }
  if (slot.result_half == 0) return {nullptr, 0};
  std::byte* half = slot.result_buffer.data() + slot.next_half * slot.result_half;
  slot.next_half ^= 1;
  return {half, slot.result_half};
}

bool Dispatcher::hand_out(JobState& job, std::size_t index) {
  for (int attempt = 0;; ++attempt) {
    WorkerSlot& slot = workers_[index];
    if (!slot.process.running()) return false;  // died: refilled by the next start_missing
    if (attempt == kSendAttempts) {
      throw std::runtime_error(fmt::format("worker {} died {} times in a row on start-up", index, kSendAttempts));
    }
    // Asked again after a replacement too: the new process has run nothing, and may not steal now.
    if (!job.handing_out_to(index)) return false;
    const bool again = !job.retry.empty();
    const std::size_t chunk = again ? job.retry.front() : job.next_for(index);
    const ChunkOrder order = job.order(chunk);
    const ChunkRange range = job.plan[chunk];
    TaskMessage task{};
    task.job = job.id;
    task.chunk = chunk;
    task.begin = range.begin;
    task.end = range.end;
    const void* payload = nullptr;
    if (order.serial) {
      task.kind = TaskKind::serialized;
      task.serial = order.serial;
      task.serialized = order.serialized_input.data();
      task.serialized_bytes = order.serialized_input.size();
      std::tie(task.result_buffer, task.result_capacity) = result_space(slot);
    } else {
      task.kind = TaskKind::elements;
      task.kernel = order.kernel;
      task.input = order.input;
      task.output = order.output;
      task.input_element_bytes = order.input_element_bytes;
      task.output_element_bytes = order.output_element_bytes;
      if (order.through_pipe) {
        task.payload_bytes = range.size() * order.input_element_bytes;
        payload = static_cast<const std::byte*>(order.input) + range.begin * order.input_element_bytes;
      }
    }
    // A slice follows through the pipe, and writing it may wait for this worker: the others first.
    if (payload != nullptr) ring_sleeping_workers();
    if (write_task(slot, index, task, payload, settings_.trace)) {
      slot.in_flight.push_back({job.id, chunk, task.result_buffer, slot.task_ring.posted() - 1,
                                task.kind == TaskKind::elements && task.payload_bytes == 0});
      if (again) {
        job.retry.pop_front();
      } else {
        job.take_for(index);
      }
      ++job.outstanding;
      ++slot.tasks_handed;
      job.pipe_bytes += sizeof(task) + task.payload_bytes;
      return true;
    }
    // The worker is gone. If it held chunks, they fail or go out again (bury); if it died idle, it
    // held nothing of anyone's, so a replacement is forked at once and takes the chunk.
    const bool held_chunks = !slot.in_flight.empty();
    bury(index);
    if (held_chunks || !job.handing_out()) return false;
    start_worker(index);
  }
}

void Dispatcher::feed(std::size_t index) {
  for (std::size_t j = 0; j < active_.size(); ++j) {
    JobState& job = *active_[j];
    while (job.handing_out_to(index) && can_take(index) && workers_[index].in_flight.size() < depth(job)) {
      if (!hand_out(job, index)) return;
    }
  }
  rebalance(index);
}

std::optional<Dispatcher::ArraysKey> Dispatcher::arrays_of(JobState& job) {
  if (job.handout != ChunkQueue::Order::by_worker_region || job.plan.count() == 0) return std::nullopt;
  const ChunkOrder order = job.order(0);
  if (order.serial || order.through_pipe) return std::nullopt;
  return ArraysKey{order.input, order.output, job.plan.size(), job.plan.chunksize()};
}

void Dispatcher::adopt_locality(JobState& job) {
  const std::optional<ArraysKey> key = arrays_of(job);
  if (!key) return;
  auto known = localities_.find(*key);
  if (known == localities_.end()) {
    if (localities_.size() >= kRememberedArrays) {  // the least recently mapped goes (a job may still hold it)
      localities_.erase(std::min_element(localities_.begin(), localities_.end(), [](const auto& a, const auto& b) {
        return a.second.last_job < b.second.last_job;
      }));
    }
    known = localities_.emplace(*key, RememberedArrays{std::make_shared<ChunkLocality>(), 0}).first;
  }
  known->second.last_job = job.id;
  job.locality = known->second.locality;
}

void Dispatcher::submit(const std::shared_ptr<JobState>& job) {
  const RingOnLeaving ring(*this);
  job->id = ++last_job_id_;
  adopt_locality(*job);
  active_.push_back(job);
  // The first tasks go round the workers one at a time, so that a job of two chunks on two workers
  // runs on both, not twice on the first; from then on whoever answers is fed. A caller who computes
  // a share is there at once: a worker that already holds a task does not steal from the caller's
  // region before the caller starts (one that holds none does: it is fed again only when it answers).
  for (std::size_t round = 1; round <= depth(*job); ++round) {
    for (std::size_t i = 0; i < workers_.size() && job->handing_out(); ++i) {
      if (!job->handing_out_to(i)) continue;
      const bool would_steal_from_caller = job->caller_region && job->retry.empty() && !workers_[i].in_flight.empty() &&
                                           job->unstarted.source(i, job->locality.get()) == *job->caller_region;
      if (can_take(i) && workers_[i].in_flight.size() < round && !would_steal_from_caller) hand_out(*job, i);
    }
  }
}

std::optional<std::size_t> Dispatcher::take_back(JobState& job) noexcept {
  if (!job.may_take_back_for_caller()) return std::nullopt;
  // A task behind one its worker is busy with first (that worker is surely not about to begin it),
  // then the first task of a worker not yet awake.
  for (const bool behind_another : {true, false}) {
    if (const std::optional<std::size_t> chunk = claim_held_task(job, behind_another)) return chunk;
  }
  return std::nullopt;
}

std::optional<std::size_t> Dispatcher::claim_held_task(JobState& job, bool behind_another,
                                                       std::optional<std::size_t> for_worker) noexcept {
  for (WorkerSlot& slot : workers_) {
    Mailbox* const mailbox = slot.mailbox.get();
    if (mailbox == nullptr) continue;
    // Tasks are claimed in order, by the worker or by this: only the oldest unclaimed one can be had.
    std::uint64_t unclaimed = mailbox->tasks_claimed.load(std::memory_order_acquire);
    const auto held = std::find_if(slot.in_flight.begin(), slot.in_flight.end(),
                                   [unclaimed](const WorkerSlot::Task& task) { return task.number == unclaimed; });
    if (held == slot.in_flight.end() || held->job != job.id || !held->in_place ||
        (held != slot.in_flight.begin()) != behind_another ||
        (for_worker && !job.worth_moving(held->chunk, *for_worker))) {
      continue;
    }
    if (!mailbox->tasks_claimed.compare_exchange_strong(unclaimed, unclaimed + 1, std::memory_order_acq_rel)) {
      continue;  // the worker took it meanwhile
    }
    const std::size_t chunk = held->chunk;
    slot.in_flight.erase(held);  // the worker answers the others, in order, as before
    --slot.tasks_handed;         // maxtasksperchild counts what the process ran
    return chunk;
  }
  return std::nullopt;
}

void Dispatcher::rebalance(std::size_t idle) {
  if (!workers_[idle].in_flight.empty() || !can_take(idle)) return;
  for (const std::shared_ptr<JobState>& job : active_) {
    // Still handing out: feed gave `idle` what it may have.
    if (job->handing_out() || !job->may_hand_out_again()) continue;
    // Only a task behind one its worker is busy with. The first task of a worker not yet awake stays:
    // that worker is about to begin it, the chunk is the front of its own region, whose pages are in
    // its page tables (see ChunkQueue), and it may be dead rather than late, which its death path
    // names and mends (receive, then bury) where a take-back would leave it unnoticed.
    const std::optional<std::size_t> chunk = claim_held_task(*job, /*behind_another=*/true, idle);
    if (!chunk) continue;
    // Out again through the retry queue, which hand_out counts as out once more. Should `idle` be
    // known dead already, the chunk waits in the queue for the next worker; should it die with the
    // chunk in its ring, untaken, its death path (receive, then bury) puts the chunk back there, as a
    // dead worker's untaken tasks go.
    --job->outstanding;
    job->retry.push_back(*chunk);
    hand_out(*job, idle);
    return;
  }
}

void Dispatcher::abandon(JobState& job) noexcept {
  job.abandoned = true;
  job.retry.clear();
}

// ---- Answers ----------------------------------------------------------------------------------

void Dispatcher::throw_if_stopped() {
  throw_if_interrupted();
  if (terminated_) throw PoolTerminated("ProcessPool: terminate() was called: its workers were killed");
}

Dispatcher::Wake Dispatcher::wait(std::size_t watched, Deadline deadline, std::chrono::microseconds spin) {
  throw_if_stopped();
  poll_set_.resize(watched);
  poll_set_.push_back({wake_.read_end.get(), POLLIN, 0});
  const int wake_fd = interrupt_wake_fd();
  if (wake_fd >= 0) poll_set_.push_back({wake_fd, POLLIN, 0});

  const int ready =
      poll_after_spinning(poll_set_.data(), poll_set_.size(), spin, settings_.spin_style, milliseconds_until(deadline));
  if (ready < 0) {
    if (errno == EINTR) return Wake::spurious;  // a signal: the wake-up descriptor says which, next time
    throw_errno("wait for the workers");
  }
  if (ready == 0) {  // a timeout: the ScopedDeadline's (which throws), or the caller's own
    throw_if_interrupted();
    return deadline && Clock::now() >= *deadline ? Wake::timed_out : Wake::spurious;
  }
  if (poll_set_[watched].revents != 0) {  // terminate(), or new work given: the caller looks again
    throw_if_stopped();
    kicked_ = false;
    drain(wake_.read_end);
  }
  // A wake-up with nothing pending (an interrupt cleared meanwhile) is drained, not acted on.
  if (wake_fd >= 0 && poll_set_.back().revents != 0) {
    throw_if_interrupted();
    clear_interrupt();
  }
  for (std::size_t k = 0; k < watched; ++k) {
    if (poll_set_[k].revents != 0) return Wake::readable;
  }
  return Wake::spurious;
}

Dispatcher::Wake Dispatcher::wait_for_answers(Deadline deadline, std::chrono::microseconds spin) {
  answered_.clear();
  if (settings_.mailboxes) return wait_for_mailboxes(deadline, spin);
  poll_set_.clear();
  for (const std::size_t index : poll_owners_) poll_set_.push_back({workers_[index].replies.get(), POLLIN, 0});
  const Wake woken = wait(poll_owners_.size(), deadline, spin);
  if (woken == Wake::readable) {
    for (std::size_t k = 0; k < poll_owners_.size(); ++k) {
      if (poll_set_[k].revents != 0) answered_.push_back(poll_owners_[k]);
    }
  }
  return woken;
}

bool Dispatcher::list_answered() {
  answered_.clear();
  for (const std::size_t index : poll_owners_) {
    const WorkerSlot& slot = workers_[index];
    if (slot.hung_up || slot.reply_ring.has_message()) answered_.push_back(index);
  }
  return !answered_.empty();
}

bool Dispatcher::found_hang_ups() {
  if (!hang_up_looks_.due()) return false;
  poll_set_.clear();
  for (const std::size_t index : poll_owners_) poll_set_.push_back({workers_[index].reply_bell.get(), POLLIN, 0});
  if (::poll(poll_set_.data(), poll_set_.size(), 0) <= 0) return false;
  for (std::size_t k = 0; k < poll_owners_.size(); ++k) {
    // Awake, nobody rings: a doorbell that says anything says end-of-file.
    if (poll_set_[k].revents != 0) workers_[poll_owners_[k]].hung_up = true;
  }
  return list_answered();
}

Dispatcher::Wake Dispatcher::wait_for_mailboxes(Deadline deadline, std::chrono::microseconds spin) {
  throw_if_stopped();
  // Awake: spinning on the rings (and on what would cut the wait short), no system call but a yield
  // between looks where the team shares CPUs (PoolOptions::spin_style) and, every kHangUpCheckNs, a
  // look at the doorbells for a death.
  const bool spun = spin_until(
      [this] {
        return list_answered() || terminated_.load(std::memory_order_relaxed) ||
               kicked_.load(std::memory_order_relaxed) || detail::g_stop_requested.load(std::memory_order_relaxed) ||
               found_hang_ups();
      },
      spin, settings_.spin_style);
  if (spun && !answered_.empty()) return Wake::readable;
  if (spin.count() == 0 && deadline && *deadline <= Clock::now()) {
    // Only a look (AsyncResult::ready, a caller between chunks of its share): saying "asleep" in the
    // rings would make every worker ring a doorbell, a system call each, for a master that is not
    // going to sleep. A death is still seen, every kHangUpCheckNs.
    return found_hang_ups() ? Wake::readable : Wake::timed_out;
  }
  // Asleep: said in every ring, the rings looked at once more, then poll() on the doorbells, the
  // wake-up pipe and the interrupt. Every doze is settled, whatever ends it.
  poll_set_.clear();
  for (const std::size_t index : poll_owners_) {
    workers_[index].reply_ring.doze();
    poll_set_.push_back({workers_[index].reply_bell.get(), POLLIN, 0});
  }
  Wake woken = Wake::spurious;
  std::exception_ptr stopped;
  if (!list_answered()) {
    try {
      woken = wait(poll_owners_.size(), deadline, std::chrono::microseconds(0));
    } catch (...) {
      stopped = std::current_exception();
    }
  }
  for (std::size_t k = 0; k < poll_owners_.size(); ++k) {
    WorkerSlot& slot = workers_[poll_owners_[k]];
    const bool readable = woken == Wake::readable && poll_set_[k].revents != 0;
    if (slot.reply_ring.settle(slot.reply_bell.get(), readable) == RingReader<ReplyMessage>::Settled::hung_up) {
      slot.hung_up = true;
    }
  }
  hang_up_looks_.looked();
  if (stopped) std::rethrow_exception(stopped);
  if (list_answered()) return Wake::readable;
  return woken == Wake::timed_out ? Wake::timed_out : Wake::spurious;
}

JobState* Dispatcher::active_job(std::uint64_t id) noexcept {
  const auto found = std::find_if(active_.begin(), active_.end(), [id](const auto& job) { return job->id == id; });
  return found != active_.end() ? found->get() : nullptr;
}

std::size_t Dispatcher::name_trace_track(std::size_t index) {
  const pid_t pid = workers_[index].process.pid();
  const int cpu = workers_[index].cpu;
  return workers_[index].trace_track = settings_.trace->track(
             pid, pid,
             cpu < 0 ? fmt::format("ProcessPool worker {} (pid {})", index, pid)
                     : fmt::format("ProcessPool worker {} (pid {}, pinned to CPU {})", index, pid, cpu));
}

void Dispatcher::receive(std::size_t index) {
  // Answers are read one after another, and the one before may have fed its worker: reading this one
  // may wait (results through the pipe) or run fn's own code (reading serialized results back).
  ring_sleeping_workers();
  WorkerSlot& slot = workers_[index];
  ReplyMessage reply{};
  JobState* job = nullptr;
  bool whole = false;
  std::span<const std::byte> results;
  // An answer, and results after it when they travel through the pipe; end-of-file or a torn message
  // in either means the worker died, and is reported as a death, not as a protocol error.
  try {
    // With a mailbox, an empty ring here means the worker hung up (see wait_for_mailboxes).
    whole = slot.mailbox.get() != nullptr ? slot.reply_ring.take(reply)
                                          : read_exact(slot.replies.get(), &reply, sizeof(reply));
    if (whole) job = active_job(reply.job);
    if (whole && reply.payload_bytes > 0) {
      const ChunkOrder order = job != nullptr ? job->order(reply.chunk) : ChunkOrder{};
      std::byte* into = nullptr;
      if (order.through_pipe) {
        into = static_cast<std::byte*>(order.output) + job->plan[reply.chunk].begin * order.output_element_bytes;
      } else {
        piped_results_.resize(reply.payload_bytes);
        into = piped_results_.data();
        results = piped_results_;
        // It did not fit in the result buffer: the next ones will.
        slot.wanted_half = std::max(slot.wanted_half, 2 * static_cast<std::size_t>(reply.payload_bytes));
      }
      whole = read_exact(slot.replies.get(), into, reply.payload_bytes);
    }
  } catch (const std::system_error&) {
    whole = false;
  }
  if (!whole) {
    bury(index);
    return;
  }
  if (reply.result_bytes > 0 && !slot.in_flight.empty() && slot.in_flight.front().result_buffer != nullptr) {
    results = {slot.in_flight.front().result_buffer, static_cast<std::size_t>(reply.result_bytes)};
  }
  if (!slot.in_flight.empty()) slot.in_flight.pop_front();
  if (settings_.trace != nullptr) {
    settings_.trace->add(slot.trace_track, "chunk", "chunk", reply.began_ns, reply.ended_ns, reply.cpu,
                         static_cast<std::int64_t>(reply.chunk));
  }
  if (job != nullptr) {
    job->pipe_bytes += sizeof(reply) + reply.payload_bytes;
    --job->outstanding;
    const ChunkRange range = job->plan[reply.chunk];
    if (reply.kind == ReplyKind::failed) {
      job->chunk_failed(reply.chunk, std::make_exception_ptr(WorkerError(index, slot.process.pid(), range.begin,
                                                                         range.end, text_of(reply))));
    } else if (!job->abandoned) {
      try {
        job->store(reply.chunk, results);
        job->chunk_done(reply.chunk);
        job->chunk_ran(reply.chunk, index, reply.ended_ns - reply.began_ns);
      } catch (...) {  // results that cannot be read back (a torn archive, no memory): the chunk failed
        job->chunk_failed(reply.chunk, std::current_exception());
      }
    }
  }
  if (settings_.maxtasksperchild != 0 && slot.tasks_handed >= settings_.maxtasksperchild && slot.in_flight.empty()) {
    retire(index);
  }
  feed(index);
}

void Dispatcher::collect(std::vector<std::shared_ptr<JobState>>& finished) {
  for (const std::shared_ptr<JobState>& job : active_) {
    if (conclude_if_decided(*job)) finished.push_back(job);
  }
  drop_settled();
}

void Dispatcher::drop_settled() noexcept {
  std::erase_if(active_, [](const std::shared_ptr<JobState>& job) { return job->concluded && job->outstanding == 0; });
}

void Dispatcher::list_busy_workers() {
  poll_owners_.clear();
  for (std::size_t i = 0; i < workers_.size(); ++i) {
    if (!workers_[i].in_flight.empty()) poll_owners_.push_back(i);
  }
}

Dispatcher::Served Dispatcher::serve(Deadline deadline, std::vector<std::shared_ptr<JobState>>& finished,
                                     const std::function<void()>& unlock, const std::function<void()>& relock) {
  const RingOnLeaving ring(*this);
  // Work that could not go out (a worker died and its slot is empty): replacements first.
  const bool waiting_work =
      std::any_of(active_.begin(), active_.end(), [](const auto& job) { return job->handing_out(); });
  if (waiting_work &&
      std::any_of(workers_.begin(), workers_.end(), [](const WorkerSlot& s) { return !s.process.running(); })) {
    start_missing();
    for (std::size_t i = 0; i < workers_.size(); ++i) feed(i);
  }
  collect(finished);
  if (!finished.empty()) return Served::progress;  // news already (a death found while handing out)

  list_busy_workers();
  if (poll_owners_.empty() && waiting_work) {
    // Workers that turned a steal down hold nothing and are fed only when they answer: one more look.
    for (std::size_t i = 0; i < workers_.size(); ++i) feed(i);
    list_busy_workers();
    // What no worker takes may be the region of a caller computing its share: a steal from it did not
    // pay, and the caller takes it itself between its chunks (waking whoever waits here).
    const bool callers_share_left = std::all_of(active_.begin(), active_.end(), [](const auto& job) {
      return !job->handing_out() || (job->caller_region && job->retry.empty());
    });
    if (poll_owners_.empty() && !callers_share_left) {
      // Work to hand out and no worker to take it, even after replacing the dead: say so rather than wait.
      const auto error = std::make_exception_ptr(std::runtime_error("no worker is left to take the pool's work"));
      for (const auto& job : active_) {
        if (job->handing_out()) job->fail_the_rest(error);
      }
      collect(finished);
      return Served::progress;
    }
  }
  if (poll_owners_.empty()) return Served::idle;
  // A caller that only looks (AsyncResult::ready) does not spin.
  const std::chrono::microseconds spin =
      deadline && *deadline <= Clock::now() ? std::chrono::microseconds(0) : settings_.spin;
  ring_sleeping_workers();  // before the wait: a worker asleep on a task of its own would never answer
  if (unlock) unlock();
  Wake woken = Wake::spurious;
  try {
    woken = wait_for_answers(deadline, spin);
  } catch (...) {
    if (relock) relock();
    throw;
  }
  if (relock) relock();
  if (woken == Wake::timed_out) {
    collect(finished);
    return Served::timed_out;
  }
  if (woken == Wake::readable) {
    // Only the answer waits write answered_: a replacement's start-up wait, which receiving may fork,
    // uses poll_set_ alone.
    for (const std::size_t index : answered_) receive(index);
  }
  collect(finished);
  return Served::progress;
}

}  // namespace mpdemo::detail
