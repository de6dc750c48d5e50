#pragma once
#include "command.hpp"

namespace mpdemo::cli {
/// `mpdemo run`: one configurable run of every chosen method, phase by phase, table or JSON.
Command add_run_command(CLI::App& root);
}  // namespace mpdemo::cli
