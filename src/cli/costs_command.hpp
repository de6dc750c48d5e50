#pragma once
#include "command.hpp"

namespace mpdemo::cli {
/// `mpdemo costs`: what starting processes and threads, handing messages between them, context
/// switches, moving 100 MB and copy-on-write cost on this machine, one sentence per figure.
/// Options: --repeat R, --large-parent-mib M, --format table|json|csv.
Command add_costs_command(CLI::App& root);
}  // namespace mpdemo::cli
