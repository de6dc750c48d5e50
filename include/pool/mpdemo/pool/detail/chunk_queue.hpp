// ChunkQueue: which chunk of a job a worker is handed next. Internal to mpdemo (JobState holds one).
#pragma once

#include <algorithm>
#include <cstddef>
#include <deque>
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
/// regions, a worker touches the same pages every time it maps the same arrays; a process pool also
/// remembers who ran each chunk of the last map over the same arrays and starts the next from there,
/// so that a chunk once stolen is not touched by a second worker later.
class ChunkQueue {
 public:
  enum class Order { in_order, by_worker_region };

  ChunkQueue(std::size_t chunks, std::size_t workers, Order order) : left_(chunks) {
    const std::size_t runs = order == Order::in_order || workers == 0 ? 1 : workers;
    queues_.resize(runs);
    for (std::size_t c = 0; c < chunks; ++c) queues_[c * runs / chunks].push_back(c);  // contiguous runs
  }
  /// By region, worker w's region being the chunks c with owners[c] == w (in increasing order): the
  /// owners of the last map over the same arrays, so that a chunk one worker stole stays with it.
  ChunkQueue(const std::vector<std::size_t>& owners, std::size_t workers) : left_(owners.size()) {
    queues_.resize(std::max<std::size_t>(workers, 1));
    for (std::size_t c = 0; c < owners.size(); ++c) queues_[owners[c] % queues_.size()].push_back(c);
  }

  bool empty() const noexcept { return left_ == 0; }
  /// How many regions the chunks are split into: one per member of the team (one in all, in order).
  std::size_t regions() const noexcept { return queues_.size(); }
  /// The region peek(worker) would take from: `worker`'s own, or the one it would steal from. Not empty().
  std::size_t source(std::size_t worker) const noexcept { return choose(worker).queue; }
  std::size_t left() const noexcept { return left_; }

  /// The chunk `worker` would be handed next. Not empty().
  std::size_t peek(std::size_t worker) const noexcept {
    const Pick pick = choose(worker);
    const std::deque<std::size_t>& queue = queues_[pick.queue];
    return pick.from_front ? queue.front() : queue.back();
  }
  /// Takes the chunk peek(worker) returned; returns it.
  std::size_t take(std::size_t worker) noexcept {
    const Pick pick = choose(worker);
    std::deque<std::size_t>& queue = queues_[pick.queue];
    std::size_t chunk = 0;
    if (pick.from_front) {
      chunk = queue.front();
      queue.pop_front();
    } else {
      chunk = queue.back();
      queue.pop_back();
    }
    --left_;
    return chunk;
  }
  /// Hands out nothing more; returns the chunks that were still to be handed out.
  std::vector<std::size_t> drain() {
    std::vector<std::size_t> rest;
    for (std::deque<std::size_t>& queue : queues_) {
      rest.insert(rest.end(), queue.begin(), queue.end());
      queue.clear();
    }
    left_ = 0;
    return rest;
  }

 private:
  struct Pick {
    std::size_t queue;
    bool from_front;
  };

  Pick choose(std::size_t worker) const noexcept {
    const std::size_t own = worker % queues_.size();
    if (!queues_[own].empty()) return {own, true};
    std::size_t fullest = 0;
    for (std::size_t q = 1; q < queues_.size(); ++q) {
      if (queues_[q].size() > queues_[fullest].size()) fullest = q;
    }
    return {fullest, false};  // the back of another worker's region: its owner keeps working from the front
  }

  std::vector<std::deque<std::size_t>> queues_;  ///< one per worker (one in all, in order)
  std::size_t left_;
};

}  // namespace mpdemo::detail
