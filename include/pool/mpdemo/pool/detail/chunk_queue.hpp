// ChunkQueue: which chunk of a job a worker is handed next. Internal to mpdemo (JobState holds one).
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <vector>

namespace mpdemo::detail {

/// What a process pool knows of one pair of arrays it maps again and again: which chunks each worker
/// has run over them since its process started, and what a chunk cost, per element, when its worker
/// had run it before and when not. (A caller computing its share is not recorded: the arrays were
/// made in its process.)
///
/// Why: a process's first touch of a shared page is a page fault in its own page tables (threads
/// share the master's). On the project's VMs that costs 3-20 us per 4 KiB page (the arena's page
/// size unless the kernel offers shared huge pages, see sys/huge_pages.hpp), about 50 times what
/// squaring the page's numbers costs: a chunk of 1.25x10^7 doubles took 100-330 ms for a process that
/// had never run it, 4.5 ms for one that had. A steal onto such pages can cost far more than waiting
/// for the chunk's owner, and whether it does is measured here, not assumed: for a function that
/// computes for long, the two costs are alike and stealing pays as before.
class ChunkLocality {
 public:
  /// Whether `member`'s process has run `chunk` over these arrays (its pages are in its page tables).
  bool ran_before(std::size_t member, std::size_t chunk) const noexcept {
    return member < ran_.size() && chunk < ran_[member].size() && ran_[member][chunk];
  }
  /// `member` ran `chunk` of `elements` elements in `ns`: recorded as a chunk new to it or not.
  void record(std::size_t member, std::size_t chunk, std::int64_t ns, std::size_t elements) {
    if (elements == 0 || ns < 0) return;
    (ran_before(member, chunk) ? ran_before_ : new_to_runner_)
        .add(static_cast<double>(ns) / static_cast<double>(elements));
    new_over_known_.reset();
    if (member >= ran_.size()) ran_.resize(member + 1);
    if (chunk >= ran_[member].size()) ran_[member].resize(chunk + 1, false);
    ran_[member][chunk] = true;
  }
  /// `member`'s process was replaced: its page tables are new, whatever the old one ran.
  void forget(std::size_t member) noexcept {
    if (member < ran_.size()) ran_[member].assign(ran_[member].size(), false);
  }
  /// What a chunk costs a member that never ran it over what it costs one that did (medians of the
  /// last kSamples of each); 0 while either is unmeasured. Worked out when first asked after a
  /// record, then kept: a caller computing its share asks at every look for work to hand out, and two
  /// medians a look were a third of its tiny map's time (perf; BM_WarmProcessPoolTinyMapCallerComputes
  /// 1.29-1.36 us before, 1.01-1.06 us after); worked out at every record instead, they cost a map of
  /// two workers, which never asks, 0.3 us. Asked and recorded under the pool's lock alone.
  double new_over_known_cost() const noexcept {
    if (!new_over_known_) {
      const double known = ran_before_.median();
      const double fresh = new_to_runner_.median();
      new_over_known_ = known > 0 && fresh > 0 ? fresh / known : 0.0;
    }
    return *new_over_known_;
  }
  /// The rule for a chunk new to whoever would take it over: it pays while the two costs are
  /// unmeasured (`new_over_known` 0), or where its owner has at least as many chunks' work left before
  /// it would end that chunk as the chunk costs the newcomer in chunks run before. A steal from a run
  /// (ChunkQueue) and a held task moved to an idle worker (JobState::worth_moving) both ask this.
  static bool new_chunk_pays(double new_over_known, double owner_chunks_left) noexcept {
    return new_over_known == 0.0 || owner_chunks_left >= new_over_known;
  }

 private:
  static constexpr std::size_t kSamples = 16;
  /// The last kSamples costs per element of one kind, and their median.
  class Samples {
   public:
    void add(double value) {
      if (values_.size() == kSamples) values_.erase(values_.begin());
      values_.push_back(value);
    }
    double median() const noexcept {
      if (values_.empty()) return 0.0;
      // On the stack: the dispatcher asks while it claims a task back, where nothing may throw.
      std::array<double, kSamples> sorted{};
      std::copy(values_.begin(), values_.end(), sorted.begin());
      const auto end = sorted.begin() + static_cast<std::ptrdiff_t>(values_.size());
      const auto middle = sorted.begin() + static_cast<std::ptrdiff_t>(values_.size() / 2);
      std::nth_element(sorted.begin(), middle, end);
      return *middle;
    }

   private:
    std::vector<double> values_;
  };

