// Formatting of numbers for people: the one place durations, sizes, counts, ratios and comparisons
// are turned into words, so that every report writes the same figure the same way.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace mpdemo::report {

/// A duration to three significant digits in the unit that suits it: "1.23 ms", "456 us", "7.80 ns";
/// "0" for zero.
std::string format_duration(double seconds);

/// Bytes in binary units: "512 MiB" when exact, else one decimal ("95.4 MiB"); "12 B" below 1 KiB.
std::string human_bytes(double bytes);

/// "10,000,000".
std::string with_commas(std::size_t n);

/// A count as a power of ten when it is one ("10^6"), else with commas: the sizes of a sweep.
std::string count_as_power(std::size_t n);

/// a / b, or 0 when b is not positive (a figure that could not be measured compares as nothing).
double ratio(double a, double b) noexcept;

/// "2.5x" below 10, "12x" from 10 on: a factor as the prose says it.
std::string times(double factor);

/// How a duration `a` compares with `b`: "3.2x slower than", "2.5x faster than", or "about as fast as"
/// within 15% either way.
std::string compared_with(double a, double b);

/// RFC 4180: a field holding a comma, a quote or a line break is quoted, its quotes doubled.
std::string csv_field(std::string_view text);

/// `text` as it may be shown in a one-line message: control characters escaped (\n, \x1b), and
/// cut after `longest` characters, with the full length said.
std::string printable(std::string_view text, std::size_t longest = 40);
/// A whole message made printable word by word: one line, no raw control characters, long words cut.
std::string printable_message(std::string_view message);

/// The lesson's `@benchmark` decorator output:
///   ------...------ NAME ------...------   (50 dashes each side)
///   func: NAME executed in 0.00001s.
///   ---------------------------------      (as long as the title)
std::string benchmark_box(std::string_view name, double seconds);

}  // namespace mpdemo::report
