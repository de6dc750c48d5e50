// ChunkQueue: which chunk of a job a worker is handed next. Internal to mpdemo (JobState holds one).
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

namespace mpdemo::detail {

/// The chunks of one job not yet handed out, and which of them a given worker gets next.
///
/// - in_order: one queue, first come first served, as Python's Pool hands out tasks. For imap, whose
///   results are wanted in order, as they end.
/// - by_worker_region: the chunks are split into one contiguous run per worker, as OpenMP's static
///   schedule splits a loop. A worker takes its own run from the front; once that is empty it takes
///   the last chunk of the run with most left (it steals), so a slow worker still gets help. For jobs
///   whose whole result is wanted at once (map, map_into), which lose nothing by it.
///
/// Why regions: a process's first touch of a shared page is a page fault in its own page tables
/// (threads share the master's), and on a virtual machine that fault can cost 3-20 us. Handing chunk 5
/// to whichever worker is free made every worker touch, sooner or later, every page of arrays that a
/// warm pool maps again and again, and repeated maps kept paying those faults round after round. With
/// regions, a worker touches the same pages every time it maps the same arrays.
class ChunkQueue {
 public:
  enum class Order { in_order, by_worker_region };

  ChunkQueue(std::size_t chunks, std::size_t workers, Order order) : left_(chunks) {
    const std::size_t runs =
        order == Order::in_order || workers == 0 ? 1 : std::min(workers, std::max<std::size_t>(chunks, 1));
    for (std::size_t r = 0; r < runs; ++r) runs_.push_back({chunks * r / runs, chunks * (r + 1) / runs});
  }

  bool empty() const noexcept { return left_ == 0; }
  std::size_t left() const noexcept { return left_; }

  /// The chunk `worker` would be handed next. Not empty().
  std::size_t peek(std::size_t worker) const noexcept {
    const Pick pick = choose(worker);
    const Run& run = runs_[pick.run];
    return pick.from_front ? run.begin : run.end - 1;
  }
  /// Takes the chunk peek(worker) returned; returns it.
  std::size_t take(std::size_t worker) noexcept {
    const Pick pick = choose(worker);
    Run& run = runs_[pick.run];
    --left_;
    return pick.from_front ? run.begin++ : --run.end;
  }
  /// Hands out nothing more; returns the chunks that were still to be handed out.
  std::vector<std::size_t> drain() {
    std::vector<std::size_t> rest;
    for (Run& run : runs_) {
      for (std::size_t c = run.begin; c < run.end; ++c) rest.push_back(c);
      run.begin = run.end;
    }
    left_ = 0;
    return rest;
  }

 private:
  struct Run {
    std::size_t begin;  ///< the first chunk of the run not yet handed out
    std::size_t end;
    std::size_t size() const noexcept { return end - begin; }
  };
  struct Pick {
    std::size_t run;
    bool from_front;
  };

  Pick choose(std::size_t worker) const noexcept {
    const std::size_t own = worker % runs_.size();
    if (runs_[own].size() > 0) return {own, true};
    std::size_t fullest = 0;
    for (std::size_t r = 1; r < runs_.size(); ++r) {
      if (runs_[r].size() > runs_[fullest].size()) fullest = r;
    }
    return {fullest, false};  // the back of another worker's run: its owner keeps working from the front
  }

  std::vector<Run> runs_;
  std::size_t left_;
};

}  // namespace mpdemo::detail
