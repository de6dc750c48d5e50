// IdleSpin: how long an idle worker of a pool (a forked process or a thread) spins for its next task
// before it sleeps. Internal to mpdemo: a worker's wait for its next task uses it (src/pool/
// pool_worker.cpp, src/pool/thread_pool.cpp), beside the spin-then-sleep waits of src/pool/spin_wait.hpp.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>

namespace mpdemo::detail {

/// How long an idle worker spins for its next task before it sleeps (PoolOptions::spin, spin_limit).
/// At first `base`. After a wait that ended asleep sooner than `limit` after it began (the next task
/// came a little after the spin gave up), long enough to have spun through that wait, and a quarter
/// more, at most `limit`. So a program that maps again and again with work of its own between maps, a
/// gap longer than `base`, finds its workers awake from the second gap on instead of paying a wake-up
/// per map, as OpenMP's spinning threads are found. A sleep of `limit` or more is a pause of the
/// program's: the first keeps the spin learned, so a program that maps in bursts at one pace finds its
/// workers awake from the second map of each burst on; a second in a row (with no wait caught spinning
/// between them: the program now maps slowly) sets it back to `base`. A pool left idle spins once,
/// `limit` at most, and sleeps. A wait that ends while still spinning keeps the spin as it is.
/// Arithmetic only: the waiter times its own waits (monotonic_ns, safe in a forked child).
class IdleSpin {
 public:
  IdleSpin(std::chrono::microseconds base, std::chrono::microseconds limit) noexcept
      : base_(base), limit_(std::max(base, limit)), current_(base) {}

  std::chrono::microseconds current() const noexcept { return current_; }

  /// Records a wait of `waited_ns` that outlasted its spin: its waiter slept, or was about to.
  void slept(std::int64_t waited_ns) noexcept {
    if (base_.count() == 0) return;            // spin 0: always sleep at once, as asked
    if (waited_ns / 1000 >= limit_.count()) {  // in microseconds: a limit near the type's maximum fits
      if (paused_) current_ = base_;
      paused_ = true;
      return;
    }
    paused_ = false;
    const std::chrono::microseconds through{(waited_ns + waited_ns / 4) / 1000 + 1};
    current_ = std::clamp(through, base_, limit_);
  }

  /// Records a wait that ended while its waiter still spun: the program keeps the pace learned.
  void caught_spinning() noexcept { paused_ = false; }

 private:
  std::chrono::microseconds base_;
  std::chrono::microseconds limit_;
  std::chrono::microseconds current_;
  bool paused_ = false;  ///< the last wait not caught spinning was a pause (`limit` or more)
};

}  // namespace mpdemo::detail
