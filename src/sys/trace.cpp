#include "mpdemo/sys/trace.hpp"

#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <utility>

namespace mpdemo {

int current_cpu() noexcept { return sched_getcpu(); }

pid_t current_tid() noexcept { return static_cast<pid_t>(syscall(SYS_gettid)); }

Trace::Trace() : origin_ns_(monotonic_ns()) { this_thread("master (pid " + std::to_string(getpid()) + ")"); }

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

std::size_t Trace::this_thread(const std::string& name) { return track(getpid(), current_tid(), name); }

void Trace::add(std::size_t track, std::string name, std::string category, std::int64_t begin_ns, std::int64_t end_ns,
                int cpu) noexcept {
  const std::int64_t entered = monotonic_ns();
  const std::lock_guard lock(mutex_);
  try {
    spans_.push_back({track, std::move(name), std::move(category), begin_ns, end_ns, cpu});
  } catch (...) {
    ++dropped_;
  }
  recording_ns_ += monotonic_ns() - entered;
}

std::size_t Trace::dropped() const {
  const std::lock_guard lock(mutex_);
  return dropped_;
}

void Trace::add_here(std::string name, std::string category, std::int64_t begin_ns) {
  const std::int64_t now = monotonic_ns();
  add(this_thread(), std::move(name), std::move(category), begin_ns, now, current_cpu());
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
