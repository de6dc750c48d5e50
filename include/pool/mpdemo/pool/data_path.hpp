// DataPath: how data reaches another process and comes back -- through shared memory, or through a
// pipe. The one enum for that choice: the pool's map_into takes it, `mpdemo costs` times both, and
// the sweep's routes are built on it.
#pragma once

#include <string_view>

namespace mpdemo {

enum class DataPath {
  shared_memory,  ///< through pages both processes map (zero copy when the data is made there)
  pipe,           ///< serialized through a pipe, as Python's Pool pickles through its queues: two copies
};

/// "shared_memory", "pipe".
constexpr std::string_view data_path_name(DataPath path) noexcept {
  return path == DataPath::pipe ? "pipe" : "shared_memory";
}

}  // namespace mpdemo
