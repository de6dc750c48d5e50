#include "mpdemo/report/trace.hpp"

#include "mpdemo/report/file.hpp"
#include "mpdemo/report/format.hpp"

#include <fmt/format.h>
#include <algorithm>
#include <limits>
#include <map>
#include <ostream>
#include <set>
#include <utility>

namespace mpdemo::report {

namespace {

double microseconds_since(std::int64_t origin_ns, std::int64_t at_ns) {
  return static_cast<double>(at_ns - origin_ns) / 1000.0;
}

// The time the spans cover, first beginning to last end.
double covered_seconds(const std::vector<TraceSpan>& spans) {
  if (spans.empty()) return 0;
  std::int64_t first = std::numeric_limits<std::int64_t>::max();
  std::int64_t last = std::numeric_limits<std::int64_t>::min();
  for (const TraceSpan& span : spans) {
    first = std::min(first, span.begin_ns);
    last = std::max(last, span.end_ns);
  }
  return static_cast<double>(last - first) * 1e-9;
}

}  // namespace

nlohmann::json trace_json(const Trace& trace) {
  const std::vector<TraceTrack> tracks = trace.tracks();
  const std::vector<TraceSpan> spans = trace.spans();
  nlohmann::json events = nlohmann::json::array();
  // A process is named by its main thread's track (a worker process), or by the master's.
  std::set<pid_t> named;
  for (const TraceTrack& track : tracks) {
    if (track.pid == track.tid && named.insert(track.pid).second) {
      events.push_back({{"name", "process_name"},
                        {"ph", "M"},
                        {"pid", track.pid},
                        {"tid", track.tid},
                        {"args", {{"name", track.name}}}});
    }
    events.push_back({{"name", "thread_name"},
                      {"ph", "M"},
                      {"pid", track.pid},
                      {"tid", track.tid},
                      {"args", {{"name", track.name}}}});
  }
  for (const TraceSpan& span : spans) {
    const TraceTrack& track = tracks.at(span.track);
    nlohmann::json args = nlohmann::json::object();
    if (span.cpu >= 0) args["cpu"] = span.cpu;
    events.push_back({{"name", span.label()},
                      {"cat", span.category},
                      {"ph", "X"},
                      {"ts", microseconds_since(trace.origin_ns(), span.begin_ns)},
                      {"dur", static_cast<double>(std::max<std::int64_t>(span.end_ns - span.begin_ns, 0)) / 1000.0},
                      {"pid", track.pid},
                      {"tid", track.tid},
                      {"args", args}});
  }
  return {{"traceEvents", events},
          {"displayTimeUnit", "ms"},
          {"otherData",
           {{"recorded_by", "mpdemo"},
            {"spans", spans.size()},
            {"dropped_spans", trace.dropped()},
            {"recording_cost_seconds", trace.recording_cost()},
            {"covered_seconds", covered_seconds(spans)}}}};
}

void write_trace(const Trace& trace, const std::string& path, std::ostream& out) {
  const std::string text = trace_json(trace).dump(1) + "\n";
  if (path == "-") {
    out << text;
    out.flush();
    return;
  }
  write_file(path, text, "the trace");
}

Timeline timeline_of(const Trace& trace, std::string title) {
  const std::vector<TraceTrack> tracks = trace.tracks();
  const std::vector<TraceSpan> spans = trace.spans();
  Timeline timeline;
  timeline.title = std::move(title);
  // Only tracks that have something to show get a row.
  std::map<std::size_t, std::size_t> row_of;
  for (const TraceSpan& span : spans) row_of.emplace(span.track, 0);
  for (auto& [track, row] : row_of) {
    row = timeline.rows.size();
    timeline.rows.push_back(printable(tracks.at(track).name, 60));
  }
  for (const TraceSpan& span : spans) {
    timeline.bars.push_back({row_of.at(span.track), microseconds_since(trace.origin_ns(), span.begin_ns) * 1e-6,
                             microseconds_since(trace.origin_ns(), span.end_ns) * 1e-6, span.category});
  }
  return timeline;
}

std::string recording_cost_sentence(const Trace& trace) {
  const std::vector<TraceSpan> spans = trace.spans();
  const double cost = trace.recording_cost();
  const double covered = covered_seconds(spans);
  std::string sentence = fmt::format("recorded {} spans over {}; recording them took {}", with_commas(spans.size()),
                                     format_duration(covered), format_duration(cost));
  if (covered > 0) sentence += fmt::format(" ({:.3f}% of that time)", 100.0 * cost / covered);
  if (trace.dropped() > 0) sentence += fmt::format("; {} spans were lost for want of memory", trace.dropped());
  return sentence;
}

}  // namespace mpdemo::report
