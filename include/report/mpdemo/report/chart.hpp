// Charts through gnuplot: named series over a log-scaled x axis, and timelines (Gantt charts), to a
// PNG or SVG file, to the terminal as text with "-", or as SVG text for a page. The one place mpdemo
// runs gnuplot.
#pragma once

#include "mpdemo/sys/errors.hpp"

#include <cstddef>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace mpdemo::report {

struct Series {
  std::string title;
  std::vector<double> x;
  std::vector<double> y;
};

struct Chart {
  std::string title;
  std::string x_label;
  std::string y_label;
  std::vector<Series> series;
  std::optional<double> marker_x;  ///< a vertical line (the crossover), with its label
  std::string marker_label;
  std::optional<double> reference_y = 1.0;  ///< a horizontal line (speedup 1: as fast as the loop)
  std::string reference_title = "as fast as the loop";
  bool log_scale = true;  ///< both axes logarithmic (sizes, speedups); false: linear (task counts, seconds)
};

/// One span of a timeline, in seconds from the timeline's origin, on row `row`.
struct TimelineBar {
  std::size_t row = 0;
  double begin = 0;
  double end = 0;
  std::string category;  ///< bars of one category share a colour and an entry in the key
};

/// A Gantt chart: what ran where, and when.
struct Timeline {
  std::string title;
  std::string x_label = "seconds";
  std::vector<std::string> rows;  ///< from the bottom up
  std::vector<TimelineBar> bars;
};

/// A program a renderer needs is not installed: the message says how to install it.
class ToolMissing : public Error {
 public:
  using Error::Error;
};

/// The gnuplot to run: $MPDEMO_GNUPLOT if set (tests point it at a missing program), else "gnuplot".
std::string gnuplot_program();

/// Whether gnuplot_program() names an executable (a path, or a name found on $PATH).
bool gnuplot_available();

/// Draws `chart` into `path` (.png or .svg; the caller has checked it), or onto `terminal` as text
/// for "-". gnuplot writes the picture to a pipe and mpdemo writes the file itself, so no user text is
/// ever part of gnuplot's script but as a quoted literal. Throws ToolMissing (with the command that
/// installs gnuplot) when it is missing, std::runtime_error if gnuplot fails (with its first error
/// line), std::system_error if the file cannot be written (a full disk), Interrupted on Ctrl-C
/// (gnuplot is killed).
void draw(const Chart& chart, const std::string& path, std::ostream& terminal);
/// The same for a timeline: a row per track, a box per span.
void draw(const Timeline& timeline, const std::string& path, std::ostream& terminal);

/// The chart as an SVG document, for pages that hold their pictures inline (mpdemo report).
std::string svg_of(const Chart& chart);
std::string svg_of(const Timeline& timeline);

}  // namespace mpdemo::report
