#include "mpdemo/report/format.hpp"

#include <fmt/format.h>
#include <algorithm>
#include <cmath>
#include <iterator>

namespace mpdemo::report {

std::string format_duration(double seconds) {
  // Round to three significant digits before choosing the unit, so 999.7 ns reads "1.00 us".
  if (seconds == 0) return "0";
  const double magnitude = std::fabs(seconds);
  const double step = magnitude > 0 ? std::pow(10.0, std::floor(std::log10(magnitude)) - 2) : 1.0;
  const double rounded = std::round(magnitude / step) * step;
  const auto three_digits = [seconds](double scale, const char* unit) {
    const double value = seconds * scale;
    if (std::fabs(value) >= 99.95) return fmt::format("{:.0f} {}", value, unit);
    if (std::fabs(value) >= 9.995) return fmt::format("{:.1f} {}", value, unit);
    return fmt::format("{:.2f} {}", value, unit);
  };
  if (rounded >= 1) return three_digits(1, "s");
  if (rounded >= 1e-3) return three_digits(1e3, "ms");
  if (rounded >= 1e-6) return three_digits(1e6, "us");
  return three_digits(1e9, "ns");
}

std::string human_bytes(double bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  std::size_t unit = 0;
  while (bytes >= 1024 && unit + 1 < std::size(kUnits)) {
    bytes /= 1024;
    ++unit;
  }
  if (unit == 0 || bytes == std::floor(bytes)) return fmt::format("{:.0f} {}", bytes, kUnits[unit]);
  return fmt::format("{:.1f} {}", bytes, kUnits[unit]);
}

std::string with_commas(std::size_t n) {
  std::string digits = std::to_string(n);
  for (std::size_t i = digits.size(); i > 3; i -= 3) digits.insert(i - 3, 1, ',');
  return digits;
}

std::string count_as_power(std::size_t n) {
  int exponent = 0;
  std::size_t rest = n;
  while (rest >= 10 && rest % 10 == 0) {
    rest /= 10;
    ++exponent;
  }
  return rest == 1 && exponent > 0 ? fmt::format("10^{}", exponent) : with_commas(n);
}

double ratio(double a, double b) noexcept { return b > 0 ? a / b : 0.0; }

std::string times(double factor) {
  return factor >= 10 ? fmt::format("{:.0f}x", factor) : fmt::format("{:.1f}x", factor);
}

std::string compared_with(double a, double b) {
  const double r = ratio(a, b);
  if (r >= 1.15) return times(r) + " slower than";
  if (r > 0 && r <= 1 / 1.15) return times(1 / r) + " faster than";
  return "about as fast as";
}

std::string csv_field(std::string_view text) {
  if (text.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(text);
  std::string quoted = "\"";
  for (const char c : text) {
    if (c == '"') quoted += '"';
    quoted += c;
  }
  return quoted + '"';
}

std::string printable(std::string_view text, std::size_t longest) {
  std::string shown;
  for (const char c : text.substr(0, longest)) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '\n') {
      shown += "\\n";
    } else if (byte < 0x20 || byte == 0x7f) {
      shown += fmt::format("\\x{:02x}", byte);
    } else {
      shown += c;
    }
  }
  if (text.size() > longest) shown += fmt::format("... ({} characters)", text.size());
  return shown;
}

std::string printable_message(std::string_view message) {
  // Each word on its own, so a long value is cut without cutting the words around it.
  std::string shown;
  std::size_t start = 0;
  while (start <= message.size()) {
    const std::size_t space = std::min(message.find(' ', start), message.size());
    if (!shown.empty() || start > 0) shown += ' ';
    shown += printable(message.substr(start, space - start), 80);
    start = space + 1;
  }
  return shown;
}

std::string benchmark_box(std::string_view name, double seconds) {
  const std::string dashes(50, '-');
  const std::string title = fmt::format("{} {} {}", dashes, name, dashes);
  return fmt::format("{}\nfunc: {} executed in {:.5f}s.\n{}\n", title, name, seconds, std::string(title.size(), '-'));
}

}  // namespace mpdemo::report
