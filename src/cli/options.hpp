// Options several subcommands share, each validated with a message that names the option and the
// accepted range.
#pragma once

#include <CLI/CLI.hpp>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

namespace mpdemo::cli {

enum class Format { table, json, csv };

/// Upper bounds that keep a typo from becoming a hang or an OOM kill.
inline constexpr std::size_t kMaxWorkers = 4096;
/// More workers than this per usable CPU only adds start-up, memory and context switches (4000
/// workers on a 2-CPU, 24 GiB machine were OOM-killed): refused with a message.
inline constexpr std::size_t kMaxWorkersPerCpu = 64;
inline constexpr std::size_t kMaxElements = std::size_t{1} << 40;

/// Parses an element count: "10000000", "10_000_000", "1e7" or "10^7". Throws CLI::ValidationError
/// naming `option` if it is not a whole number in [min, max].
std::size_t parse_count(const std::string& text, const std::string& option, std::size_t min, std::size_t max);

/// The one reader of counts for every subcommand and the benchmarks: a CLI11 transformer that accepts
/// "10000000", "10_000_000", "10,000,000", "1e7" and "10^7" in [min, max], hands the option the plain
/// number, and says its range in --help. A value outside it fails naming the option and the range.
CLI::Validator count_in(std::size_t min, std::size_t max);

/// `name` (e.g. "--size,-n") as a count in [min, max] stored into `target`.
template <class T>
CLI::Option* add_count_option(CLI::App& app, const std::string& name, T& target, std::size_t min, std::size_t max,
                              const std::string& description) {
  return app.add_option(name, target, description)->transform(count_in(min, max))->type_name("N");
}

/// --repeat,-r, with one meaning everywhere: how many times each measurement runs; reports give their
/// median, with min and max. At least 1, at most `max`; the current value of `repeat` is the default.
CLI::Option* add_repeat_option(CLI::App& app, std::size_t& repeat, std::size_t max);

/// Parses a number of seconds in (0, max]: "2", "0.5", "1e-3". Throws CLI::ValidationError naming
/// `option` and the range for anything else (words, nan, inf, a sign).
double parse_seconds(const std::string& text, const std::string& option, double max);
/// An option `name` taking a number of seconds in (0, max] into `seconds` (parse_seconds' message).
CLI::Option* add_seconds_option(CLI::App& app, const std::string& name, double& seconds, double max,
                                const std::string& description);
/// The time budget of a sweep (`sweep --max-seconds`, and the report's sweep).
CLI::Option* add_sweep_budget_option(CLI::App& app, double& seconds);
/// How long the cores experiment's 1x task runs alone (`cores`, and the report's).
CLI::Option* add_task_seconds_option(CLI::App& app, double& seconds);

/// --size N (an element count, 0 allowed).
CLI::Option* add_size_option(CLI::App& app, std::size_t& size, const std::string& description);
/// --workers W, 1 to kMaxWorkers and no more than this user may fork; 0 (the default) means one per
/// physical core available to this process.
CLI::Option* add_workers_option(CLI::App& app, std::size_t& workers);
/// --seed S: a whole number from 0 to 2^64 - 1 (no sign, no wrap-around).
CLI::Option* add_seed_option(CLI::App& app, std::uint64_t& seed, const std::string& description);
/// --start-method fork|forkserver (Python's names): `fork_server` is set by forkserver, the
/// process pools' workers then forked by a server started before the arrays.
CLI::Option* add_start_method_option(CLI::App& app, bool& fork_server);
/// Throws UsageError, saying why, when a fork server was asked for and cannot run here.
void require_fork_server_support(bool fork_server);
/// --chunksize C, at least 1; 0 (unset) means Python's default.
CLI::Option* add_chunksize_option(CLI::App& app, std::size_t& chunksize);
/// --format with the given choices (table is always the default).
CLI::Option* add_format_option(CLI::App& app, Format& format, bool allow_csv);

/// What a command starts: checked against ulimit -n and ulimit -u before any work.
struct ProcessNeeds {
  std::size_t workers = 0;
  std::size_t processes = 0;
  std::size_t threads = 0;
  std::size_t descriptors = 0;
  /// A warm pool and a fresh one of `workers` each, of processes and/or threads; with a `fork_server`
  /// forking the process pools' workers.
  static ProcessNeeds for_pools(std::size_t workers, bool processes, bool threads, bool fork_server = false);
};
/// Throws UsageError naming the limit if what `needs` says does not fit this process's limits.
void require_process_resources(const ProcessNeeds& needs, const std::string& what);

/// Throws UsageError if `bytes` exceed MemAvailable, or what ulimit -v still allows, naming what
/// needs them and both sizes.
void require_available_memory(std::size_t bytes, const std::string& what);
/// Throws UsageError if `bytes` do not fit in the process pool's shared arena at once.
void require_arena_capacity(std::size_t bytes, const std::string& what);

/// Throws UsageError if `bytes` of files do not fit in what /dev/shm has free: Open MPI backs its
/// shared windows with files there, and a window beyond it fails inside Open MPI or dies of SIGBUS
/// at first touch, not with a reason (a container's /dev/shm is 64 MB by default). Nothing is
/// checked where /dev/shm is absent.
void require_shared_memory_files(std::size_t bytes, const std::string& what);
/// Raises this process's open-file soft limit to its hard limit (each worker holds two pipe ends).
void raise_open_file_limit() noexcept;
/// MemAvailable from /proc/meminfo, in bytes.
std::size_t available_memory_bytes();
/// Throws UsageError, naming `option`, unless `path` is "-", or ends in one of `endings`, has no
/// control characters, and names a regular file (or nothing yet, in a writable directory). Creates
/// nothing, so a run that fails later leaves no empty file behind.
void check_output_path(const std::string& path, std::string_view option,
                       std::initializer_list<std::string_view> endings);
/// A picture: --plot, --timeline.
inline void check_plot_path(const std::string& path, std::string_view option = "--plot") {
  check_output_path(path, option, {".png", ".svg"});
}

}  // namespace mpdemo::cli