  std::vector<std::vector<bool>> ran_;  ///< [member][chunk]
  Samples ran_before_;
  Samples new_to_runner_;
  mutable std::optional<double> new_over_known_;  ///< new_over_known_cost() since the last record(), once asked
};

/// The chunks of one job not yet handed out, and which of them a given worker gets next.
///
/// - in_order: one queue, first come first served, as Python's Pool hands out tasks. For imap, whose
///   results are wanted in order, as they end.
/// - by_worker_region: the chunks are split into one contiguous run per worker, as OpenMP's static
///   schedule splits a loop, the same runs every map. A worker takes its own run from the front; once
///   that is empty it steals the last chunk of another run, so a slow worker still gets help. For
///   jobs whose whole result is wanted at once (map, map_into), which lose nothing by it.
///
/// Which steal, given a ChunkLocality (process pools, arrays mapped before): a run whose last chunk
/// the thief ran before is robbed first (its pages are already the thief's), the fullest such; else
/// the last chunk of the fullest run whose owner has not begun it yet (it may be late, or dead) or
/// still has at least as many chunks left as a chunk new to the thief costs over a chunk run before:
/// the owner would otherwise reach that chunk sooner than the thief ends it. Otherwise the thief gets
/// nothing (has_for() is false) and the owners finish. Without a ChunkLocality (threads, a caller
/// computing its share in the process that made the arrays) or while the costs are not both
/// measured, every steal is allowed.
class ChunkQueue {
 public:
  enum class Order { in_order, by_worker_region };

  ChunkQueue(std::size_t chunks, std::size_t workers, Order order) : left_(chunks) {
    const std::size_t runs = order == Order::in_order || workers == 0 ? 1 : workers;
    queues_.resize(runs);
    begun_.assign(runs, false);
    for (std::size_t c = 0; c < chunks; ++c) queues_[c * runs / chunks].push_back(c);  // contiguous runs
  }

  bool empty() const noexcept { return left_ == 0; }
  std::size_t left() const noexcept { return left_; }
  /// Whether `worker` may be handed a chunk now (see the steal rule above).
  bool has_for(std::size_t worker, const ChunkLocality* locality = nullptr) const {
    return choose(worker, locality).has_value();
  }
  /// The region peek(worker) would take from: `worker`'s own, or the one it would steal from. has_for().
  std::size_t source(std::size_t worker, const ChunkLocality* locality = nullptr) const {
    return choose(worker, locality)->queue;
  }
  /// The chunk `worker` would be handed next. has_for().
  std::size_t peek(std::size_t worker, const ChunkLocality* locality = nullptr) const {
    const Pick pick = *choose(worker, locality);
    const std::deque<std::size_t>& queue = queues_[pick.queue];
    return pick.from_front ? queue.front() : queue.back();
  }
  /// Takes the chunk peek(worker, locality) returned; returns it. has_for().
  std::size_t take(std::size_t worker, const ChunkLocality* locality = nullptr) {
    const Pick pick = *choose(worker, locality);
    std::deque<std::size_t>& queue = queues_[pick.queue];
    std::size_t chunk = 0;
    if (pick.from_front) {
      chunk = queue.front();
      queue.pop_front();
      begun_[pick.queue] = true;
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

  std::optional<Pick> choose(std::size_t worker, const ChunkLocality* locality) const {
    if (left_ == 0) return std::nullopt;
    const std::size_t own = worker % queues_.size();
    if (!queues_[own].empty()) return Pick{own, true};
    const double new_over_known = locality != nullptr ? locality->new_over_known_cost() : 0.0;
    std::optional<std::size_t> known;  // the fullest run whose last chunk the thief ran before
    std::optional<std::size_t> pays;   // the fullest run a steal of a chunk new to the thief pays for
    for (std::size_t q = 0; q < queues_.size(); ++q) {
      const std::size_t left = queues_[q].size();
      if (left == 0) continue;
      if (locality != nullptr && locality->ran_before(worker, queues_[q].back())) {
        if (!known || left > queues_[*known].size()) known = q;
      } else if (!begun_[q] || ChunkLocality::new_chunk_pays(new_over_known, static_cast<double>(left))) {
        if (!pays || left > queues_[*pays].size()) pays = q;
      }
    }
    // The back of another worker's region: its owner keeps working from the front.
    if (known) return Pick{*known, false};
    if (pays) return Pick{*pays, false};
    return std::nullopt;
  }

  std::vector<std::deque<std::size_t>> queues_;  ///< one per worker (one in all, in order)
  std::vector<bool> begun_;                      ///< per region: its owner has taken from it
  std::size_t left_;
};

}  // namespace mpdemo::detail
