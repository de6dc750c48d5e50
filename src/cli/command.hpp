// How a subcommand plugs into the CLI: it declares its options on a CLI11 subcommand, and returns
// what to run once parsing succeeded. main() owns parsing, errors and exit statuses.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
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

}  // namespace mpdemo::cli
