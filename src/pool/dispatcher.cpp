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

// Two tasks in flight per worker: while the master reads one answer and sends the next task, the
// worker is already busy with the second, so a pipe round trip is not paid between chunks.
constexpr std::size_t kTasksInFlight = 2;
constexpr auto kStopGrace = std::chrono::milliseconds(1000);
constexpr int kSendAttempts = 3;

/// Writes a task, and on the pipe data path the chunk's input after it. False if the worker is gone
/// (EPIPE: SIGPIPE is blocked during a map).
bool write_task(const FileDescriptor& to, const TaskMessage& task, const void* payload) {
  try {
    write_all(to.get(), &task, sizeof(task));
    if (task.payload_bytes > 0) write_all(to.get(), payload, task.payload_bytes);
  } catch (const std::system_error& error) {
    if (error.code().value() == EPIPE) return false;
    throw;
  }
  return true;
}

/// How a worker ended, in the words a WorkerError gives.
std::string how_it_ended(const ExitStatus& status) {
  if (status.exited() && status.exit_code() == kExitCalledExit) {
    return "its function called exit() or quick_exit() in the worker";
  }
  return fmt::format("the worker was {}", status.str());
}

/// The poll timeout, in milliseconds, until the first of `deadline` and the ScopedDeadline's; -1 for none.
int milliseconds_until(std::optional<Clock::time_point> deadline) {
  std::optional<Clock::time_point> first = current_deadline();
  if (deadline && (!first || *deadline < *first)) first = deadline;
  if (!first) return -1;
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(*first - Clock::now());
  return static_cast<int>(std::clamp<long long>(left.count(), 0, 24LL * 3600 * 1000));
}

}  // namespace

Dispatcher::Dispatcher(Settings settings, std::vector<int> cpus)
    : settings_(settings), workers_(cpus.size()), terminate_wake_(Pipe::create(O_NONBLOCK)) {
  for (std::size_t i = 0; i < cpus.size(); ++i) workers_[i].cpu = cpus[i];
}

Dispatcher::~Dispatcher() { stop(); }

// ---- Workers ----------------------------------------------------------------------------------

void Dispatcher::start_missing() {
  for (std::size_t i = 0; i < workers_.size(); ++i) {
    if (!workers_[i].process.running()) start_worker(i);
  }
}

void Dispatcher::start_worker(std::size_t index) {
  WorkerSlot& slot = workers_[index];
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
  const WorkerSetup setup{tasks.read_end.get(), replies.write_end.get(), settings_.spin};
  slot.process =
      mpdemo::spawn(fmt::format("worker {}", index), options, [&setup]() noexcept { return run_worker(setup); });
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
    const Clock::time_point give_up = Clock::now() + settings_.start_timeout;
    poll_set_.assign(1, pollfd{slot.replies.get(), POLLIN, 0});
    Wake woken = Wake::spurious;
    while ((woken = wait(1, give_up, std::chrono::microseconds(0))) == Wake::spurious) {
    }
    in_time = woken == Wake::readable;
    started = in_time && read_exact(slot.replies.get(), &ready, sizeof(ready)) && ready.kind == ReplyKind::ready;
  } catch (const std::system_error&) {
    started = false;
  } catch (...) {  // an interrupt, a deadline, terminate(): this worker goes with the rest
    discard(index);
    throw;
  }
  if (started) return;
  const ExitStatus status = slot.process.wait_or_kill(in_time ? kStopGrace : std::chrono::milliseconds(0));
  slot.tasks.reset();
  slot.replies.reset();
  if (!in_time) {
    throw std::runtime_error(fmt::format(
        "worker {} (pid {}) did not say it was ready within {} ms (stopped, or starved of CPU): it was killed", index,
        pid, settings_.start_timeout.count()));
  }
  throw std::runtime_error(fmt::format("worker {} (pid {}) did not start: {}", index, pid, status.str()));
}

void Dispatcher::discard(std::size_t index) noexcept {
  WorkerSlot& slot = workers_[index];
  slot.process.kill_and_wait();
  slot.in_flight.clear();
  slot.tasks.reset();
  slot.replies.reset();
}

void Dispatcher::bury(std::size_t index) {
  WorkerSlot& slot = workers_[index];
  const pid_t pid = slot.process.pid();
  const ExitStatus status = slot.process.wait();
  const std::deque<WorkerSlot::Task> lost = std::move(slot.in_flight);
  slot.in_flight.clear();
  slot.tasks.reset();
  slot.replies.reset();
  // The slot stays empty until the next start_missing(): a job that lost a chunk throws at once.
  for (const WorkerSlot::Task& task : lost) {
    Job* job = active_job(task.job);
    if (job == nullptr) continue;
    --job->outstanding;
    job->lost_a_chunk = true;
    if (!job->failure) {
      const ChunkRange range = job->plan[task.chunk];
      job->failure.emplace(index, pid, range.begin, range.end, how_it_ended(status));
    }
  }
}

