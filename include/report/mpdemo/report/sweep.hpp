// Renderers for `mpdemo sweep`: one data model (SweepResult), three formats and a chart.
#pragma once

#include "mpdemo/lab/sweep.hpp"
#include "mpdemo/report/chart.hpp"

#include <string>

namespace mpdemo::report {

/// Times per map, speedups over the loop, what --max-seconds cut, and the crossover per route with
/// its cost models. An empty string when nothing was measured (an empty table says nothing).
std::string sweep_table(const SweepResult& result);
/// workers, repeat, work, max_seconds, unit, skipped_sizes, rows [{size, method, data, seconds,
/// speedup_vs_seq}], crossovers [{data, measured, predicted, pool_fixed_seconds,
/// pool_per_element_seconds}], sequential_model, unfinished_size, measured_sizes, verified.
std::string sweep_json(const SweepResult& result);
/// size,method,data,seconds,speedup_vs_seq: one line per size and method.
std::string sweep_csv(const SweepResult& result);
/// Speedup over the loop against size, one series per method and route, the best crossover marked.
Chart sweep_chart(const SweepResult& result);

/// Every measured size verified, and at least one measured: nothing measured is nothing verified.
bool sweep_verified(const SweepResult& result);

}  // namespace mpdemo::report
