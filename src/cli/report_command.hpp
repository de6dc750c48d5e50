#pragma once
#include "command.hpp"

namespace mpdemo::cli {
/// `mpdemo report -o lesson.html`: runs the lesson, cores, costs and a short sweep, and writes one
/// self-contained HTML page with each claim next to its measurement and chart, and the timelines.
/// Options: -o FILE.html, --large-size N, --repeat R, --task-seconds S, --max-seconds S (the sweep).
Command add_report_command(CLI::App& root);
}  // namespace mpdemo::cli
