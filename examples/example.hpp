// What the examples share: their command line (mpdemo's own count readers, so 1e6 and 10^6 work),
// exit statuses (0 done and verified, 1 a failure or a mismatch, 2 bad input), Ctrl-C, and the
// lesson's box around each timed way of doing the job.
#pragma once

#include "command.hpp"  // src/cli: UsageError, bad input (exit status 2)
#include "mpdemo/report/format.hpp"
#include "mpdemo/sys/interrupt.hpp"
#include "mpdemo/sys/timing.hpp"
#include "options.hpp"  // src/cli: count_in and the option helpers every mpdemo program uses

#include <CLI/CLI.hpp>
#include <exception>
#include <functional>
#include <iostream>
#include <string>

namespace mpdemo::example {

/// Parses the command line into what `declare` set up, then runs `body` (its return value is the
/// exit status). Bad input: a one-line message and exit status 2; a failure: a message and 1.
inline int run(int argc, char** argv, CLI::App& app, const std::function<int()>& body) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    if (error.get_exit_code() == 0) return app.exit(error);  // --help
    std::cerr << app.get_name() << ": error: " << report::printable_message(error.what()) << '\n';
    return 2;
  }
  const InterruptGuard interrupts;
  try {
    return body();
  } catch (const cli::UsageError& error) {
    std::cerr << app.get_name() << ": error: " << report::printable_message(error.what()) << '\n';
    return 2;
  } catch (const Interrupted& interrupted) {
    std::cerr << app.get_name() << ": " << interrupted.what() << '\n';
    return interrupted.exit_status();
  } catch (const std::exception& error) {
    std::cerr << app.get_name() << ": error: " << report::printable_message(error.what()) << '\n';
    return 1;
  }
}

/// Runs `work` once, timed, and prints the lesson's box for it under `name`; returns the seconds.
template <class Work>
double boxed(const std::string& name, Work&& work) {
  const Stopwatch clock;
  work();
  const double seconds = clock.seconds();
  std::cout << report::benchmark_box(name, seconds);
  return seconds;
}

}  // namespace mpdemo::example
