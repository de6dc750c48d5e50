// The five phases of a map (start workers, move data in, compute, collect, stop workers) as every
// report shows them: the one place their headings, table cells and JSON keys are written. Used by the
// lesson, run and the benchmark reports.
#pragma once

#include "mpdemo/sys/timing.hpp"

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>

namespace mpdemo::report {

/// "      start    move in    compute    collect       stop": each heading right-aligned in `width`.
std::string phase_headings(std::size_t width = 10);
/// The phases as durations ("4.08 ms"), in the same columns as phase_headings.
std::string phase_cells(const PhaseTimes& phases, std::size_t width = 10);
/// The phases as seconds with `decimals` places, in the same columns (the benchmark's raw figures).
std::string phase_seconds_cells(const PhaseTimes& phases, int decimals = 5, std::size_t width = 10);
/// {"start": s, "move_in": s, "compute": s, "collect": s, "stop": s[, "total": s]}, in seconds.
nlohmann::json phases_json(const PhaseTimes& phases, bool with_total = true);

}  // namespace mpdemo::report
