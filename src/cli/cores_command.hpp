#pragma once
#include "command.hpp"

namespace mpdemo::cli {
/// `mpdemo cores`: the lesson's claims about cores measured here -- two unequal tasks as threads and as
/// processes, on one core, on two cores and unpinned; SMT siblings against two cores; N tasks on M
/// cores. Options: --task-seconds S, --cpus M, --tasks N, --format table|json|csv, --trace, --timeline.
Command add_cores_command(CLI::App& root);
}  // namespace mpdemo::cli
