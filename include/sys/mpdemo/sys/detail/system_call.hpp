// Internal to mpdemo (not installed): one way to report a failed system call, and to retry one that
// a signal interrupted. Used by every layer's sources; no public header includes it.
#pragma once

#include <cerrno>
#include <string_view>

namespace mpdemo {

/// Throws std::system_error for the current errno, saying what was being done ("fork a worker").
[[noreturn]] void throw_errno(std::string_view doing);

/// throw_errno, with limit_hint (errors.hpp) appended when the error means a resource limit was hit.
[[noreturn]] void throw_errno_with_limits(std::string_view doing);

/// For calls that *return* an error number instead of setting errno (pthread_*, posix_*).
void check_error_number(int error_number, std::string_view doing);

/// Runs a system call again while it fails with EINTR (never use it for close()).
template <class Call>
auto retry_on_eintr(Call call) {
  for (;;) {
    auto result = call();
    if (result != -1 || errno != EINTR) return result;
  }
}

}  // namespace mpdemo
