// GCC 12 at -O3 reports a "potential null pointer dereference" inside std::function's copy
// constructor wherever this file copies a CLI::Validator (count_in, and the options built on it): a
// false positive in libstdc++, silenced for this file only (before the includes: the warning is located in
// <functional>).
#pragma GCC diagnostic ignored "-Wnull-dereference"

#include "options.hpp"

#include "command.hpp"
#include "mpdemo/pool/shared_arena.hpp"
#include "mpdemo/report/format.hpp"
#include "mpdemo/sys/errors.hpp"
#include "mpdemo/sys/proc_files.hpp"
#include "mpdemo/sys/spawn.hpp"
#include "mpdemo/sys/topology.hpp"

#include <fmt/format.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <optional>
#include <variant>

namespace mpdemo::cli {

using report::human_bytes;
using report::printable;

namespace {

std::string strip_separators(const std::string& text) {
  std::string digits;
  for (char c : text) {
    if (c != '_' && c != ',' && c != '\'') digits += c;
  }
  return digits;
}

// Whole numbers only: "12", "1e7", "10^7". Returns false for anything else, or on overflow.
bool parse_whole_number(const std::string& text, double& value) {
  if (text.empty() || !std::isdigit(static_cast<unsigned char>(text.front()))) return false;
  if (const auto caret = text.find('^'); caret != std::string::npos) {
    double base = 0;
    double exponent = 0;
    if (!parse_whole_number(text.substr(0, caret), base) || !parse_whole_number(text.substr(caret + 1), exponent)) {
      return false;
    }
    value = std::pow(base, exponent);
    return std::isfinite(value);
  }
  const char* end = text.data() + text.size();
  const auto [stop, error] = std::from_chars(text.data(), end, value);
  return error == std::errc() && stop == end && std::isfinite(value) && value == std::floor(value);
}

}  // namespace

namespace {
// The count `text` names if it is a whole number in [min, max]; otherwise what is wrong with it.
std::variant<std::size_t, std::string> read_count(const std::string& text, std::size_t min, std::size_t max) {
  double value = 0;
  if (!parse_whole_number(strip_separators(text), value) || value < static_cast<double>(min) ||
      value > static_cast<double>(max)) {
    return fmt::format("'{}' is not a whole number from {} to {}{}", printable(text), min, max,
                       max >= 1'000'000 ? " (1000000, 1e6 and 10^6 are all accepted)" : "");
  }
  return static_cast<std::size_t>(value);
}
}  // namespace

std::size_t parse_count(const std::string& text, const std::string& option, std::size_t min, std::size_t max) {
  auto count = read_count(text, min, max);
  if (const auto* error = std::get_if<std::string>(&count)) throw CLI::ValidationError(option, *error);
  return std::get<std::size_t>(count);
}

CLI::Validator count_in(std::size_t min, std::size_t max) {
  return CLI::Validator(
      [min, max](std::string& text) -> std::string {
        auto count = read_count(text, min, max);
        if (const auto* error = std::get_if<std::string>(&count)) return *error;
        text = std::to_string(std::get<std::size_t>(count));
        return {};
      },
      fmt::format("from {} to {}", min, max), "count");
}

CLI::Option* add_repeat_option(CLI::App& app, std::size_t& repeat, std::size_t max) {
  return app
      .add_option("--repeat,-r", repeat,
                  "how many times each measurement runs; the report gives their median, with min and max")
      ->transform(count_in(1, max))
      ->type_name("R")
      ->capture_default_str();
}

double parse_seconds(const std::string& text, const std::string& option, double max) {
  double seconds = 0;
  const char* end = text.data() + text.size();
  const auto [stop, error] = std::from_chars(text.data(), end, seconds);
  if (text.empty() || error != std::errc() || stop != end || !std::isfinite(seconds) || !(seconds > 0) ||
      seconds > max) {
    throw CLI::ValidationError(
        option, fmt::format("'{}' is not a number of seconds greater than 0 and at most {}", printable(text), max));
  }
  return seconds;
}

CLI::Option* add_seconds_option(CLI::App& app, const std::string& name, double& seconds, double max,
                                const std::string& description) {
  return app
      .add_option_function<std::string>(
          name, [&seconds, name, max](const std::string& text) { seconds = parse_seconds(text, name, max); },
          description)
      ->type_name("S");
}

CLI::Option* add_sweep_budget_option(CLI::App& app, double& seconds) {
  return add_seconds_option(
      app, "--max-seconds", seconds, 86400,
      fmt::format("time budget for the whole sweep: a size that would pass it is skipped, and one "
                  "still running when it runs out is stopped (default {})",
                  seconds));
}

CLI::Option* add_task_seconds_option(CLI::App& app, double& seconds) {
  return add_seconds_option(app, "--task-seconds", seconds, 60,
                            fmt::format("how long the cores experiment's 1x task runs alone; the 2x task runs twice "
                                        "that (default {})",
                                        seconds));
}

CLI::Option* add_size_option(CLI::App& app, std::size_t& size, const std::string& description) {
  return add_count_option(app, "--size,-n", size, 0, kMaxElements, description);
}

CLI::Option* add_workers_option(CLI::App& app, std::size_t& workers) {
  return app
      .add_option_function<std::string>(
          "--workers,-w",
          [&workers](const std::string& text) {
            workers = parse_count(text, "--workers", 1, kMaxWorkers);
            const std::size_t cpus = std::max<std::size_t>(1, system_topology().allowed_cpus.size());
            if (workers > kMaxWorkersPerCpu * cpus) {
              throw CLI::ValidationError("--workers",
                                         fmt::format("{} is more than {} per CPU this process may use "
                                                     "({} here)",
                                                     workers, kMaxWorkersPerCpu, kMaxWorkersPerCpu * cpus));
            }
          },
          "worker processes/threads (default: one per physical core this process may use)")
      ->type_name("W");
}

CLI::Option* add_start_method_option(CLI::App& app, bool& fork_server) {
  return app
      .add_option_function<std::string>(
          "--start-method", [&fork_server](const std::string& method) { fork_server = method == "forkserver"; },
          "fork (default): this process forks the process pools' workers; forkserver: a small server, started "
          "before the arrays are made, forks them (Python's start methods): a fork costs more the more the "
          "forking process holds")
      ->check(CLI::IsMember({"fork", "forkserver"}));
}

void require_fork_server_support(bool fork_server) {
  if (fork_server && !ForkServer::supported()) {
    throw UsageError(
        "--start-method forkserver: this machine cannot run a fork server (it needs x86-64 or arm64, and a kernel "
        "that says where glibc keeps a thread's id: PR_GET_TID_ADDRESS); use --start-method fork");
  }
}

CLI::Option* add_seed_option(CLI::App& app, std::uint64_t& seed, const std::string& description) {
  return app
      .add_option_function<std::string>(
          "--seed",
          [&seed](const std::string& text) {
            const char* end = text.data() + text.size();
            const auto [stop, error] = std::from_chars(text.data(), end, seed);
            if (text.empty() || error != std::errc() || stop != end) {
              throw CLI::ValidationError(
                  "--seed", fmt::format("'{}' is not a whole number from 0 to {}", printable(text), UINT64_MAX));
            }
          },
          description)
      ->type_name("S");
}

CLI::Option* add_chunksize_option(CLI::App& app, std::size_t& chunksize) {
  return add_count_option(app, "--chunksize,-c", chunksize, 1, kMaxElements,
                          "elements per task handed to a worker (default, as Python's Pool.map: ceil(N / (4 * W)))")
      ->type_name("C");
}

CLI::Option* add_format_option(CLI::App& app, Format& format, bool allow_csv) {
  return app
      .add_option_function<std::string>(
          "--format,-f",
          [&format, allow_csv](const std::string& text) {
            if (text == "table") {
              format = Format::table;
            } else if (text == "json") {
              format = Format::json;
            } else if (text == "csv" && allow_csv) {
              format = Format::csv;
            } else {
              throw CLI::ValidationError("--format", fmt::format("'{}' is not one of: table, json{}", printable(text),
                                                                 allow_csv ? ", csv" : ""));
            }
          },
          "output format (default: table)")
      ->type_name(allow_csv ? "table|json|csv" : "table|json");
}

std::size_t available_memory_bytes() {
  const std::optional<ProcFields> meminfo = ProcFields::read("/proc/meminfo");
  if (!meminfo) {
    const int error = errno;
    const std::string hint = limit_hint(error);
    throw std::runtime_error(fmt::format("cannot open /proc/meminfo: {}{}", std::strerror(error),
                                         hint.empty() ? "" : fmt::format(" ({})", hint)));
  }
  if (const std::optional<std::uint64_t> available = meminfo->bytes("MemAvailable")) return *available;
  throw std::runtime_error("cannot read MemAvailable from /proc/meminfo");
}

namespace {
// Bytes this process may still map under ulimit -v: the limit less what is mapped now.
std::optional<std::size_t> address_space_left() {
  const std::optional<std::uint64_t> limit = soft_limit(RLIMIT_AS);
  if (!limit) return std::nullopt;
  const std::optional<ProcFields> status = ProcFields::read("/proc/self/status");
  const std::optional<std::uint64_t> mapped = status ? status->bytes("VmSize") : std::nullopt;
  if (!mapped) return static_cast<std::size_t>(*limit);
  return *limit > *mapped ? static_cast<std::size_t>(*limit - *mapped) : 0;
}
}  // namespace

void require_process_resources(const ProcessNeeds& needs, const std::string& what) {
  if (const std::optional<std::uint64_t> files = soft_limit(RLIMIT_NOFILE); files && needs.descriptors > *files) {
    throw UsageError(
        fmt::format("{} needs about {} open files ({} workers' pipes, twice), more than this process may "
                    "have (ulimit -n = {}); raise the limit or choose fewer --workers",
                    what, needs.descriptors, needs.workers, *files));
  }
  // ulimit -u counts this user's processes and threads together; root is exempt from it.
  if (const std::optional<std::uint64_t> tasks = soft_limit(RLIMIT_NPROC);
      tasks && ::geteuid() != 0 && needs.processes + needs.threads >= *tasks) {
    throw UsageError(
        fmt::format("{} starts up to {} processes and {} threads, and this user may run {} in all "
                    "(ulimit -u); raise the limit or choose fewer --workers",
                    what, needs.processes, needs.threads, *tasks));
  }
}

ProcessNeeds ProcessNeeds::for_pools(std::size_t workers, bool processes, bool threads, bool fork_server) {
  ProcessNeeds needs;
  needs.workers = workers;
  // A warm pool and a fresh one may be alive at once; each process worker holds four pipe ends in
  // the master (tasks, replies and their two doorbells), each pool its terminate() pipe. A pool being
  // started holds both ends of all four pipes of every worker for a moment (made before the first
  // fork): eight a worker. The rest: stdio, the interrupt pipe, gnuplot's pipes, /proc files being read.
  needs.processes = processes ? 2 * workers + 1 : 1;
  needs.threads = threads ? 2 * workers + 2 : 2;
  needs.descriptors = processes ? (4 * workers + 2) + (8 * workers + 2) + 4 + 32 : 32;
  // A fork server is one process more, with its socket, and a worker it forks is sent its mailbox as a
  // memfd, held until the worker has it.
  if (processes && fork_server) {
    needs.processes += 1;
    needs.descriptors += 1 + workers;
  }
  return needs;
}

void require_arena_capacity(std::size_t bytes, const std::string& what) {
  const std::size_t capacity = SharedArena::process_default()->capacity();
  if (bytes > capacity) {
    const std::size_t half = physical_memory_bytes() / 2;
    const std::string why = capacity >= half
                                ? std::string("half of physical memory")
                                : fmt::format(
                                      "less than half of physical memory ({}): all that this process's limits "
                                      "granted (ulimit -v = {}, or the overcommit policy)",
                                      human_bytes(static_cast<double>(half)),
                                      soft_limit(RLIMIT_AS) ? human_bytes(static_cast<double>(*soft_limit(RLIMIT_AS)))
                                                            : std::string("unlimited"));
    throw UsageError(
        fmt::format("{} needs {} of shared memory at once but the pool's arena holds {} ({}); choose a "
                    "smaller size",
                    what, human_bytes(static_cast<double>(bytes)), human_bytes(static_cast<double>(capacity)), why));
  }
}

void raise_open_file_limit() noexcept {
  rlimit files{};
  if (::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &files);
  }
}

