// Verdicts: which method was fastest, by what factor, and why, read off the measured phases.
#pragma once

#include "mpdemo/lab/experiment.hpp"
#include "mpdemo/sys/timing.hpp"

#include <span>
#include <string>

namespace mpdemo::report {

struct MethodTiming {
  std::string name;  ///< as printed: "array_squared_mp"
  PhaseTimes phases;
  bool sequential = false;  ///< the baseline every factor is against
  std::size_t workers = 1;
  bool warm = false;             ///< workers started beforehand, output buffer reused: only compute is paid
  bool threads = false;          ///< threads, not processes
  bool mpi = false;              ///< MPI ranks that mpirun started, not a pool of ours
  bool caller_computes = false;  ///< the pool's caller computed a share beside its `workers`

  /// The timing of `method`, printed as `name`, run with `workers` (the loop always has one).
  static MethodTiming of(Method method, std::string name, const PhaseTimes& phases, std::size_t workers);
};

/// One paragraph: the fastest method and its factor over each other one, then why, from the phases
/// (overhead = everything but compute; compute speedup = the loop's compute / the method's).
std::string explain_fastest(std::span<const MethodTiming> methods);

/// Warm methods against the loop's compute alone (both write into buffers that already exist), warm
/// processes against warm threads, and each MPI path against the warm fork pool: the like-for-like
/// comparisons of the parallel machinery.
std::string explain_warm(std::span<const MethodTiming> methods);

}  // namespace mpdemo::report