void Dispatcher::abandon_in_flight() noexcept {
  for (std::size_t i = 0; i < workers_.size(); ++i) {
    if (!workers_[i].in_flight.empty()) discard(i);
  }
}

void Dispatcher::kill_all() noexcept {
  for (std::size_t i = 0; i < workers_.size(); ++i) discard(i);
}

void Dispatcher::stop() noexcept {
  for (WorkerSlot& slot : workers_) {
    // A worker still busy with an abandoned job would finish its chunk first: nobody wants it.
    if (!slot.in_flight.empty() && slot.process.running()) ::kill(slot.process.pid(), SIGKILL);
    slot.tasks.reset();  // end-of-file: a worker waiting for work leaves
  }
  for (WorkerSlot& slot : workers_) {
    if (slot.process.running()) slot.process.wait_or_kill(kStopGrace);
  }
  workers_.clear();
}

void Dispatcher::request_termination() noexcept {
  terminated_ = true;
  const char byte = 1;
  [[maybe_unused]] const auto ignored = ::write(terminate_wake_.write_end.get(), &byte, 1);
}

// ---- Handing out ------------------------------------------------------------------------------

std::size_t Dispatcher::depth(const Job& job) noexcept {
  // On the pipe data path one task at a time: a worker then only writes results after it has read
  // its whole slice, and the master only writes slices to workers that are reading, so the two
  // blocking directions can never wait on each other.
  return job.pipe != nullptr ? 1 : kTasksInFlight;
}

bool Dispatcher::hand_out(Job& job, std::size_t index) {
  for (int attempt = 0;; ++attempt) {
    WorkerSlot& slot = workers_[index];
    if (!slot.process.running()) return false;  // died during this job: refilled by the next start_missing
    if (attempt == kSendAttempts) {
      throw std::runtime_error(fmt::format("worker {} died {} times in a row on start-up", index, kSendAttempts));
    }
    TaskMessage task = job.task_template;
    task.job = job.id;
    task.chunk = job.next_chunk;
    task.begin = job.plan[job.next_chunk].begin;
    task.end = job.plan[job.next_chunk].end;
    const void* payload = nullptr;
    if (job.pipe != nullptr) {
      task.payload_bytes = (task.end - task.begin) * job.pipe->input_element_bytes;
      payload = job.pipe->input + task.begin * job.pipe->input_element_bytes;
    }
    if (write_task(slot.tasks, task, payload)) {
      slot.in_flight.push_back({job.id, job.next_chunk});
      ++job.next_chunk;
      ++job.outstanding;
      job.pipe_bytes += sizeof(task) + task.payload_bytes;
      return true;
    }
    // The worker is gone. If it held chunks, their jobs fail (bury); if it died idle, it held
    // nothing of anyone's, so a replacement is forked at once and takes the chunk.
    const bool held_chunks = !slot.in_flight.empty();
    bury(index);
    if (held_chunks || !job.handing_out()) return false;
    start_worker(index);
  }
}

void Dispatcher::feed(std::size_t index) {
  for (Job* job : active_) {
    while (job->handing_out() && workers_[index].process.running() && workers_[index].in_flight.size() < depth(*job)) {
      if (!hand_out(*job, index)) return;
    }
  }
}

void Dispatcher::run(Job& job) {
  job.id = ++last_job_id_;
  if (job.timeout.count() > 0) job.deadline = Clock::now() + job.timeout;
  active_.push_back(&job);
  struct Deactivate {
    std::vector<Job*>& active;
    Job& job;
    ~Deactivate() { std::erase(active, &job); }
  } deactivate{active_, job};

  // The first tasks go round the workers one at a time, so that a job of two chunks on two workers
  // runs on both, not twice on the first; from then on whoever answers is fed.
  for (std::size_t round = 1; round <= depth(job); ++round) {
    for (std::size_t i = 0; i < workers_.size() && job.handing_out(); ++i) {
      if (workers_[i].in_flight.size() < round) hand_out(job, i);
    }
  }
  // A lost chunk ends the job at once (the caller kills the workers still busy): waiting for the
  // survivors' long chunks would only delay the error. A thrown exception waits for the chunks
  // already handed out, which end by themselves.
  std::vector<std::size_t> answered;
  while (!job.finished()) {
    poll_set_.clear();
    poll_owners_.clear();
    for (std::size_t i = 0; i < workers_.size(); ++i) {
      if (workers_[i].in_flight.empty()) continue;
      poll_set_.push_back({workers_[i].replies.get(), POLLIN, 0});
      poll_owners_.push_back(i);
    }
    if (poll_owners_.empty()) break;  // nothing out, and nobody left to take the rest
    const Wake woken = wait(poll_owners_.size(), job.deadline, settings_.spin);
    if (woken == Wake::timed_out) {
      throw MapTimeout(fmt::format(
          "ProcessPool::map did not finish within {} ms (map_timeout): its busy workers were killed, and are "
          "replaced at the next map",
          job.timeout.count()));
    }
    if (woken == Wake::spurious) continue;
    // Collected first: receiving may fork a replacement, whose start-up wait reuses poll_set_.
    answered.clear();
    for (std::size_t k = 0; k < poll_owners_.size(); ++k) {
      if (poll_set_[k].revents != 0) answered.push_back(poll_owners_[k]);
    }
    for (const std::size_t index : answered) receive(index);
  }
  if (job.failure) throw *job.failure;
  // Every chunk must have been handed out: if all workers died idle and could not be replaced, say so
  // rather than return a partial result.
  if (job.next_chunk < job.plan.count()) {
    throw std::runtime_error(
        fmt::format("only {} of {} chunks could be handed out: no worker is left", job.next_chunk, job.plan.count()));
  }
}