void require_available_memory(std::size_t bytes, const std::string& what) {
  const std::size_t available = available_memory_bytes();
  if (bytes > available) {
    throw UsageError(
        fmt::format("{} needs {} of memory but only {} is available (MemAvailable); choose a smaller "
                    "size",
                    what, human_bytes(static_cast<double>(bytes)), human_bytes(static_cast<double>(available))));
  }
  if (const std::optional<std::size_t> left = address_space_left(); left && bytes > *left) {
    throw UsageError(
        fmt::format("{} needs {} of memory but this process may map only {} more (ulimit -v = {}); "
                    "choose a smaller size or raise the limit",
                    what, human_bytes(static_cast<double>(bytes)), human_bytes(static_cast<double>(*left)),
                    human_bytes(static_cast<double>(*soft_limit(RLIMIT_AS)))));
  }
}

void require_shared_memory_files(std::size_t bytes, const std::string& what) {
  struct statvfs shm {};
  if (::statvfs("/dev/shm", &shm) != 0) return;
  const std::size_t free_bytes = static_cast<std::size_t>(shm.f_bavail) * shm.f_frsize;
  if (bytes > free_bytes) {
    throw UsageError(fmt::format(
        "{} needs {} of shared windows, which Open MPI keeps as files in /dev/shm, but only {} is free there; "
        "choose a smaller size, leave out the window modes (--mode mpi-scatter), or give /dev/shm more room "
        "(docker run --shm-size)",
        what, human_bytes(static_cast<double>(bytes)), human_bytes(static_cast<double>(free_bytes))));
  }
}

