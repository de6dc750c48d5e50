// mpdemo: processes vs threads vs a loop, measured. Parses the command line, runs one subcommand,
// and turns every failure into a one-line message and an exit status:
//   0 success, 1 a failure while running, 2 bad input, 128 + N killed by signal N (130 for Ctrl-C).
#include "command.hpp"
#include "costs_command.hpp"
#include "lesson_command.hpp"
#include "options.hpp"
#include "run_command.hpp"
#include "sweep_command.hpp"
#include "topology_command.hpp"

#include "mpdemo/interrupt.hpp"

#include <fmt/format.h>
#include <iostream>
#include <vector>

#ifndef MPDEMO_VERSION
#define MPDEMO_VERSION "unknown"
#endif

namespace {
int report_interrupt(const mpdemo::Interrupted& interrupted) {
  std::cout.flush();
  std::cerr << fmt::format("mpdemo: {}: workers stopped and reaped, shared memory released\n", interrupted.what());
  return interrupted.exit_status();
}
}  // namespace

int main(int argc, char** argv) {
  using namespace mpdemo::cli;
  CLI::App app{"mpdemo: what it costs and what it gains to split work across processes instead of one loop or "
               "threads.\nWith no subcommand it runs the lesson: square 10 and 10,000,000 random numbers with a "
               "loop, a process pool and threads, and explain who wins.",
               "mpdemo"};
  app.set_version_flag("--version,-V", "mpdemo " MPDEMO_VERSION);
  app.require_subcommand(0, 1);

  raise_open_file_limit();
  const Command lesson = add_lesson_command(app);
  const std::vector<Command> subcommands{add_run_command(app), add_costs_command(app), add_sweep_command(app),
                                        add_topology_command(app)};

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    if (error.get_exit_code() == 0) return app.exit(error);  // --help, --version
    std::cerr << fmt::format("mpdemo: error: {}\nRun 'mpdemo --help' for usage.\n", error.what());
    return 2;
  }

  const mpdemo::InterruptGuard interrupts;
  try {
    const Command* chosen = &lesson;
    for (const Command& command : subcommands) {
      if (command.app->parsed()) chosen = &command;
    }
    const int status = chosen->run(std::cout);
    mpdemo::throw_if_interrupted();  // a signal during the last moments still ends as an interrupt
    return status;
  } catch (const UsageError& error) {
    std::cerr << fmt::format("mpdemo: error: {}\n", error.what());
    return 2;
  } catch (const mpdemo::Interrupted& interrupted) {
    return report_interrupt(interrupted);
  } catch (const std::exception& error) {
    // A child killed by the same Ctrl-C can surface as another error first: the signal is the cause.
    if (const int signal_number = mpdemo::pending_interrupt(); signal_number != 0) {
      return report_interrupt(mpdemo::Interrupted(signal_number));
    }
    std::cerr << fmt::format("mpdemo: error: {}\n", error.what());
    return 1;
  }
}