// ---- Answers ----------------------------------------------------------------------------------

void Dispatcher::throw_if_stopped() {
  throw_if_interrupted();
  if (terminated_) throw PoolTerminated("ProcessPool: terminate() was called: its workers were killed");
}

Dispatcher::Wake Dispatcher::wait(std::size_t watched, std::optional<Clock::time_point> deadline,
                                  std::chrono::microseconds spin) {
  throw_if_stopped();
  poll_set_.resize(watched);
  poll_set_.push_back({terminate_wake_.read_end.get(), POLLIN, 0});
  const int wake_fd = interrupt_wake_fd();
  if (wake_fd >= 0) poll_set_.push_back({wake_fd, POLLIN, 0});

  const int ready = poll_after_spinning(poll_set_.data(), poll_set_.size(), spin, milliseconds_until(deadline));
  if (ready < 0) {
    if (errno == EINTR) return Wake::spurious;  // a signal: the wake-up descriptor says which, next time
    throw_errno("wait for the workers");
  }
  if (ready == 0) {  // a timeout: the ScopedDeadline's (which throws), or the caller's own
    throw_if_interrupted();
    return deadline && Clock::now() >= *deadline ? Wake::timed_out : Wake::spurious;
  }
  for (std::size_t k = watched; k < poll_set_.size(); ++k) {
    if (poll_set_[k].revents != 0) throw_if_stopped();
  }
  // A wake-up with nothing pending (an interrupt cleared meanwhile) is drained, not acted on.
  if (wake_fd >= 0 && poll_set_.back().revents != 0) clear_interrupt();
  for (std::size_t k = 0; k < watched; ++k) {
    if (poll_set_[k].revents != 0) return Wake::readable;
  }
  return Wake::spurious;
}

Job* Dispatcher::active_job(std::uint64_t id) noexcept {
  const auto found = std::find_if(active_.begin(), active_.end(), [id](const Job* job) { return job->id == id; });
  return found != active_.end() ? *found : nullptr;
}

void Dispatcher::receive(std::size_t index) {
  WorkerSlot& slot = workers_[index];
  ReplyMessage reply{};
  Job* job = nullptr;
  bool whole = false;
  // An answer, and on the pipe path the results after it; end-of-file or a torn message in either
  // means the worker died, and is reported as a death, not as a protocol error.
  try {
    whole = read_exact(slot.replies.get(), &reply, sizeof(reply));
    if (whole) job = active_job(reply.job);
    if (whole && reply.payload_bytes > 0) {
      void* into = nullptr;
      if (job != nullptr && job->pipe != nullptr) {
        into = job->pipe->output + job->plan[reply.chunk].begin * job->pipe->output_element_bytes;
      } else {
        discarded_payload_.resize(reply.payload_bytes);
        into = discarded_payload_.data();
      }
      whole = read_exact(slot.replies.get(), into, reply.payload_bytes);
      if (job != nullptr) job->pipe_bytes += reply.payload_bytes;
    }
  } catch (const std::system_error&) {
    whole = false;
  }
  if (!whole) {
    bury(index);
    return;
  }
  if (!slot.in_flight.empty()) slot.in_flight.pop_front();
  if (job != nullptr) {
    job->pipe_bytes += sizeof(reply);
    --job->outstanding;
    if (reply.kind == ReplyKind::failed && !job->failure) {
      const ChunkRange range = job->plan[reply.chunk];
      job->failure.emplace(index, slot.process.pid(), range.begin, range.end,
                           std::string(reply.what, strnlen(reply.what, sizeof(reply.what))));
    }
  }
  feed(index);
}

}  // namespace mpdemo::detail
