#include "mpdemo/sys/errors.hpp"
#include "mpdemo/sys/detail/system_call.hpp"

#include <fmt/format.h>
#include <sys/resource.h>

namespace mpdemo {

void throw_errno(std::string_view doing) { throw std::system_error(errno, std::system_category(), std::string(doing)); }

void check_error_number(int error_number, std::string_view doing) {
  if (error_number != 0) throw std::system_error(error_number, std::system_category(), std::string(doing));
}

namespace {
// The soft limit of `resource` in its own unit divided by `scale`: "1024", "unlimited".
std::string limit_value(int resource, std::uint64_t scale = 1) {
  const std::optional<std::uint64_t> limit = soft_limit(resource);
  return limit ? fmt::format("{}", *limit / scale) : std::string("unlimited");
}
}  // namespace

std::optional<std::uint64_t> soft_limit(int resource) noexcept {
  rlimit limit{};
  if (::getrlimit(resource, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return std::nullopt;
  return static_cast<std::uint64_t>(limit.rlim_cur);
}

std::string limit_hint(int error_number) {
  switch (error_number) {
    case EAGAIN:
      return fmt::format(
          "the per-user process limit was reached (ulimit -u = {}), or the system's "
          "(/proc/sys/kernel/threads-max, a cgroup's pids.max)",
          limit_value(RLIMIT_NPROC));
    case EMFILE:
      return fmt::format("this process's open-file limit was reached (ulimit -n = {})", limit_value(RLIMIT_NOFILE));
    case ENFILE:
      return "the system's open-file limit was reached (/proc/sys/fs/file-max)";
    case ENOMEM:
      return fmt::format("out of memory, or over this process's address-space limit (ulimit -v = {})",
                         limit_value(RLIMIT_AS, 1024));
    default:
      return {};
  }
}

void throw_errno_with_limits(std::string_view doing) {
  const int error = errno;
  const std::string hint = limit_hint(error);
  throw std::system_error(error, std::system_category(),
                          hint.empty() ? std::string(doing) : fmt::format("{} ({})", doing, hint));
}

WorkerError::WorkerError(std::size_t worker, pid_t pid, std::size_t chunk_begin, std::size_t chunk_end,
                         std::string cause, bool in_caller)
    : Error(fmt::format("{} failed on elements [{}, {}): {}",
                        in_caller ? fmt::format("the caller (pid {}), computing its share,", pid)
                                  : fmt::format("worker {} (pid {})", worker, pid),
                        chunk_begin, chunk_end, cause)),
      worker_(worker),
      pid_(pid),
      chunk_begin_(chunk_begin),
      chunk_end_(chunk_end),
      cause_(std::move(cause)),
      in_caller_(in_caller) {}

}  // namespace mpdemo
