// Charts through gnuplot: named series over a log-scaled x axis, to a PNG or SVG file or, with "-",
// to the terminal as text. The one place mpdemo runs gnuplot.
#pragma once

#include "mpdemo/sys/errors.hpp"

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
  double reference_y = 1.0;  ///< a horizontal line (speedup 1: as fast as the loop)
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

}  // namespace mpdemo::report
