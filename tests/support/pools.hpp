// Pools for tests that must hold for every way a pool can be configured.
#pragma once

#include "mpdemo/pool/process_pool.hpp"

#include <cstddef>
#include <utility>

namespace mpdemo::testing {

/// A ProcessPool whose control messages go through its pipes (ProcessPoolOptions::Control::pipes)
/// instead of its workers' mailboxes: the same tests run over both protocols.
class ProcessPoolOverPipes : public ProcessPool {
 public:
  explicit ProcessPoolOverPipes(std::size_t workers = 0) : ProcessPool(over_pipes(workers)) {}
  explicit ProcessPoolOverPipes(ProcessPoolOptions options) : ProcessPool(over_pipes(std::move(options))) {}

  static ProcessPoolOptions over_pipes(std::size_t workers) {
    ProcessPoolOptions options;
    options.workers = workers;
    return over_pipes(std::move(options));
  }
  static ProcessPoolOptions over_pipes(ProcessPoolOptions options) {
    options.control = ProcessPoolOptions::Control::pipes;
    return options;
  }
};

}  // namespace mpdemo::testing
