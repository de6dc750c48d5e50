// --trace and --timeline, the same on every subcommand that runs pools or tasks (run, the lesson,
// cores, sweep): what they accept, when recording starts, and where the results go.
#pragma once

#include "options.hpp"

#include "mpdemo/sys/trace.hpp"

#include <CLI/CLI.hpp>
#include <memory>
#include <ostream>
#include <string>

namespace mpdemo::cli {

class TraceOutputs {
 public:
  /// Adds --trace FILE.json and --timeline FILE.png|FILE.svg|- to `app`.
  void add_options(CLI::App& app);
  /// Checks the paths (UsageError: exit 2) before anything runs, and starts recording if either was
  /// asked for. Returns the trace to hand to the measurement, or null when neither was.
  Trace* start(Format format);
  /// Writes the trace, draws the timeline (after the results, on `out` for "-"), and says on stderr
  /// what recording cost. Nothing when neither was asked for.
  void finish(std::ostream& out, const std::string& title);

 private:
  std::string trace_path_;
  std::string timeline_path_;
  std::unique_ptr<Trace> trace_;
};

}  // namespace mpdemo::cli
