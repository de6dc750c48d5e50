// HugePages: whether this kernel backs private and shared memory with 2 MiB pages, and the one call
// that asks for them.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace mpdemo {

/// Transparent huge pages (2 MiB on x86-64) as this kernel offers them: the words in brackets in
/// /sys/kernel/mm/transparent_hugepage/enabled (private memory: the loops' vectors) and shmem_enabled
/// (shared memory: every pool's arena, an anonymous shared mapping). They decide how many page faults
/// a fresh array costs (one per 2 MiB or one per 4 KiB), and, on a VM that shadows page tables, what
/// it costs to wake a worker that slept while mapping gigabytes. System-wide settings, root's to change.
struct HugePages {
  static constexpr const char* kPrivateSettingFile = "/sys/kernel/mm/transparent_hugepage/enabled";
  static constexpr const char* kSharedSettingFile = "/sys/kernel/mm/transparent_hugepage/shmem_enabled";
  /// "always", "madvise" or "never"; empty where the file is missing (no transparent huge pages).
  std::string private_setting;
  /// "always", "within_size", "advise", "never", "deny" or "force"; empty where the file is missing.
  std::string shared_setting;
  /// Whether memory that asks (ask_for_huge_pages) gets huge pages where it covers whole 2 MiB spans.
  bool private_offered() const noexcept;
  bool shared_offered() const noexcept;
};
/// Reads both settings now.
HugePages huge_pages();
/// The selected word of a transparent_hugepage setting file's text ("always [advise] never" gives
/// "advise"); empty if no word is in brackets.
std::string selected_setting(std::string_view text);
/// Asks the kernel to back the whole pages inside [begin, begin + bytes) with huge pages where it
/// offers them (madvise MADV_HUGEPAGE; ignored where it does not). Nothing for less than one huge
/// page, which could not hold one. The one place mpdemo asks.
void ask_for_huge_pages(void* begin, std::size_t bytes) noexcept;

}  // namespace mpdemo
