#pragma once
#include "command.hpp"

namespace mpdemo::cli {
/// `mpdemo sweep`: every method over a range of sizes, the crossover size measured and predicted,
/// the three data paths side by side, and a plot.
Command add_sweep_command(CLI::App& root);
}  // namespace mpdemo::cli
