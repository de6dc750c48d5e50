// Seccomp filters for tests: make a system call fail, or kill the process that makes it, as a
// container's filter, a kernel without the call or a failing kernel would, so that the code's answer
// to that failure runs for real.
#pragma once

#include <cstdint>
#include <initializer_list>

namespace mpdemo::testing {

/// A rule of a seccomp filter: what the kernel does (`action`, a SECCOMP_RET_* value, with an errno in
/// its low bits for SECCOMP_RET_ERRNO) when this process calls `number` (a SYS_* number), or only
/// when also its argument `argument` (0-5) is `value` in its low 32 bits.
struct SyscallRule {
  long number = -1;
  std::uint32_t action = 0;
  int argument = -1;  ///< -1: every call of `number`
  std::uint32_t value = 0;
};

/// Installs a filter of `rules` on the calling thread and every process it makes from now on, for
/// good: call it in a single-threaded child made for the purpose. The first rule that matches
/// decides; every other call, and every call of another architecture, is allowed. Allocates nothing,
/// so it is safe in a forked child. Returns whether it took (false where seccomp is missing or
/// refused, for an argument outside 0-5, or on an architecture other than x86-64 and arm64).
bool install_seccomp_filter(std::initializer_list<SyscallRule> rules) noexcept;

}  // namespace mpdemo::testing
