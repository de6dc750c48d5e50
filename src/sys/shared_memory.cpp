#include "mpdemo/sys/shared_memory.hpp"

#include "mpdemo/sys/errors.hpp"
#include "mpdemo/sys/fd.hpp"
#include "mpdemo/sys/huge_pages.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <optional>
#include <system_error>
#include <utility>

namespace mpdemo {

namespace {

[[noreturn]] void throw_mapping_error(std::size_t bytes, SharedMemorySource source, std::string_view step) {
  const int error = errno;
  const std::string hint = limit_hint(error);
  throw std::system_error(error, std::system_category(),
                          fmt::format("reserve {} bytes of shared memory ({}: {}){}", bytes, describe(source), step,
                                      hint.empty() ? "" : fmt::format(" ({})", hint)));
}

void* map_source(std::size_t bytes, SharedMemorySource source) {
  if (source == SharedMemorySource::anonymous) {
    void* mapped = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mapped == MAP_FAILED) throw_mapping_error(bytes, source, "mmap");
    return mapped;
  }
  const OwnTmpfs tmpfs = own_tmpfs();
  if (tmpfs.root < 0) {
    throw std::system_error(
        std::make_error_code(std::errc::operation_not_supported),
        fmt::format("reserve {} bytes of shared memory from mpdemo's own tmpfs: {}", bytes, tmpfs.failure));
  }
  // An unnamed file: nothing to clean up after a crash; the mapping keeps it alive once it is closed.
  const FileDescriptor file = FileDescriptor::adopt(::openat(tmpfs.root, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
  if (!file) throw_mapping_error(bytes, source, "open an unnamed file");
  // A file larger than the file-size limit (ulimit -f) would be SIGXFSZ, which kills, not an error.
  if (const std::optional<std::uint64_t> limit = soft_limit(RLIMIT_FSIZE); limit && bytes > *limit) {
    errno = EFBIG;
    throw_mapping_error(bytes, source, fmt::format("larger than the file-size limit (ulimit -f: {} bytes)", *limit));
  }
  if (::ftruncate(file.get(), static_cast<off_t>(bytes)) != 0) throw_mapping_error(bytes, source, "ftruncate");
  void* mapped = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, file.get(), 0);
  if (mapped == MAP_FAILED) throw_mapping_error(bytes, source, "mmap");
  return mapped;
}

// Counted after each mapping is made: a number below the count read before a fork is in the child.
std::atomic<std::uint64_t> g_mappings_made{0};

}  // namespace

std::uint64_t shared_mappings_made() noexcept { return g_mappings_made.load(); }

std::string_view describe(SharedMemorySource source) noexcept {
  return source == SharedMemorySource::own_tmpfs ? "mpdemo's own tmpfs" : "anonymous shared memory";
}

SharedMapping::SharedMapping(std::size_t bytes, SharedMemorySource source)
    : address_(map_source(bytes, source)), size_(bytes), source_(source), number_(g_mappings_made.fetch_add(1)) {}

SharedMapping::SharedMapping(std::size_t bytes) : size_(bytes) {
  if (huge_pages().own_tmpfs) {
    try {
      address_ = map_source(bytes, SharedMemorySource::own_tmpfs);
      source_ = SharedMemorySource::own_tmpfs;
      number_ = g_mappings_made.fetch_add(1);
      return;
    } catch (const std::system_error&) {
      // The system's shared memory still works, in its own page size.
    }
  }
  address_ = map_source(bytes, SharedMemorySource::anonymous);
  number_ = g_mappings_made.fetch_add(1);
}

SharedMapping::SharedMapping(SharedMapping&& other) noexcept
    : address_(std::exchange(other.address_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      source_(other.source_),
      number_(other.number_) {}

SharedMapping& SharedMapping::operator=(SharedMapping&& other) noexcept {
  if (this != &other) {
    if (address_ != nullptr) ::munmap(address_, size_);
    address_ = std::exchange(other.address_, nullptr);
    size_ = std::exchange(other.size_, 0);
    source_ = other.source_;
    number_ = other.number_;
  }
  return *this;
}

SharedMapping::~SharedMapping() {
  if (address_ != nullptr) ::munmap(address_, size_);
}

}  // namespace mpdemo
