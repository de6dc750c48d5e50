// How a subcommand plugs into the CLI: it declares its options on a CLI11 subcommand, and returns
// what to run once parsing succeeded. main() owns parsing, errors and exit statuses.
#pragma once

#include <CLI/CLI.hpp>
#include <cstddef>
#include <functional>
#include <optional>
#include <ostream>
#include <stdexcept>

namespace mpdemo::cli {

struct Command {
  CLI::App* app;                          ///< the CLI11 subcommand (the root app for the lesson)
  std::function<int(std::ostream&)> run;  ///< results to the stream; diagnostics to std::cerr
};

/// Bad input found after parsing (a size that does not fit in memory, a path that cannot be
/// written): main() prints it and exits with status 2, like a parse error.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Under mpirun every rank runs mpdemo, and the root (rank 0) speaks for the job: a rank that calls
/// this prints no results, main() keeps it quiet about bad input (which every rank meets alike) and
/// names it in any other error.
void speak_as_follower(std::size_t rank) noexcept;
/// The rank that called speak_as_follower(), or else a rank other than 0 that mpirun's environment
/// names (before MPI starts, every rank meets a bad option alike); nothing for the root.
std::optional<std::size_t> follower_rank() noexcept;

}  // namespace mpdemo::cli
