#pragma once
#include "command.hpp"

namespace mpdemo::cli {
/// `mpdemo topology`: logical CPUs, physical cores, sockets, affinity mask, the worker count chosen.
Command add_topology_command(CLI::App& root);
}  // namespace mpdemo::cli
