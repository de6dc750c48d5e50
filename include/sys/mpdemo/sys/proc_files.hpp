// ProcFields and ProcStat: what the kernel's files under /proc say of this machine, of a process and
// of a thread, read in one place: the reports name the CPU (/proc/cpuinfo), the command line asks how
// much memory is left (/proc/meminfo, VmSize under ulimit -v), the benchmark counts a worker's page
// faults and the master's peak memory, and the tests check a worker's parent, state, CPU time,
// context switches and signal handlers.
#pragma once

#include <sys/types.h>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace mpdemo {

/// A /proc file of "Key: value" lines (proc(5)): /proc/PID/status, /proc/PID/task/TID/status,
/// /proc/meminfo, /proc/cpuinfo. Each line's key (without its colon, and without the blanks that pad
/// it in /proc/cpuinfo) maps to the rest of the line, leading blanks trimmed: "Threads" to "1",
/// "VmHWM" to "1234 kB", "SigCgt" to "0000000000004a02". A key that repeats keeps its first value:
/// /proc/cpuinfo's first processor's.
class ProcFields {
 public:
  /// The fields of `file`; nullopt if it cannot be opened (errno says why), as when the process it
  /// describes has ended and been reaped.
  static std::optional<ProcFields> read(const std::filesystem::path& file);
  /// /proc/PID/status.
  static std::optional<ProcFields> status_of(pid_t pid);

  /// The field's text; nullopt if the file has no such key.
  std::optional<std::string_view> text(std::string_view key) const;
  /// The decimal number the field begins with ("Threads", "voluntary_ctxt_switches", the real uid of
  /// "Uid"); nullopt if there is no such key or it does not begin with a number.
  std::optional<std::uint64_t> number(std::string_view key) const;
  /// A size field in bytes: the kernel writes sizes in kB ("VmSize", "VmHWM", "MemAvailable"), which
  /// are KiB; a field without a unit is taken as bytes. nullopt as for number().
  std::optional<std::uint64_t> bytes(std::string_view key) const;

 private:
  std::map<std::string, std::string, std::less<>> fields_;
};

/// The fields of a /proc/PID/stat or /proc/PID/task/TID/stat line that mpdemo reads (proc(5) numbers
/// them from 1; the command's name, field 2, is skipped: it may hold spaces and parentheses).
struct ProcStat {
  char state = 0;                  ///< field 3: 'R' running, 'S' sleeping, 'Z' dead and not yet reaped, ...
  pid_t parent = 0;                ///< field 4
  std::uint64_t minor_faults = 0;  ///< field 10: page faults served without reading a disk
  std::uint64_t user_ticks = 0;    ///< field 14: CPU time in user space, in clock ticks (sysconf(_SC_CLK_TCK))
  std::uint64_t system_ticks = 0;  ///< field 15: CPU time in the kernel, in clock ticks

  /// user_ticks + system_ticks, in seconds.
  double cpu_seconds() const noexcept;

  /// The line of `file`; nullopt if it cannot be read or is not a stat line (the task has been reaped).
  static std::optional<ProcStat> read(const std::filesystem::path& file);
  /// /proc/PID/stat.
  static std::optional<ProcStat> of(pid_t pid);
};

}  // namespace mpdemo
