// The benchmarks' data model and its renderers: timings of interleaved modes, round by round, and the
// figures derived from them (ratios, fixed costs) with the targets they are held against. The
// benchmark executables in bench/ measure and fill a BenchmarkReport; this module writes it.
#pragma once

#include "mpdemo/sys/timing.hpp"

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mpdemo::report {

/// One way of doing the job, timed once per round.
struct BenchmarkTiming {
  std::string key;              ///< short name: "warm-proc"
  std::string label;            ///< what exactly runs, and with which semantics (fresh or reused output)
  std::string function;         ///< the lesson's function name, for the lesson's own methods
  std::vector<double> seconds;  ///< wall time of each round, in run order
  /// With calls in batches: the first call of each round's batch (the one after the other modes ran).
  std::vector<double> first_seconds;
  std::vector<PhaseTimes> phases;    ///< the library's phases of each round, when it reports them
  std::vector<double> minor_faults;  ///< page faults of each round, this process and its workers
  bool verified = true;              ///< every round's output equal, bit for bit, to the loop's
  bool has_result = true;            ///< false: a floor measured with no output, nothing to verify
};

/// A derived figure: a ratio of two timings, or a fixed cost, with its target when there is one.
struct BenchmarkFigure {
  std::string key;
  std::string label;
  Summary value;
  std::string unit;  ///< "x", "us" or "MiB"
  std::string target;
  std::optional<bool> met;
};

struct BenchmarkReport {
  std::string title;
  std::size_t size = 0;
  std::size_t bytes_per_element = 0;  ///< memory traffic per element, for GB/s
  std::size_t workers = 0;
  std::size_t chunksize = 0;
  std::size_t repeat = 0;
  std::string cpus;
  std::string compiler;
  std::string cxx_flags;
  std::string build_type;
  std::string kernel;  ///< what every mode runs
  std::vector<BenchmarkTiming> timings;
  std::vector<BenchmarkFigure> figures;
  std::vector<std::string> notes;

  /// The timing called `key`; throws std::logic_error if there is none.
  const BenchmarkTiming& timing(std::string_view key) const;
};

/// A mode of an anchors sweep, and the mode it is held against (the loop with the same semantics).
struct AnchorMode {
  std::string key;       ///< "openmp"
  std::string label;     ///< what exactly runs
  std::string baseline;  ///< the key of the loop it is compared with ("seq"; "fresh-seq" for fresh results)
};

/// One size of an anchors sweep: every mode timed at it, in the order of AnchorsReport::modes.
struct AnchorPoint {
  std::size_t size = 0;
  std::vector<BenchmarkTiming> timings;

  /// The timing called `key`; throws std::logic_error if there is none.
  const BenchmarkTiming& timing(std::string_view key) const;
};

/// The same job done every way a user might pick, at sizes from a tiny map to beyond the caches, each
/// size's modes interleaved round by round (BenchmarkReport's setup fields say on what and how).
struct AnchorsReport {
  BenchmarkReport setup;  ///< title, workers, cpus, compiler, flags, kernel; its size and timings unused
  std::vector<AnchorMode> modes;
  std::vector<AnchorPoint> points;  ///< by increasing size
  /// The machine's own costs measured in the same run, and the targets stated against them.
  std::vector<BenchmarkFigure> figures;
  std::vector<std::string> notes;
};

/// The smallest size of the sweep from which `mode`'s median speedup over its baseline stays above 1
/// at every larger size; none if it is not ahead at the largest.
std::optional<std::size_t> crossover(const AnchorsReport& report, std::string_view mode);

/// Round by round, how many times faster `contender` was than `baseline` (modes were interleaved, so
/// each round's ratio compares the same moment of the machine).
Summary speedup(const BenchmarkTiming& baseline, const BenchmarkTiming& contender);
/// The same for one phase: baseline's `phase` over contender's, round by round (rounds that recorded phases).
Summary speedup(const BenchmarkTiming& baseline, const BenchmarkTiming& contender, double PhaseTimes::*phase);
/// Each of median, min and max multiplied by `factor` (seconds to microseconds).
Summary scaled(Summary summary, double factor);
/// Each phase's median over the rounds.
PhaseTimes median_phases(const std::vector<PhaseTimes>& samples);

/// The table: the setup, the lesson's boxes (with `lesson_boxes`), one line per timing, the phases,
/// the figures against their targets, and the notes.
std::string benchmark_table(const BenchmarkReport& report, bool lesson_boxes);
/// The same as JSON: benchmark, size, workers, chunksize, repeat, cpus, compiler, cxx_flags,
/// build_type, kernel, timings [...], figures [...], notes.
std::string benchmark_json(const BenchmarkReport& report);

/// The anchors sweep: time per map of every mode at every size, speedups over the loop, crossovers.
std::string anchors_table(const AnchorsReport& report);
/// The same as JSON: the setup, modes [...], points [{size, timings [...]}], crossovers {mode: size|null}.
std::string anchors_json(const AnchorsReport& report);

}  // namespace mpdemo::report
