// The experiment's MPI methods (Method::mpi_scatter, mpi_shared_window, mpi_hybrid): the lesson's
// squares over the ranks mpirun started, through MpiPool, driven by the same trials as every other
// method. Built only with Open MPI (MPDEMO_WITH_MPI); without it, start_mpi_methods says how to get it.
#pragma once

#include "mpdemo/lab/trials.hpp"

#include <memory>
#include <vector>

namespace mpdemo {

struct MpiSettings {
  std::size_t size = 0;         ///< elements per map, the same on every rank (they parse one command line)
  std::vector<Method> methods;  ///< which MPI paths to set up (others in the list are ignored)
  int ranks_per_node = 0;       ///< 0: the real nodes; K: simulated nodes of K ranks (MpiPoolOptions)
  /// A job over several nodes leaves the shared-window path out (can_run says so) instead of
  /// refusing: for a list of every path, where the others still mean something.
  bool window_only_on_one_node = false;
};

/// Whether this mpdemo was built with the MPI backend.
bool built_with_mpi() noexcept;

/// Collective: joins the MPI job (MPI_Init; a program not started by mpirun is a job of one rank)
/// and sets up a pool per MPI path in settings.methods. What it returns owns MPI's lifetime: it
/// finalizes when destroyed. Throws BadArgument when mpdemo was built without MPI (saying how to get
/// it), and, on every rank alike, when a path cannot run on this job (shared-window across nodes).
std::unique_ptr<RankedMethods> start_mpi_methods(const MpiSettings& settings);

}  // namespace mpdemo
