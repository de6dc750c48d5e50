#include "mpdemo/pool/pool_options.hpp"

#include "mpdemo/sys/topology.hpp"

#include <algorithm>

namespace mpdemo {

std::size_t worker_count(std::size_t workers, bool caller_computes) {
  if (workers != 0) return workers;
  const std::size_t cores = system_topology().default_workers();
  return caller_computes ? std::max<std::size_t>(cores - 1, 1) : cores;
}

PoolOptions::SpinStyle spin_style_for(PoolOptions::SpinStyle style, std::size_t workers, std::size_t cpus,
                                      std::size_t pin_cores) noexcept {
  using Style = PoolOptions::SpinStyle;
  if (style != Style::automatic) return style;
  // Pinned round-robin, one worker per core: past that, two of them share a core.
  const bool pins_shared = pin_cores != 0 && workers > pin_cores;
  return workers + 1 <= cpus && !pins_shared ? Style::pause : Style::yield;
}

PoolOptions::SpinStyle spin_style_for(const PoolOptions& options, std::size_t workers) {
  const Topology& topology = system_topology();
  return spin_style_for(options.spin_style, workers, topology.allowed_cpus.size(),
                        options.pin_workers ? topology.worker_cpus.size() : 0);
}

}  // namespace mpdemo
