// A Trace rendered: as Chrome's trace-event JSON (what Perfetto, ui.perfetto.dev, and
// chrome://tracing open), and as a Timeline for a Gantt chart.
#pragma once

#include "mpdemo/report/chart.hpp"
#include "mpdemo/sys/trace.hpp"

#include <nlohmann/json.hpp>

#include <string>

namespace mpdemo::report {

/// The trace-event "JSON object format": complete events ("ph": "X") with ts and dur in
/// microseconds from the trace's origin, pid and tid the real ones, the CPU in args; metadata events
/// name every process and thread; otherData states what recording cost.
nlohmann::json trace_json(const Trace& trace);

/// Writes trace_json() to `path` ("-": `out`). Throws std::system_error naming the file if it cannot.
void write_trace(const Trace& trace, const std::string& path, std::ostream& out);

/// Every track of the trace a row (the master at the bottom), every span a bar.
Timeline timeline_of(const Trace& trace, std::string title);

/// One sentence: how many spans, and what recording them cost against the time they cover.
std::string recording_cost_sentence(const Trace& trace);

}  // namespace mpdemo::report