void check_output_path(const std::string& path, std::string_view option,
                       std::initializer_list<std::string_view> endings) {
  if (path == "-") return;
  for (const char c : path) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      throw UsageError(
          fmt::format("{}: '{}' contains a control character; choose a plain file name", option, printable(path, 200)));
    }
  }
  if (std::none_of(endings.begin(), endings.end(), [&](std::string_view ending) { return path.ends_with(ending); })) {
    throw UsageError(fmt::format("{}: '{}' must end in {} (or be - for the terminal)", option, printable(path, 200),
                                 fmt::join(endings, " or ")));
  }
  // Checked without creating anything, so a run that fails later leaves no empty file behind. What
  // the path names (through any symlink) must be a regular file, or nothing yet in a writable
  // directory: a directory, a device (/dev/full, a terminal) or a pipe is not a place for a picture or a trace.
  namespace fs = std::filesystem;
  const fs::path file(path);
  std::error_code error;
  const fs::file_status status = fs::status(file, error);
  if (fs::exists(status)) {
    if (!fs::is_regular_file(status)) {
      throw UsageError(fmt::format("{}: '{}' is {}, not a file it can write to", option, printable(path, 200),
                                   fs::is_directory(status) ? "a directory" : "a device, pipe or socket"));
    }
    if (::access(path.c_str(), W_OK) != 0) {
      throw UsageError(fmt::format("{}: cannot write '{}': {}", option, printable(path, 200), std::strerror(errno)));
    }
    return;
  }
  const fs::path directory = file.has_parent_path() ? file.parent_path() : ".";
  if (!fs::is_directory(directory, error) || ::access(directory.c_str(), W_OK | X_OK) != 0) {
    throw UsageError(fmt::format("{}: cannot create '{}': {} is not a writable directory", option, printable(path, 200),
                                 printable(directory.string(), 200)));
  }
}

}  // namespace mpdemo::cli
