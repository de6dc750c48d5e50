// Renderers for `mpdemo costs`: one data model (CostMeasurement, numbers only), three formats, and
// the sentence each figure teaches. Pure functions of their input: they measure nothing and know
// nothing of fork. Thread-safe.
#pragma once

#include "mpdemo/lab/costs.hpp"

#include <span>
#include <string>

namespace mpdemo::report {

/// One sentence: what `cost` teaches, with its figures (and those of the rows it is compared with,
/// found by name in `all`).
std::string cost_lesson(const CostMeasurement& cost, std::span<const CostMeasurement> all);

/// A table (name, median, [min, max], unit), then one line per row saying what it teaches.
/// Rows that are not measurable show "not measurable" and say why.
std::string costs_table(std::span<const CostMeasurement> costs);

/// A JSON array with one object per row:
///   {"name", "unit", "measurable", "median", "min", "max", "repeats", "lesson", "details": {name: value}}
/// Times are in seconds; median, min and max are null when the row is not measurable.
std::string costs_json(std::span<const CostMeasurement> costs);

/// RFC 4180 CSV, a header line then one line per row:
///   name,unit,measurable,median,min,max,repeats,lesson,details
/// Times in seconds (empty when not measurable); details as "name=value;name=value".
std::string costs_csv(std::span<const CostMeasurement> costs);

}  // namespace mpdemo::report
