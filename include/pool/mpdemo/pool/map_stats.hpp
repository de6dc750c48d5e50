// MapStats: what one map cost, returned by the call that made it (ProcessPool's and ThreadPool's alike),
// so a measurement never depends on which call happened to come last.
#pragma once

#include "mpdemo/sys/timing.hpp"

#include <cstddef>

namespace mpdemo {

/// What a map moved, in bytes: the price of not sharing. All zeros for threads, which share everything.
struct MapTraffic {
  std::size_t copied_in_bytes = 0;   ///< input copied into shared memory (0: it was made there)
  std::size_t copied_out_bytes = 0;  ///< results copied out of shared memory (0: written in place)
  std::size_t pipe_bytes = 0;        ///< everything written to or read from the pipes, messages included
};

/// Where one map's time went and what it moved. Only move_in, compute and collect are a map's own:
/// start_workers and stop_workers belong to the pool, and stay 0 here.
struct MapStats {
  PhaseTimes phases{};
  MapTraffic traffic{};
};

}  // namespace mpdemo
