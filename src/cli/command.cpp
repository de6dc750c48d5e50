#include "command.hpp"

#include <cstdlib>
#include <string>

namespace mpdemo::cli {

namespace {
std::optional<std::size_t>& follower() {
  static std::optional<std::size_t> rank;
  return rank;
}

// The rank mpirun gave this process (Open MPI's variable, or the PMI one MPICH and others set), for
// failures before MPI itself can say: a refused option under `mpirun -np K` is met by every rank.
std::optional<std::size_t> rank_from_launcher() {
  for (const char* name : {"OMPI_COMM_WORLD_RANK", "PMI_RANK"}) {
    const char* value = std::getenv(name);
    if (value == nullptr) continue;
    char* end = nullptr;
    const unsigned long rank = std::strtoul(value, &end, 10);
    if (end != value && *end == '\0') return rank;
  }
  return std::nullopt;
}
}  // namespace

void speak_as_follower(std::size_t rank) noexcept { follower() = rank; }

std::optional<std::size_t> follower_rank() noexcept {
  if (follower()) return follower();
  const std::optional<std::size_t> launched = rank_from_launcher();
  return launched && *launched != 0 ? launched : std::nullopt;
}

}  // namespace mpdemo::cli
