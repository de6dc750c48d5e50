// `mpdemo report`: one self-contained HTML page to hand out -- the machine, the lesson's timings, each
// claim about cores next to its measurement and chart, the timelines, the costs, and a sweep. No
// scripts, fonts or images from anywhere: charts are inline SVG, styles inline; readable offline,
// printable, and laid out for phones as well as laptops.
#pragma once

#include "mpdemo/lab/cores.hpp"
#include "mpdemo/lab/costs.hpp"
#include "mpdemo/lab/sweep.hpp"
#include "mpdemo/lab/trials.hpp"
#include "mpdemo/sys/topology.hpp"
#include "mpdemo/sys/trace.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace mpdemo::report {

/// Everything the page shows, measured beforehand.
struct Handout {
  std::string command;  ///< how it was made, to reproduce it
  std::string made_at;  ///< when, as text
  MachineFacts machine;
  Topology topology;
  std::vector<TrialResults> lesson;     ///< the lesson's sizes, small first
  const Trace* lesson_trace = nullptr;  ///< the largest size's timeline
  CoresResult cores;
  std::vector<CostMeasurement> costs;
  SweepResult sweep;
};

/// Text made safe inside HTML elements and attribute values.
std::string html_escaped(std::string_view text);

/// The page. Charts are drawn with gnuplot; without it, each chart's place says how to install it and
/// the rest of the page is whole.
std::string handout_html(const Handout& handout);

/// The ids of the page's sections, in order (what a test looks for in the rendered page).
const std::vector<std::string>& handout_sections();

}  // namespace mpdemo::report
