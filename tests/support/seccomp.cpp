#include "seccomp.hpp"

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <array>
#include <cstddef>

namespace mpdemo::testing {

bool install_seccomp_filter(std::initializer_list<SyscallRule> rules) noexcept {
#if defined(__x86_64__)
  constexpr std::uint32_t kArch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
  constexpr std::uint32_t kArch = AUDIT_ARCH_AARCH64;
#else
  return false;
#endif
#if defined(__x86_64__) || defined(__aarch64__)
  // Little-endian: an argument's low 32 bits come first.
  constexpr auto argument_low = [](int argument) {
    return static_cast<std::uint32_t>(offsetof(seccomp_data, args) +
                                      sizeof(std::uint64_t) * static_cast<std::size_t>(argument));
  };
  std::array<sock_filter, 64> filter{};
  std::size_t size = 0;
  const auto add = [&](sock_filter instruction) {
    if (size < filter.size()) filter[size] = instruction;
    ++size;
  };
  add(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)));
  add(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kArch, 1, 0));
  add(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));  // another architecture's calls: not the test's
  for (const SyscallRule& rule : rules) {
    if (rule.argument < -1 || rule.argument > 5) return false;  // a system call has six arguments
    const bool by_argument = rule.argument >= 0;
    // Each test that fails jumps past the rest of this rule, to the next one's first instruction.
    const std::uint8_t rest_of_rule = by_argument ? 3 : 1;
    add(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)));
    add(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<std::uint32_t>(rule.number), 0, rest_of_rule));
    if (by_argument) {
      add(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, argument_low(rule.argument)));
      add(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, rule.value, 0, 1));
    }
    add(BPF_STMT(BPF_RET | BPF_K, rule.action));
  }
  add(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
  if (size > filter.size()) return false;
  const sock_fprog program{static_cast<unsigned short>(size), filter.data()};
  return ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 && ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) == 0;
#endif
}

}  // namespace mpdemo::testing
