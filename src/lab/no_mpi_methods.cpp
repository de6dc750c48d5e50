// The MPI methods of a build without Open MPI: a clear refusal, and how to get them.
#include "mpdemo/lab/mpi_methods.hpp"

#include "mpdemo/sys/errors.hpp"

namespace mpdemo {

bool built_with_mpi() noexcept { return false; }

std::unique_ptr<RankedMethods> start_mpi_methods(const MpiSettings&) {
  throw BadArgument(
      "this mpdemo was built without MPI: install Open MPI (bash cmake/install-deps.sh, or apt install openmpi-bin "
      "libopenmpi-dev), then configure and build again (cmake --workflow --preset release)");
}

}  // namespace mpdemo
