#include "mpdemo/mpi/mpi_session.hpp"

#include "mpdemo/sys/errors.hpp"
#include "mpdemo/sys/timing.hpp"

#include <fmt/format.h>

#include <exception>
#include <stdexcept>

namespace mpdemo {

void check_mpi(int code, std::string_view doing) {
  if (code == MPI_SUCCESS) return;
  char words[MPI_MAX_ERROR_STRING] = {};
  int length = 0;
  MPI_Error_string(code, words, &length);
  throw Error(fmt::format("MPI failed while {}: {}", doing, std::string_view(words, static_cast<std::size_t>(length))));
}

MpiSession::MpiSession() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized != 0) throw std::logic_error("MpiSession: MPI was already started in this process");
  const Stopwatch stopwatch;
  int provided = 0;
  if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
    throw Error("MPI_Init_thread failed: is this program started by mpirun, and is Open MPI installed whole?");
  }
  init_seconds_ = stopwatch.seconds();
  if (provided < MPI_THREAD_FUNNELED) {
    // Threads and forked workers run beside MPI in rank 0; an MPI that cannot promise that is not one to run on.
    MPI_Finalize();
    throw Error("this MPI library offers no MPI_THREAD_FUNNELED: mpdemo's rank 0 runs threads beside MPI calls");
  }
  // From here on a failed call returns its code to check_mpi instead of aborting the job.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
}

MpiSession::~MpiSession() {
  if (std::uncaught_exceptions() > 0) return;
  finalize();
}

void MpiSession::finalize() noexcept {
  if (finalized_) return;
  finalized_ = true;
  MPI_Finalize();
}

}  // namespace mpdemo
