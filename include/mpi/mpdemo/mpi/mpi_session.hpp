// MpiSession: MPI's lifetime as an object. MPI_Init when it is made, MPI_Finalize when it goes, and
// errors from MPI calls as exceptions that say what was being done.
//
// Every rank of an MPI job is a separate program that mpirun started, so there is no fork here: the
// session joins the job mpirun launched. Without mpirun, the program runs as a job of one rank.
#pragma once

#include <mpi.h>

#include <string_view>

namespace mpdemo {

class MpiSession {
 public:
  /// Joins the job (MPI_Init_thread, asking for MPI_THREAD_FUNNELED: only the main thread calls MPI,
  /// while a ThreadPool or a forked ProcessPool may work beside it). At most one per process, ever:
  /// MPI cannot be started twice.
  MpiSession();
  /// MPI_Finalize, which every rank must reach. Skipped while an exception is in flight: a rank that
  /// failed cannot know whether the others will ever finalize, and waiting for them could hang.
  /// mpirun then sees the rank end without finalizing and stops the whole job, which is bounded.
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;

  /// MPI_Finalize now, for a failure every rank found together (the same bad option, checked on
  /// facts all ranks share), after which no rank calls MPI again. Idempotent.
  void finalize() noexcept;

  int rank() const noexcept { return rank_; }
  int size() const noexcept { return size_; }
  /// The time MPI_Init took, in seconds: a rank's share of starting the job (mpirun's own start is
  /// before this program runs, and only a stopwatch around mpirun sees it).
  double init_seconds() const noexcept { return init_seconds_; }

 private:
  int rank_ = 0;
  int size_ = 1;
  double init_seconds_ = 0;
  bool finalized_ = false;
};

/// Throws mpdemo::Error naming `doing` and MPI's own words unless `code` is MPI_SUCCESS. The pools'
/// communicators return errors (MPI_ERRORS_RETURN) instead of aborting, so they arrive here.
void check_mpi(int code, std::string_view doing);

}  // namespace mpdemo
