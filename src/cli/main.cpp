// mpdemo: processes vs threads vs a loop, measured. Parses the command line, runs one subcommand,
// and turns every failure into a one-line message and an exit status:
//   0 success, 1 a failure while running (output that could not be written included), 2 bad input,
//   128 + N killed by signal N (130 for Ctrl-C; 141, quietly, for a reader that went away).
#include "command.hpp"
#include "cores_command.hpp"
#include "costs_command.hpp"
#include "lesson_command.hpp"
#include "options.hpp"
#include "report_command.hpp"
#include "run_command.hpp"
#include "sweep_command.hpp"
#include "topology_command.hpp"

#include "mpdemo/pool/chunk_kernel.hpp"
#include "mpdemo/report/chart.hpp"
#include "mpdemo/report/format.hpp"
#include "mpdemo/sys/errors.hpp"
#include "mpdemo/sys/interrupt.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <new>
#include <vector>

#ifndef MPDEMO_VERSION
#define MPDEMO_VERSION "unknown"
#endif

namespace {

void say(const std::string& message) {
  const std::optional<std::size_t> rank = mpdemo::cli::follower_rank();
  std::cerr << (rank ? fmt::format("mpdemo (MPI rank {}): ", *rank) : std::string("mpdemo: "))
            << mpdemo::report::printable_message(message) << '\n';
}

// Bad input, exit status 2. Under mpirun, what every rank meets alike (the command line, which every
// rank parses the same; a library's refusal, which MpiPool makes on every rank alike) is said once,
// by rank 0; what depends on the rank's own host (memory, limits, paths) by the rank that met it.
int bad_input(const std::string& message, bool every_rank_alike) {
  if (!every_rank_alike || !mpdemo::cli::follower_rank()) say(fmt::format("error: {}", message));
  return 2;
}

int report_interrupt(const mpdemo::Interrupted& interrupted) {
  try {
    std::cout.flush();
  } catch (const std::ios_base::failure&) {  // the interrupt is the news, not the lost output
  }
  say(fmt::format("{}: workers stopped and reaped, shared memory released", interrupted.what()));
  return interrupted.exit_status();
}

// A descriptor 0-2 that is closed would be handed to the next pipe or file this program opens, and
// its output would go there. Fill each with /dev/null, opened read-only for 1 and 2 so that writing
// to it still fails (EBADF) and is reported. Returns false if standard output was closed.
bool occupy_closed_standard_descriptors() noexcept {
  bool stdout_open = true;
  for (int fd = 0; fd <= 2; ++fd) {
    if (::fcntl(fd, F_GETFD) != -1) continue;
    if (fd == STDOUT_FILENO) stdout_open = false;
    const int null = ::open("/dev/null", O_RDONLY);
    if (null >= 0 && null != fd) {
      ::dup2(null, fd);
      ::close(null);
    }
  }
  return stdout_open;
}

// What was written must have reached standard output: a full disk or a closed descriptor is a
// failure, not a success with the results lost. A reader that went away (EPIPE) ends the program
// as SIGPIPE conventionally does, quietly.
int output_failure(int error) {
  // The output is lost either way: no second attempt (and no exception) when exit flushes again.
  std::cout.exceptions(std::ios_base::goodbit);
  std::clearerr(stdout);
  if (error == EPIPE) return 128 + SIGPIPE;
  say(fmt::format("error: cannot write the results to standard output: {}", std::strerror(error)));
  return 1;
}

int flush_standard_output(int status) {
  try {
    std::cout.flush();
  } catch (const std::ios_base::failure&) {
    return output_failure(errno != 0 ? errno : EIO);
  }
  errno = 0;
  if (std::fflush(stdout) != 0 || std::ferror(stdout) != 0) return output_failure(errno != 0 ? errno : EIO);
  return status;
}

// Parse errors in mpdemo's words: CLI11's "At Most 1 required but received 2" names no remedy.
std::string parse_error_message(const CLI::ParseError& error) {
  std::string message = error.what();
  const std::string repeated = "At Most 1 required but received ";
  if (const auto at = message.find(repeated); at != std::string::npos) {
    const std::string option = message.substr(0, message.find(':'));
    return fmt::format("{}: given {} times; give it once", option, message.substr(at + repeated.size()));
  }
  return message;
}

// Options of the lesson (the root command) given before a subcommand would be silently ignored:
// `mpdemo --seed 5 run` runs with run's own seed. Refuse, and say where the option goes.
void reject_root_options_before(const CLI::App& app, const CLI::App& subcommand) {
  for (const CLI::Option* option : app.get_options()) {
    if (option->count() == 0 || option->get_name() == "--help" || option->get_name() == "--version") continue;
    throw mpdemo::cli::UsageError(
        fmt::format("{} was given before '{}', where it belongs to the lesson (mpdemo with no subcommand); put "
                    "options after the subcommand: mpdemo {} {} ...",
                    option->get_name(), subcommand.get_name(), subcommand.get_name(), option->get_name()));
  }
}

}  // namespace

