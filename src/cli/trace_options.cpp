#include "trace_options.hpp"

#include "command.hpp"
#include "mpdemo/report/chart.hpp"
#include "mpdemo/report/format.hpp"
#include "mpdemo/report/trace.hpp"

#include <fmt/format.h>
#include <iostream>

namespace mpdemo::cli {

void TraceOutputs::add_options(CLI::App& app) {
  app.add_option("--trace", trace_path_,
                 "record a timeline of every worker (start, each chunk with its CPU, stop) into FILE.json, in the "
                 "trace-event format Perfetto (ui.perfetto.dev) and chrome://tracing open")
      ->type_name("FILE.json");
  app.add_option("--timeline", timeline_path_,
                 "draw the same timeline as a Gantt chart with gnuplot into FILE.png or FILE.svg, or - for the "
                 "terminal")
      ->type_name("FILE");
}

Trace* TraceOutputs::start(Format format) {
  if (!trace_path_.empty()) check_output_path(trace_path_, "--trace", {".json"});
  if (trace_path_ == "-") {
    throw UsageError("--trace: write the trace to a .json file; the results already go to standard output");
  }
  if (!timeline_path_.empty()) check_plot_path(timeline_path_, "--timeline");
  if (timeline_path_ == "-" && format != Format::table) {
    throw UsageError(
        "--timeline - draws on the terminal, into the same output as --format json/csv; write the timeline to a "
        ".png or .svg file instead");
  }
  if (!timeline_path_.empty() && !report::gnuplot_available()) {
    std::cerr << fmt::format(
        "mpdemo: warning: gnuplot ('{}') is not installed: the results will print, but no timeline "
        "(sudo apt-get install gnuplot-nox)\n",
        report::gnuplot_program());
  }
  if (trace_path_.empty() && timeline_path_.empty()) return nullptr;
  trace_ = std::make_unique<Trace>();
  return trace_.get();
}

void TraceOutputs::finish(std::ostream& out, const std::string& title) {
  if (!trace_) return;
  out.flush();
  if (!trace_path_.empty()) {
    report::write_trace(*trace_, trace_path_, out);
    std::cerr << fmt::format("trace: {}; written to {} (open it at https://ui.perfetto.dev)\n",
                             report::recording_cost_sentence(*trace_), report::printable(trace_path_, 200));
  }
  if (!timeline_path_.empty()) {
    report::draw(report::timeline_of(*trace_, title), timeline_path_, out);
    if (timeline_path_ != "-") {
      std::cerr << fmt::format("timeline: written to {}\n", report::printable(timeline_path_, 200));
    }
    if (trace_path_.empty()) std::cerr << fmt::format("timeline: {}\n", report::recording_cost_sentence(*trace_));
  }
}

}  // namespace mpdemo::cli
