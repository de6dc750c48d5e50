#include "mpdemo/pool/pool_options.hpp"

#include "mpdemo/sys/topology.hpp"

#include <algorithm>

namespace mpdemo {

std::size_t worker_count(std::size_t workers, bool caller_computes) {
  if (workers != 0) return workers;
  const std::size_t cores = system_topology().default_workers();
  return caller_computes ? std::max<std::size_t>(cores - 1, 1) : cores;
}

PoolOptions::SpinStyle spin_style_for(PoolOptions::SpinStyle style, std::size_t workers, std::size_t cpus) noexcept {
  using Style = PoolOptions::SpinStyle;
  if (style != Style::automatic) return style;
  return workers + 1 <= cpus ? Style::pause : Style::yield;
}

}  // namespace mpdemo
