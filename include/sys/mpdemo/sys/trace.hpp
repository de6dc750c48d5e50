// Trace: a timeline of who ran what, when and on which CPU, recorded by the pools and experiments
// while they run and rendered afterwards (Chrome trace-event JSON for Perfetto, a Gantt chart: the
// report layer's job). A track is one process or thread, known by its real pid and tid; a span is a
// stretch of time on a track.
//
// Off by default: a pool or experiment given no Trace records nothing, and pays one null check per
// chunk. What a worker does record always -- when its chunk began and ended, and its CPU -- rides in
// the reply it sends anyway (two vDSO clock reads and a sched_getcpu per chunk). When on, the time
// spent inside add() is measured and reported (recording_cost()), so a trace states its own price.
#pragma once

#include <sys/types.h>
#include <time.h>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace mpdemo {

/// CLOCK_MONOTONIC in nanoseconds: the one clock every process of a run shares, so spans taken in
/// forked workers and in the master line up. A system call only (vDSO): safe in a forked child.
inline std::int64_t monotonic_ns() noexcept {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<std::int64_t>(now.tv_sec) * 1'000'000'000 + now.tv_nsec;
}

/// The CPU the calling thread runs on right now (sched_getcpu), -1 if the kernel cannot say.
int current_cpu() noexcept;

/// The calling thread's kernel thread id (gettid).
pid_t current_tid() noexcept;

struct TraceTrack {
  pid_t pid = 0;     ///< the process
  pid_t tid = 0;     ///< the thread; == pid for a process's main thread
  std::string name;  ///< what it is: "master", "worker 1 (ProcessPool)", "task B (2x)"
};

struct TraceSpan {
  std::size_t track = 0;      ///< index into Trace::tracks()
  std::string name;           ///< "start", "chunk 3", "compute", "ran"
  std::string category;       ///< "pool", "chunk", "phase", "task", "experiment": colours in a chart
  std::int64_t begin_ns = 0;  ///< monotonic_ns()
  std::int64_t end_ns = 0;
  int cpu = -1;  ///< where it ran (-1: unknown or several)
  /// Shown after the name ("chunk" 3: "chunk 3"), so that recording formats nothing; -1: none.
  std::int64_t number = -1;
  /// The name as shown: with its number, if it has one.
  std::string label() const { return number < 0 ? name : name + " " + std::to_string(number); }
};

class Trace {
 public:
  /// The constructing thread's track is the first: "master".
  Trace();
  Trace(const Trace&) = delete;
  Trace& operator=(const Trace&) = delete;

  /// The track of (pid, tid), created with `name` the first time; a later call with a non-empty name
  /// renames it (a pool learns a worker's role after it forked it). Thread-safe.
  std::size_t track(pid_t pid, pid_t tid, const std::string& name = {});
  /// The calling thread's own track (remembered by the thread: after the first call, no lookup and
  /// no system call).
  std::size_t this_thread(const std::string& name = {});

  /// Records a span. Thread-safe; its own cost is added to recording_cost(). Never throws: a span
  /// that cannot be stored (out of memory) is counted in dropped(), and the run it watches goes on.
  void add(std::size_t track, std::string name, std::string category, std::int64_t begin_ns, std::int64_t end_ns,
           int cpu = -1, std::int64_t number = -1) noexcept;
  /// The same, on the calling thread's track, from `begin_ns` to now, on the current CPU.
  void add_here(std::string name, std::string category, std::int64_t begin_ns, std::int64_t number = -1);

  /// When the trace was created: times are shown relative to it.
  std::int64_t origin_ns() const noexcept { return origin_ns_; }
  /// Copies, so that a renderer never races a recorder.
  std::vector<TraceTrack> tracks() const;
  std::vector<TraceSpan> spans() const;
  /// Seconds spent inside add() so far: what recording cost the run it watched.
  double recording_cost() const;
  /// Spans that could not be stored.
  std::size_t dropped() const;

 private:
  mutable std::mutex mutex_;
  /// Unique among every Trace this process makes: what a thread's remembered track is checked
  /// against (an address is not enough: a new Trace may be made where an old one was).
  std::uint64_t id_;
  std::int64_t origin_ns_;
  std::vector<TraceTrack> tracks_;
  std::vector<TraceSpan> spans_;
  std::int64_t recording_ns_ = 0;
  std::size_t dropped_ = 0;
};

/// Records a span on the calling thread's track from construction to destruction (when `trace` is
/// not null): how the phases of a run are traced without a line of timing code each.
class ScopedSpan {
 public:
  ScopedSpan(Trace* trace, std::string name, std::string category) noexcept;
  ScopedSpan(const ScopedSpan&) = delete;
  ScopedSpan& operator=(const ScopedSpan&) = delete;
  ~ScopedSpan();

 private:
  Trace* trace_;
  std::string name_;
  std::string category_;
  std::int64_t begin_ns_ = 0;
};

/// Marks the consecutive phases of one thread's work on its track: each mark() ends the phase begun
/// at the previous one (or at construction). With a null trace it reads no clock at all.
class PhaseMarks {
 public:
  explicit PhaseMarks(Trace* trace) noexcept : trace_(trace), last_ns_(trace != nullptr ? monotonic_ns() : 0) {}
  void mark(const char* name, const char* category = "phase");

 private:
  Trace* trace_;
  std::int64_t last_ns_;
};

}  // namespace mpdemo
