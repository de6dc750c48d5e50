#pragma once
#include "command.hpp"

namespace mpdemo::cli {
/// `mpdemo` with no subcommand: the lesson, for 10 and 10,000,000 numbers, then a warm pool.
Command add_lesson_command(CLI::App& root);
}  // namespace mpdemo::cli
