#include "mpdemo/sys/trace.hpp"

#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <atomic>
#include <mutex>
#include <utility>

namespace mpdemo {

int current_cpu() noexcept { return sched_getcpu(); }

pid_t current_tid() noexcept { return static_cast<pid_t>(syscall(SYS_gettid)); }

namespace {
std::atomic<std::uint64_t> g_last_trace_id{0};
}  // namespace

Trace::Trace() : id_(g_last_trace_id.fetch_add(1) + 1), origin_ns_(monotonic_ns()) {
  spans_.reserve(std::size_t{1} << 12);  // the first few thousand spans cost no reallocation mid-run
  this_thread("master (pid " + std::to_string(getpid()) + ")");
}

std::size_t Trace::track(pid_t pid, pid_t tid, const std::string& name) {
  const std::lock_guard lock(mutex_);
  for (std::size_t i = 0; i < tracks_.size(); ++i) {
    if (tracks_[i].pid == pid && tracks_[i].tid == tid) {
      if (!name.empty()) tracks_[i].name = name;
      return i;
    }
  }
  tracks_.push_back({pid, tid,
                     !name.empty() ? name
                     : pid == tid  ? "pid " + std::to_string(pid)
                                   : "pid " + std::to_string(pid) + " thread " + std::to_string(tid)});
  return tracks_.size() - 1;
}

namespace {

// Bumped in every forked child: a thread's remembered track belongs to the process that looked it
// up. (getpid() would tell as much, but it is a system call, a microsecond on a slow VM, per span.)
std::atomic<unsigned> g_fork_generation{0};

unsigned fork_generation() {
  static std::once_flag registered;
  std::call_once(registered, [] { ::pthread_atfork(nullptr, nullptr, [] { g_fork_generation.fetch_add(1); }); });
  return g_fork_generation.load(std::memory_order_relaxed);
}

}  // namespace

std::size_t Trace::this_thread(const std::string& name) {
  // The last answer, per thread, for this trace in this process.
  thread_local std::uint64_t known_trace = 0;
  thread_local unsigned known_generation = 0;
  thread_local std::size_t known_track = 0;
  const unsigned generation = fork_generation();
  if (name.empty() && known_trace == id_ && known_generation == generation) return known_track;
  known_track = track(getpid(), current_tid(), name);
  known_trace = id_;
  known_generation = generation;
  return known_track;
}

void Trace::add(std::size_t track, std::string name, std::string category, std::int64_t begin_ns, std::int64_t end_ns,
                int cpu, std::int64_t number) noexcept {
  const std::int64_t entered = monotonic_ns();
  const std::lock_guard lock(mutex_);
  try {
    spans_.push_back({track, std::move(name), std::move(category), begin_ns, end_ns, cpu, number});
  } catch (...) {
    ++dropped_;
  }
  recording_ns_ += monotonic_ns() - entered;
}

std::size_t Trace::dropped() const {
  const std::lock_guard lock(mutex_);
  return dropped_;
}

void Trace::add_here(std::string name, std::string category, std::int64_t begin_ns, std::int64_t number) {
  const std::int64_t now = monotonic_ns();
  add(this_thread(), std::move(name), std::move(category), begin_ns, now, current_cpu(), number);
}

std::vector<TraceTrack> Trace::tracks() const {
  const std::lock_guard lock(mutex_);
  return tracks_;
}

std::vector<TraceSpan> Trace::spans() const {
  const std::lock_guard lock(mutex_);
  return spans_;
}

double Trace::recording_cost() const {
  const std::lock_guard lock(mutex_);
  return static_cast<double>(recording_ns_) * 1e-9;
}

ScopedSpan::ScopedSpan(Trace* trace, std::string name, std::string category) noexcept
    : trace_(trace), name_(std::move(name)), category_(std::move(category)) {
  if (trace_ != nullptr) begin_ns_ = monotonic_ns();
}

ScopedSpan::~ScopedSpan() {
  if (trace_ == nullptr) return;
  try {
    trace_->add_here(std::move(name_), std::move(category_), begin_ns_);
  } catch (...) {
    // A span that could not be recorded (out of memory) is missing from the picture; the run it
    // watched is not failed for it.
  }
}

void PhaseMarks::mark(const char* name, const char* category) {
  if (trace_ == nullptr) return;
  const std::int64_t begin = last_ns_;
  trace_->add_here(name, category, begin);
  last_ns_ = monotonic_ns();
}

}  // namespace mpdemo
