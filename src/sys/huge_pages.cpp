#include "mpdemo/sys/huge_pages.hpp"

#include "mpdemo/sys/detail/system_call.hpp"
#include "mpdemo/sys/fd.hpp"
#include "mpdemo/sys/spawn.hpp"
#include "mpdemo/sys/topology.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/magic.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/time.h>
#include <unistd.h>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <system_error>
#include <utility>

namespace mpdemo {

std::string selected_setting(std::string_view text) {
  const std::size_t open = text.find('[');
  const std::size_t close = open == std::string_view::npos ? open : text.find(']', open);
  if (close == std::string_view::npos) return {};
  return std::string(text.substr(open + 1, close - open - 1));
}

bool size_setting_decides(std::string_view system_wide, std::string_view for_size) {
  if (system_wide == "deny") return false;
  return !for_size.empty() && for_size != "inherit";
}

std::string setting_file_name(std::string_view path) {
  constexpr std::string_view kDirectory = "/sys/kernel/mm/transparent_hugepage/";
  if (path.starts_with(kDirectory)) path.remove_prefix(kDirectory.size());
  return std::string(path);
}

bool HugePages::private_offered() const noexcept { return private_setting == "always" || private_setting == "madvise"; }

bool HugePages::shared_offered() const noexcept {
  // "within_size" counts: an anonymous shared mapping's size is its whole length. "deny" and "never"
  // refuse; "force" gives them even unasked.
  return shared_setting == "always" || shared_setting == "within_size" || shared_setting == "advise" ||
         shared_setting == "force";
}

namespace {
std::string setting_in(const char* path) {
  std::ifstream file(path);
  std::string line;
  std::getline(file, line);
  return selected_setting(line);
}
}  // namespace

HugePages huge_pages() {
  HugePages pages{.private_setting = setting_in(HugePages::kPrivateSettingFile),
                  .shared_setting = setting_in(HugePages::kSharedSettingFile)};
  // The 2 MiB size's own settings (Linux 6.8 and 6.11), where they exist and say more than "inherit".
  if (std::string own = setting_in(HugePages::kPrivateSizeSettingFile);
      size_setting_decides(pages.private_setting, own)) {
    pages.private_setting = std::move(own);
    pages.private_setting_file = HugePages::kPrivateSizeSettingFile;
  }
  if (std::string own = setting_in(HugePages::kSharedSizeSettingFile);
      size_setting_decides(pages.shared_setting, own)) {
    // Under "force" the kernel gives anonymous shared memory huge pages only in the sizes that say
    // "inherit" (mm/shmem.c, shmem_allowable_huge_orders): whatever else this size says, it gets none.
    pages.shared_setting = pages.shared_setting == "force" ? "never" : std::move(own);
    pages.shared_setting_file = HugePages::kSharedSizeSettingFile;
  }
  // No transparent huge pages at all, or "deny" (which overrides every tmpfs's huge= too): nothing to try.
  if (pages.shared_offered() || pages.shared_setting.empty() || pages.shared_setting == "deny") return pages;
  if (const char* configured = std::getenv(kOwnTmpfsVariable);
      configured != nullptr && std::string(configured) == "0") {
    pages.own_tmpfs_failure = fmt::format("mpdemo's own tmpfs is turned off ({}=0)", kOwnTmpfsVariable);
    return pages;
  }
  if (std::ifstream policy("/proc/sys/vm/overcommit_memory"); policy && policy.get() == '2') {
    // A tmpfs file's pages are committed one by one as they are touched, and the one past the limit
    // would be a SIGBUS in whichever process touched it; anonymous shared memory is committed, or
    // refused, when it is mapped, which the arena can answer by asking for less.
    pages.own_tmpfs_failure =
        "mpdemo's own tmpfs is not used under strict overcommit (vm.overcommit_memory=2): its pages would be "
        "committed only when touched";
    return pages;
  }
  const OwnTmpfs tmpfs = own_tmpfs();
  pages.own_tmpfs = tmpfs.root >= 0;
  if (!pages.own_tmpfs) pages.own_tmpfs_failure = "mpdemo could not make its own tmpfs: " + tmpfs.failure;
  return pages;
}

namespace {

// What the helper sends back: the step that failed and its errno, or {kMade, 0} with the mount's root
// attached (SCM_RIGHTS).
struct HelperReport {
  int step;
  int error;
};
enum HelperStep : int { kMade, kNamespaces, kIdMaps, kFsopen, kHugeOption, kCreate, kFsmount, kSend };

// One HelperReport, with room for one descriptor beside it; the same on both ends of the socket.
struct ReportMessage {
  HelperReport report{kSend, 0};
  iovec payload{&report, sizeof(report)};
  alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(int))> control{};
  msghdr header{};
  ReportMessage() noexcept {
    header.msg_iov = &payload;
    header.msg_iovlen = 1;
    header.msg_control = control.data();
    header.msg_controllen = control.size();
  }
  ReportMessage(const ReportMessage&) = delete;  // points into itself
  ReportMessage& operator=(const ReportMessage&) = delete;
};

const char* step_text(int step) {
  switch (step) {
    case kNamespaces:
      return "unshare(CLONE_NEWUSER | CLONE_NEWNS), then unshare(CLONE_NEWNS)";
    case kIdMaps:
      return "map this user's ids into a new user namespace";
    case kFsopen:
      return "fsopen(\"tmpfs\")";
    case kHugeOption:
      return "set the tmpfs options huge=always, size=0, mode=0700";
    case kCreate:
      return "create the tmpfs";
    case kFsmount:
      return "fsmount the tmpfs";
    case kSend:
      return "hand the tmpfs back";
    default:
      return "the helper's answer";
  }
}

bool write_text(const char* path, const char* text) noexcept {
  const FileDescriptor file = FileDescriptor::adopt(::open(path, O_WRONLY | O_CLOEXEC));
  return file && write_whole(file.get(), text, std::strlen(text));
}

// The helper's body: system calls only (spawn.hpp). The id maps make this user own the tmpfs's files
// inside the new user namespace as outside; without them the kernel refuses to create any
// (EOVERFLOW). Root where user namespaces are refused still has CLONE_NEWNS alone.
HelperReport make_tmpfs_in_new_namespaces(int socket, const char* uid_map, const char* gid_map) noexcept {
  const bool own_user_namespace = ::unshare(CLONE_NEWUSER | CLONE_NEWNS) == 0;
  if (!own_user_namespace) {
    const int user_namespace_error = errno;
    if (::unshare(CLONE_NEWNS) != 0) return {kNamespaces, user_namespace_error};
  } else if (!write_text("/proc/self/setgroups", "deny") || !write_text("/proc/self/uid_map", uid_map) ||
             !write_text("/proc/self/gid_map", gid_map)) {
    return {kIdMaps, errno};
  }
  const FileDescriptor context = FileDescriptor::adopt(::fsopen("tmpfs", FSOPEN_CLOEXEC));
  if (!context) return {kFsopen, errno};
  // size 0: no limit of the tmpfs's own, as the kernel's internal one has none; the memory is the
  // arena's, limited as any process's memory is.
  if (::fsconfig(context.get(), FSCONFIG_SET_STRING, "huge", "always", 0) != 0 ||
      ::fsconfig(context.get(), FSCONFIG_SET_STRING, "size", "0", 0) != 0 ||
      ::fsconfig(context.get(), FSCONFIG_SET_STRING, "mode", "0700", 0) != 0) {
    return {kHugeOption, errno};
  }
  if (::fsconfig(context.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) != 0) return {kCreate, errno};
  const FileDescriptor root = FileDescriptor::adopt(
      ::fsmount(context.get(), FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC));
  if (!root) return {kFsmount, errno};

  ReportMessage message;
  message.report = {kMade, 0};
  cmsghdr* header = CMSG_FIRSTHDR(&message.header);
  header->cmsg_level = SOL_SOCKET;
  header->cmsg_type = SCM_RIGHTS;
  header->cmsg_len = CMSG_LEN(sizeof(int));
  const int descriptor = root.get();
  std::memcpy(CMSG_DATA(header), &descriptor, sizeof(descriptor));
  if (::sendmsg(socket, &message.header, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof(HelperReport))) {
    return {kSend, errno};
  }
  return message.report;
}

OwnTmpfs make_own_tmpfs() {
  OwnTmpfs tmpfs;
  try {
    std::array<int, 2> ends{};
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ends.data()) != 0) {
      tmpfs.failure = fmt::format("socketpair: {}", std::strerror(errno));
      return tmpfs;
    }
    const FileDescriptor ours = FileDescriptor::adopt(ends[0]);
    FileDescriptor theirs = FileDescriptor::adopt(ends[1]);
    // Formatted before fork: the child makes system calls only.
    // The effective ids: the ones files are created with, and the only ones an unprivileged process
    // may map.
    const std::string uid_map = fmt::format("{0} {0} 1", ::geteuid());
    const std::string gid_map = fmt::format("{0} {0} 1", ::getegid());
    SpawnOptions options;
    options.keep_descriptors = {theirs.get()};
    ChildProcess helper = spawn("the helper that makes mpdemo's tmpfs", options, [&]() noexcept {
      const HelperReport report = make_tmpfs_in_new_namespaces(theirs.get(), uid_map.c_str(), gid_map.c_str());
      if (report.step != kMade) write_whole(theirs.get(), &report, sizeof(report));
      return report.step;
    });
    theirs.reset();