int main(int argc, char** argv) {
  using namespace mpdemo::cli;
  // First of all: a Ctrl-C from the very start (a slow start-up under a sanitizer, a test that signals
  // at 50 ms) is answered with the message and status 130, never the default, silent death.
  const mpdemo::InterruptGuard interrupts;
  const bool stdout_open = occupy_closed_standard_descriptors();
  CLI::App app{
      "mpdemo: what it costs and what it gains to split work across processes instead of one loop or "
      "threads.\nWith no subcommand it runs the lesson: square 10 and 10,000,000 random numbers with a "
      "loop, a process pool and threads, and explain who wins.",
      "mpdemo"};
  app.set_version_flag("--version,-V", "mpdemo " MPDEMO_VERSION);
  app.require_subcommand(0, 1);

  raise_open_file_limit();
  const Command lesson = add_lesson_command(app);
  const std::vector<Command> subcommands{add_run_command(app),   add_cores_command(app),  add_costs_command(app),
                                         add_sweep_command(app), add_report_command(app), add_topology_command(app)};

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    if (error.get_exit_code() == 0) return flush_standard_output(app.exit(error));  // --help, --version
    const int status = bad_input(parse_error_message(error), true);
    if (!mpdemo::cli::follower_rank()) std::cerr << "Run 'mpdemo --help' for usage.\n";
    return status;
  }
  if (!stdout_open) {
    say("error: standard output is closed: there is nowhere to write the results");
    return 1;
  }

  // A failed write throws at once, so a run does not go on computing what nobody can read.
  std::cout.exceptions(std::ios_base::badbit);
  try {
    const Command* chosen = &lesson;
    for (const Command& command : subcommands) {
      if (command.app->parsed()) chosen = &command;
    }
    if (chosen != &lesson) reject_root_options_before(app, *chosen->app);
    // Every command that maps reads the store rule: a bad MPDEMO_STREAM_ABOVE is refused here, before
    // any worker or MPI rank starts (on every rank alike), and hwloc's cache lookup is paid before
    // any timed map.
    (void)mpdemo::store_rule();
    const int status = chosen->run(std::cout);
    mpdemo::throw_if_interrupted();  // a signal during the last moments still ends as an interrupt
    return flush_standard_output(status);
  } catch (const UsageError& error) {
    return bad_input(error.what(), false);
  } catch (const mpdemo::BadArgument& error) {  // a value the library refused: input, not a failure
    return bad_input(error.what(), true);
  } catch (const mpdemo::report::ToolMissing& error) {  // asked for a plot, and gnuplot is not installed
    say(fmt::format("error: {}", error.what()));
    return 2;
  } catch (const mpdemo::Interrupted& interrupted) {
    return report_interrupt(interrupted);
  } catch (const std::ios_base::failure&) {
    return output_failure(errno != 0 ? errno : EIO);
  } catch (const std::bad_alloc&) {
    say(fmt::format("error: out of memory: {}", mpdemo::limit_hint(ENOMEM)));
    return 1;
  } catch (const std::exception& error) {
    // A child killed by the same Ctrl-C can surface as another error first: the signal is the cause.
    if (const int signal_number = mpdemo::pending_interrupt(); signal_number != 0) {
      return report_interrupt(mpdemo::Interrupted(signal_number));
    }
    say(fmt::format("error: {}", error.what()));
    return 1;
  }
}
