// SharedMapping: memory a process maps before it forks, so that its children see the same pages at the
// same address; in 2 MiB pages where the system or mpdemo's own tmpfs (huge_pages.hpp) gives them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace mpdemo {

/// Where a SharedMapping's pages come from.
enum class SharedMemorySource {
  anonymous,  ///< mmap(MAP_SHARED | MAP_ANONYMOUS): the kernel's internal tmpfs, pages as shmem_enabled says
  own_tmpfs,  ///< an unnamed file (O_TMPFILE) on own_tmpfs(), mounted with huge=always
};
/// "anonymous shared memory", "mpdemo's own tmpfs".
std::string_view describe(SharedMemorySource source) noexcept;

/// Owns one shared mapping (munmap on destruction). Move-only.
class SharedMapping {
 public:
  /// Maps `bytes` of zero-filled shared memory: from own_tmpfs() where huge_pages() says the arenas use
  /// it (and anonymous shared memory if that fails), anonymous shared memory otherwise. Throws
  /// std::system_error naming the size and the limit that was hit if the kernel refuses.
  explicit SharedMapping(std::size_t bytes);
  /// The same, from the source given (own_tmpfs with no tmpfs made throws).
  SharedMapping(std::size_t bytes, SharedMemorySource source);
  SharedMapping(SharedMapping&& other) noexcept;
  SharedMapping& operator=(SharedMapping&& other) noexcept;
  SharedMapping(const SharedMapping&) = delete;
  SharedMapping& operator=(const SharedMapping&) = delete;
  ~SharedMapping();

  void* address() const noexcept { return address_; }
  std::size_t size() const noexcept { return size_; }
  SharedMemorySource source() const noexcept { return source_; }
  /// Which shared mapping of this process this is, counting from 0 in the order they were made: a
  /// process forked when shared_mappings_made() was larger has it too (ForkServer).
  std::uint64_t number() const noexcept { return number_; }

 private:
  void* address_ = nullptr;
  std::size_t size_ = 0;
  SharedMemorySource source_ = SharedMemorySource::anonymous;
  std::uint64_t number_ = 0;
};

/// How many SharedMappings this process has made so far (each counted once its memory is mapped).
std::uint64_t shared_mappings_made() noexcept;

}  // namespace mpdemo
