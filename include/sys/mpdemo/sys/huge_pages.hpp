// HugePages: whether this kernel backs private and shared memory with 2 MiB pages, the one call that
// asks for them, and the tmpfs of mpdemo's own that gets them for shared memory where the system's
// shared memory gets none.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace mpdemo {

/// Transparent huge pages (2 MiB on x86-64) as this kernel offers them: the words in brackets in
/// /sys/kernel/mm/transparent_hugepage/enabled (private memory: the loops' vectors) and shmem_enabled
/// (shared memory: every pool's arena, an anonymous shared mapping). Since Linux 6.8 (private) and
/// 6.11 (shared) each size has its own setting too, in hugepages-2048kB/ for the 2 MiB size, which
/// decides unless it says "inherit" (size_setting_decides). They decide how many page faults a fresh
/// array costs (one per 2 MiB or one per 4 KiB), and, on a VM that shadows page tables, what it costs
/// to wake a worker that slept while mapping gigabytes. System-wide settings, root's to change.
struct HugePages {
  static constexpr const char* kPrivateSettingFile = "/sys/kernel/mm/transparent_hugepage/enabled";
  static constexpr const char* kSharedSettingFile = "/sys/kernel/mm/transparent_hugepage/shmem_enabled";
  static constexpr const char* kPrivateSizeSettingFile = "/sys/kernel/mm/transparent_hugepage/hugepages-2048kB/enabled";
  static constexpr const char* kSharedSizeSettingFile =
      "/sys/kernel/mm/transparent_hugepage/hugepages-2048kB/shmem_enabled";
  /// What decides for 2 MiB pages of private memory: "always", "madvise" or "never"; empty where the
  /// file is missing (no transparent huge pages).
  std::string private_setting;
  /// The same for shared memory: "always", "within_size", "advise", "never", "deny" or "force"; empty
  /// where the file is missing.
  std::string shared_setting;
  /// The files those words were read from: the size's own where it does not say "inherit".
  std::string private_setting_file = kPrivateSettingFile;
  std::string shared_setting_file = kSharedSettingFile;
  /// Whether the pools' arenas take their pages from mpdemo's own tmpfs (own_tmpfs()), because the
  /// system's shared memory gets no huge pages and that tmpfs could be made.
  bool own_tmpfs = false;
  /// Why not, where the system's shared memory gets no huge pages and own_tmpfs is false: "mpdemo could
  /// not make its own tmpfs: ..." or "mpdemo's own tmpfs is turned off (MPDEMO_OWN_TMPFS=0)".
  std::string own_tmpfs_failure{};

  /// Whether memory that asks (ask_for_huge_pages) gets huge pages where it covers whole 2 MiB spans.
  bool private_offered() const noexcept;
  bool shared_offered() const noexcept;
  /// Whether the pools' arenas get huge pages: from the system's shared memory, or from own_tmpfs.
  bool arena_huge() const noexcept { return shared_offered() || own_tmpfs; }
};
/// A transparent huge page on x86-64, the size mpdemo asks for and aligns to.
inline constexpr std::size_t kHugePageBytes = std::size_t{2} << 20;

/// Reads both settings now; where shared memory gets no huge pages, makes own_tmpfs() (once per process)
/// unless MPDEMO_OWN_TMPFS=0, and says whether the arenas use it.
HugePages huge_pages();

/// Set to 0, the arenas never use own_tmpfs(): their pages are the system's anonymous shared memory, as
/// shmem_enabled says (how to compare the two on one machine).
inline constexpr const char* kOwnTmpfsVariable = "MPDEMO_OWN_TMPFS";

/// A tmpfs of mpdemo's own, mounted with huge=always and attached nowhere (fsopen/fsmount, Linux 5.2):
/// shmem_enabled governs only the kernel's internal mount, behind anonymous shared memory, while a
/// tmpfs's own huge= option is its mounter's choice. Nobody needs root for it: a short-lived child
/// enters a user and a mount namespace of its own (unprivileged, where the kernel allows user
/// namespaces, as Debian's does), makes the mount and hands its root back over a socket; then it exits,
/// and the namespaces with it. Nothing is visible in any mount table, and the memory returns to the
/// system when the last mapping of it goes. Changes no system setting; shmem_enabled=deny still wins.
struct OwnTmpfs {
  int root = -1;        ///< the mount's root (close-on-exec; mpdemo's: never close it), or -1 if none was made
  std::string failure;  ///< what failed, where root is -1 ("unshare(CLONE_NEWUSER | CLONE_NEWNS): ...")
};
/// Made on first call, once per process (about a fork's cost), then kept, and made again if its root
/// descriptor has gone since (spawn closes every descriptor in its children; a daemon may close them
/// too). A failure is not retried. Returns a copy: another thread may make it again meanwhile.
OwnTmpfs own_tmpfs();
/// The selected word of a transparent_hugepage setting file's text ("always [advise] never" gives
/// "advise"); empty if no word is in brackets.
std::string selected_setting(std::string_view text);
/// Whether the selected word of one page size's own file (`for_size`, from hugepages-<size>kB/)
/// decides for that size rather than the system-wide one: unless it is empty (no such file: an older
/// kernel) or "inherit", or the system-wide word is shmem_enabled's "deny", which refuses every size.
/// (Under shmem_enabled's "force", a size that does not inherit gets no huge pages: huge_pages() says
/// "never" for it.)
bool size_setting_decides(std::string_view system_wide, std::string_view for_size);
/// The short name of a setting file, as reports print it: "enabled", "hugepages-2048kB/shmem_enabled".
std::string setting_file_name(std::string_view path);
/// Asks the kernel to back the whole pages inside [begin, begin + bytes) with huge pages where it
/// offers them (madvise MADV_HUGEPAGE; ignored where it does not). Nothing for less than one huge
/// page, which could not hold one. The one place mpdemo asks.
void ask_for_huge_pages(void* begin, std::size_t bytes) noexcept;

/// A range of memory as madvise takes it.
struct AlignedSpan {
  void* begin = nullptr;
  std::size_t bytes = 0;  ///< 0: no whole unit inside the range
};
/// The whole `unit`-aligned units of `unit` bytes inside [begin, begin + bytes), rounded inward: what
/// madvise may act on without reaching a neighbour's part of a page. `unit` must be a power of two.
AlignedSpan whole_units_inside(const void* begin, std::size_t bytes, std::size_t unit) noexcept;

}  // namespace mpdemo