    // A helper that hangs must not hang the program (it takes about a fork's time): give up after 2 s.
    const timeval patience{2, 0};
    ::setsockopt(ours.get(), SOL_SOCKET, SO_RCVTIMEO, &patience, sizeof(patience));
    ReportMessage message;
    const HelperReport& report = message.report;
    const ssize_t received = retry_on_eintr([&] { return ::recvmsg(ours.get(), &message.header, MSG_CMSG_CLOEXEC); });
    const int receive_error = errno;
    const ExitStatus ended = helper.wait_or_kill(std::chrono::seconds(1));
    // Whatever descriptor arrived is ours to close unless it is the tmpfs's root.
    FileDescriptor root;
    if (const cmsghdr* header = CMSG_FIRSTHDR(&message.header);
        received > 0 && header != nullptr && header->cmsg_level == SOL_SOCKET && header->cmsg_type == SCM_RIGHTS &&
        header->cmsg_len == CMSG_LEN(sizeof(int))) {
      int descriptor = -1;
      std::memcpy(&descriptor, CMSG_DATA(header), sizeof(int));
      root = FileDescriptor::adopt(descriptor);
    }
    struct statfs filesystem {};
    if (received == static_cast<ssize_t>(sizeof(report)) && report.step == kMade && root &&
        ::fstatfs(root.get(), &filesystem) == 0 && filesystem.f_type == TMPFS_MAGIC) {
      tmpfs.root = root.release();
    } else if ((message.header.msg_flags & MSG_CTRUNC) != 0) {
      tmpfs.failure = "receive the tmpfs's root: the descriptor was refused (at the open-files limit?)";
    } else if (received == static_cast<ssize_t>(sizeof(report)) && report.step != kMade) {
      tmpfs.failure = fmt::format("{}: {}", step_text(report.step), std::strerror(report.error));
    } else if (received < 0 && (receive_error == EAGAIN || receive_error == EWOULDBLOCK)) {
      tmpfs.failure = fmt::format("the helper gave no answer within 2 s ({})", ended.str());
    } else {
      tmpfs.failure = fmt::format("the helper's answer was not a tmpfs ({}; the helper: {})",
                                  received < 0 ? std::strerror(receive_error)
                                  : root       ? "a descriptor of something else"
                                               : "no descriptor",
                                  ended.str());
    }
  } catch (const std::exception& e) {  // fork refused: the arena still has the system's shared memory
    tmpfs.failure = e.what();
  }
  return tmpfs;
}

}  // namespace

