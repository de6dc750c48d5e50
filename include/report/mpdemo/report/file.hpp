// Where the report layer's outputs go: files written whole, with errors that name them.
#pragma once

#include <string>
#include <string_view>

namespace mpdemo::report {

/// Writes `bytes` to `path` (created or truncated). Throws std::system_error saying what was being
/// written where (`what`: "the chart", "the trace") when it cannot be opened or written (a full disk).
void write_file(const std::string& path, std::string_view bytes, std::string_view what);

}  // namespace mpdemo::report
