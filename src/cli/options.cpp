#include "options.hpp"

#include "command.hpp"
#include "mpdemo/shared_arena.hpp"
#include "mpdemo/topology.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <fmt/format.h>
#include <fstream>
#include <sys/resource.h>

namespace mpdemo::cli {

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

std::size_t parse_count(const std::string& text, const std::string& option, std::size_t min, std::size_t max) {
  double value = 0;
  if (!parse_whole_number(strip_separators(text), value) || value < static_cast<double>(min) ||
      value > static_cast<double>(max)) {
    throw CLI::ValidationError(option, fmt::format("'{}' is not a whole number from {} to {}{}", text, min, max,
                                                   max >= 1'000'000 ? " (1000000, 1e6 and 10^6 are all accepted)" : ""));
  }
  return static_cast<std::size_t>(value);
}

CLI::Option* add_size_option(CLI::App& app, std::size_t& size, const std::string& description) {
  return app
      .add_option_function<std::string>(
          "--size,-n", [&size](const std::string& text) { size = parse_count(text, "--size", 0, kMaxElements); },
          description)
      ->type_name("N");
}

CLI::Option* add_workers_option(CLI::App& app, std::size_t& workers) {
  return app
      .add_option_function<std::string>(
          "--workers,-w",
          [&workers](const std::string& text) {
            workers = parse_count(text, "--workers", 1, kMaxWorkers);
            const std::size_t cpus = std::max<std::size_t>(1, system_topology().allowed_cpus.size());
            if (workers > kMaxWorkersPerCpu * cpus) {
              throw CLI::ValidationError("--workers", fmt::format("{} is more than {} per CPU this process may use "
                                                                  "({} here)",
                                                                  workers, kMaxWorkersPerCpu, kMaxWorkersPerCpu * cpus));
            }
            // Two pools may be alive at once (a warm one and a fresh one), each worker with two pipe
            // ends in the master, plus what the program itself has open.
            rlimit files{};
            if (::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur != RLIM_INFINITY &&
                4 * workers + 64 > files.rlim_cur) {
              throw CLI::ValidationError("--workers", fmt::format("{} workers need {} open files, more than this "
                                                                  "process may have (ulimit -n = {})",
                                                                  workers, 4 * workers + 64, files.rlim_cur));
            }
            rlimit processes{};
            if (::getrlimit(RLIMIT_NPROC, &processes) == 0 && processes.rlim_cur != RLIM_INFINITY &&
                workers >= processes.rlim_cur) {
              throw CLI::ValidationError("--workers", fmt::format("{} workers exceed this user's process limit "
                                                                  "(ulimit -u = {})",
                                                                  workers, processes.rlim_cur));
            }
          },
          "worker processes/threads (default: one per physical core this process may use)")
      ->type_name("W");
}

CLI::Option* add_seed_option(CLI::App& app, std::uint64_t& seed, const std::string& description) {
  return app
      .add_option_function<std::string>(
          "--seed",
          [&seed](const std::string& text) {
            const char* end = text.data() + text.size();
            const auto [stop, error] = std::from_chars(text.data(), end, seed);
            if (text.empty() || error != std::errc() || stop != end) {
              throw CLI::ValidationError("--seed", fmt::format("'{}' is not a whole number from 0 to {}", text,
                                                               UINT64_MAX));
            }
          },
          description)
      ->type_name("S");
}

CLI::Option* add_chunksize_option(CLI::App& app, std::size_t& chunksize) {
  return app
      .add_option_function<std::string>(
          "--chunksize,-c",
          [&chunksize](const std::string& text) { chunksize = parse_count(text, "--chunksize", 1, kMaxElements); },
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
              throw CLI::ValidationError("--format", fmt::format("'{}' is not one of: table, json{}", text,
                                                                 allow_csv ? ", csv" : ""));
            }
          },
          "output format (default: table)")
      ->type_name(allow_csv ? "table|json|csv" : "table|json");
}

std::size_t available_memory_bytes() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  std::size_t kib = 0;
  std::string unit;
  while (meminfo >> key >> kib >> unit) {
    if (key == "MemAvailable:") return kib * 1024;
  }
  throw std::runtime_error("cannot read MemAvailable from /proc/meminfo");
}

std::string human_bytes(double bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  std::size_t unit = 0;
  while (bytes >= 1024 && unit + 1 < std::size(kUnits)) {
    bytes /= 1024;
    ++unit;
  }
  return unit == 0 ? fmt::format("{:.0f} {}", bytes, kUnits[unit]) : fmt::format("{:.1f} {}", bytes, kUnits[unit]);
}

void require_arena_capacity(std::size_t bytes, const std::string& what) {
  const std::size_t capacity = SharedArena::process_default()->capacity();
  if (bytes > capacity) {
    throw UsageError(fmt::format("{} needs {} of shared memory at once but the pool's arena holds {} (half of "
                                 "physical memory); choose a smaller size",
                                 what, human_bytes(static_cast<double>(bytes)),
                                 human_bytes(static_cast<double>(capacity))));
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
    throw UsageError(fmt::format("{} needs {} of memory but only {} is available (MemAvailable); choose a smaller "
                                 "size",
                                 what, human_bytes(static_cast<double>(bytes)),
                                 human_bytes(static_cast<double>(available))));
  }
}

}  // namespace mpdemo::cli
