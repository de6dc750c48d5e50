#include "mpdemo/pool/pool_options.hpp"

#include "mpdemo/sys/topology.hpp"

#include <algorithm>

namespace mpdemo {

std::size_t worker_count(const PoolOptions& options) {
  if (options.workers != 0) return options.workers;
  const std::size_t cores = system_topology().default_workers();
  return options.caller_computes ? std::max<std::size_t>(cores - 1, 1) : cores;
}

}  // namespace mpdemo
