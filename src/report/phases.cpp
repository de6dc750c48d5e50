#include "mpdemo/report/phases.hpp"

#include "mpdemo/report/format.hpp"

#include <fmt/format.h>
#include <array>
#include <string_view>

namespace mpdemo::report {

namespace {
// For people; the JSON keys are kPhaseNames (timing.hpp), in the same order.
constexpr std::array<std::string_view, 5> kPhaseHeadings{"start", "move in", "compute", "collect", "stop"};
}  // namespace

std::string phase_headings(std::size_t width) {
  std::string text;
  for (const std::string_view heading : kPhaseHeadings) text += fmt::format(" {:>{}}", heading, width);
  return text;
}

std::string phase_cells(const PhaseTimes& phases, std::size_t width) {
  std::string text;
  for (const double seconds : phase_values(phases)) text += fmt::format(" {:>{}}", format_duration(seconds), width);
  return text;
}

std::string phase_seconds_cells(const PhaseTimes& phases, int decimals, std::size_t width) {
  std::string text;
  for (const double seconds : phase_values(phases)) text += fmt::format(" {:>{}.{}f}", seconds, width, decimals);
  return text;
}

nlohmann::json phases_json(const PhaseTimes& phases, bool with_total) {
  nlohmann::json json;
  const auto values = phase_values(phases);
  for (std::size_t i = 0; i < values.size(); ++i) json[std::string(kPhaseNames[i])] = values[i];
  if (with_total) json["total"] = phases.total();
  return json;
}

}  // namespace mpdemo::report