namespace {
// The tmpfs this process holds, and what its root descriptor is, to tell it from a number reused since.
struct MadeTmpfs {
  OwnTmpfs tmpfs;
  bool tried = false;
  dev_t device = 0;
  ino_t inode = 0;
};

bool still_open(const MadeTmpfs& made) noexcept {
  struct stat now {};
  return ::fstat(made.tmpfs.root, &now) == 0 && now.st_dev == made.device && now.st_ino == made.inode;
}
}  // namespace

OwnTmpfs own_tmpfs() {
  // Once per process, and checked on every call (one fstat): spawn closes every descriptor in its
  // children, and a program may close descriptors it did not open (a daemon does), after which the
  // number could name another directory. Made again then; a failure is not retried, in children either.
  // (A thread making it while another forks leaves the mutex locked in that child: only a child that
  // then asks again would wait.)
  static std::mutex creation;
  static MadeTmpfs made;
  const std::lock_guard lock(creation);
  if (!made.tried || (made.tmpfs.root >= 0 && !still_open(made))) {
    made = MadeTmpfs{make_own_tmpfs(), true};
    struct stat root {};
    if (made.tmpfs.root >= 0 && ::fstat(made.tmpfs.root, &root) == 0) {
      made.device = root.st_dev;
      made.inode = root.st_ino;
    } else if (made.tmpfs.root >= 0) {  // unrecognisable later: give it up now rather than leak it then
      made.tmpfs.failure = fmt::format("fstat the tmpfs's root: {}", std::strerror(errno));
      ::close(made.tmpfs.root);
      made.tmpfs.root = -1;
    }
  }
  return made.tmpfs;  // a copy, made under the lock: another thread may make it again
}

void ask_for_huge_pages(void* begin, std::size_t bytes) noexcept {
  if (bytes < kHugePageBytes) return;
  // madvise wants a page-aligned start: the whole pages inside the range.
  const AlignedSpan pages = whole_units_inside(begin, bytes, page_size());
  if (pages.bytes > 0) ::madvise(pages.begin, pages.bytes, MADV_HUGEPAGE);
}

AlignedSpan whole_units_inside(const void* begin, std::size_t bytes, std::size_t unit) noexcept {
  const auto start = reinterpret_cast<std::uintptr_t>(begin);
  const std::uintptr_t first = (start + unit - 1) & ~(std::uintptr_t{unit} - 1);
  const std::uintptr_t last = (start + bytes) & ~(std::uintptr_t{unit} - 1);
  if (last <= first) return {};
  return {reinterpret_cast<void*>(first), last - first};
}

}  // namespace mpdemo
