#include "mpdemo/sys/proc_files.hpp"

#include <unistd.h>
#include <charconv>
#include <fstream>
#include <sstream>

namespace mpdemo {

namespace {

std::filesystem::path proc_file(pid_t pid, const char* name) {
  return std::filesystem::path("/proc") / std::to_string(pid) / name;
}

// The decimal number `text` begins with, and the rest of `text` after it.
std::optional<std::uint64_t> leading_number(std::string_view text, std::string_view* rest = nullptr) {
  std::uint64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc{}) return std::nullopt;
  if (rest != nullptr) *rest = text.substr(static_cast<std::size_t>(end - text.data()));
  return value;
}

}  // namespace

std::optional<ProcFields> ProcFields::read(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) return std::nullopt;
  ProcFields fields;
  for (std::string line; std::getline(in, line);) {
    const std::size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string_view key = std::string_view(line).substr(0, colon);
    key = key.substr(0, key.find_last_not_of(" \t") + 1);  // /proc/cpuinfo pads its keys with tabs
    const std::size_t value = line.find_first_not_of(" \t", colon + 1);
    // The first of a repeated key: /proc/cpuinfo repeats its fields for every processor.
    fields.fields_.try_emplace(std::string(key), value == std::string::npos ? "" : line.substr(value));
  }
  return fields;
}

std::optional<ProcFields> ProcFields::status_of(pid_t pid) { return read(proc_file(pid, "status")); }

std::optional<std::string_view> ProcFields::text(std::string_view key) const {
  const auto field = fields_.find(key);
  if (field == fields_.end()) return std::nullopt;
  return std::string_view(field->second);
}

std::optional<std::uint64_t> ProcFields::number(std::string_view key) const {
  const std::optional<std::string_view> value = text(key);
  return value ? leading_number(*value) : std::nullopt;
}

std::optional<std::uint64_t> ProcFields::bytes(std::string_view key) const {
  const std::optional<std::string_view> value = text(key);
  if (!value) return std::nullopt;
  std::string_view unit;
  const std::optional<std::uint64_t> count = leading_number(*value, &unit);
  if (!count) return std::nullopt;
  return unit.find("kB") != std::string_view::npos ? *count * 1024 : *count;
}

double ProcStat::cpu_seconds() const noexcept {
  return static_cast<double>(user_ticks + system_ticks) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

std::optional<ProcStat> ProcStat::read(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  const std::size_t name_end = line.rfind(')');  // the name may hold spaces and parentheses
  if (name_end == std::string::npos) return std::nullopt;
  std::istringstream fields(line.substr(name_end + 1));
  ProcStat stat;
  long long skipped = 0;  // tpgid is -1 for a process without a controlling terminal
  fields >> stat.state >> stat.parent;
  for (int field = 5; field <= 9; ++field) fields >> skipped;  // pgrp session tty_nr tpgid flags
  fields >> stat.minor_faults;
  for (int field = 11; field <= 13; ++field) fields >> skipped;  // cminflt majflt cmajflt
  fields >> stat.user_ticks >> stat.system_ticks;
  if (!fields) return std::nullopt;
  return stat;
}

std::optional<ProcStat> ProcStat::of(pid_t pid) { return read(proc_file(pid, "stat")); }

}  // namespace mpdemo
