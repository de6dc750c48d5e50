// SharedArena and SharedArray<T>: memory that a master and the workers it forks all see at the same
// address, so a slice is handed over as a pointer and never copied through a pipe.
#pragma once

#include "mpdemo/sys/errors.hpp"
#include "mpdemo/sys/shared_memory.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

namespace mpdemo {

/// One shared mapping (SharedMapping: anonymous shared memory, or an unnamed file on mpdemo's own tmpfs
/// where only that gives 2 MiB pages), reserved once and carved up with Boost's best-fit allocator
/// (Boost.Interprocess `managed_external_buffer`).
///
/// Why one large reservation: a mapping made before `fork` is inherited by every worker at the same
/// address, with nothing named to clean up after a crash; one made later is invisible to workers that
/// already exist. So the arena reserves address space up front (pages cost nothing until touched) and
/// every array a pool works on lives inside it. Its capacity is the limit on what one `map` can hold.
///
/// Thread-safe. Only the master allocates; workers just read and write the pages.
class SharedArena {
 public:
  /// Reserves `capacity_bytes` of shared address space. Throws std::system_error if the kernel refuses.
  explicit SharedArena(std::size_t capacity_bytes);
  ~SharedArena();
  SharedArena(const SharedArena&) = delete;
  SharedArena& operator=(const SharedArena&) = delete;

  /// The arena pools use unless given another: made on first use, capacity half of physical memory
  /// (halved again until the kernel accepts it), kept for the life of the process so that pools
  /// created later reuse pages earlier ones touched (as malloc keeps freed memory).
  static std::shared_ptr<SharedArena> process_default();
  /// What process_default() asks for first: half of physical memory, or a quarter of this process's
  /// address-space limit (ulimit -v) if that is less. (A strict overcommit policy may grant less.)
  static std::size_t default_capacity_target() noexcept;

  /// Page-aligned block of at least `bytes`; throws ArenaExhausted when it does not fit.
  void* allocate(std::size_t bytes);
  /// Returns a block. Blocks of kTrimThreshold bytes or more give their pages back to the kernel.
  void deallocate(void* block) noexcept;

  bool contains(const void* pointer, std::size_t bytes) const noexcept;
  std::size_t capacity() const noexcept;
  /// Where its pages come from (huge_pages() says which gives 2 MiB pages).
  SharedMemorySource source() const noexcept;
  /// Its mapping's SharedMapping::number(): whether a ForkServer's children have it.
  std::uint64_t mapping_number() const noexcept;
  std::size_t free_bytes() const;

  /// Freed blocks at least this large are punched out (MADV_REMOVE): memory returns to the system at
  /// the price of fresh page faults the next time. Smaller ones stay resident for reuse. 32 MiB is
  /// glibc malloc's largest mmap threshold, so a SharedArray and a std::vector of the same size get
  /// fresh or recycled pages alike, and comparisons between them measure the work, not the allocator.
  static constexpr std::size_t kTrimThreshold = std::size_t{32} << 20;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Thrown when an allocation does not fit in the arena: says how much was asked and how much is left.
class ArenaExhausted : public Error {
 public:
  ArenaExhausted(std::size_t requested, std::size_t available, std::size_t capacity);
};

/// A typed array inside a SharedArena: what a worker writes into it, the master reads without a copy.
/// Elements start uninitialised (like `new T[n]`). Move-only; returns its block on destruction.
template <class T>
class SharedArray {
  static_assert(std::is_trivially_copyable_v<T>, "only trivially copyable types can be shared by bytes");

 public:
  SharedArray() noexcept = default;
  SharedArray(std::shared_ptr<SharedArena> arena, std::size_t size)
      : arena_(std::move(arena)),
        data_(size == 0 ? nullptr : static_cast<T*>(arena_->allocate(checked_bytes(size)))),
        size_(size) {}
  SharedArray(SharedArray&& other) noexcept
      : arena_(std::move(other.arena_)),
        data_(std::exchange(other.data_, nullptr)),
        size_(std::exchange(other.size_, 0)) {}
  SharedArray& operator=(SharedArray&& other) noexcept {
    if (this != &other) {
      release();
      arena_ = std::move(other.arena_);
      data_ = std::exchange(other.data_, nullptr);
      size_ = std::exchange(other.size_, 0);
    }
    return *this;
  }
  ~SharedArray() { release(); }

  T* data() noexcept { return data_; }
  const T* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  T* begin() noexcept { return data_; }
  T* end() noexcept { return data_ + size_; }
  const T* begin() const noexcept { return data_; }
  const T* end() const noexcept { return data_ + size_; }
  T& operator[](std::size_t i) noexcept { return data_[i]; }
  const T& operator[](std::size_t i) const noexcept { return data_[i]; }
  std::span<T> span() noexcept { return {data_, size_}; }
  std::span<const T> span() const noexcept { return {data_, size_}; }

 private:
  static std::size_t checked_bytes(std::size_t size) {
    if (size > SIZE_MAX / sizeof(T)) throw std::length_error("SharedArray: size * sizeof(T) overflows");
    return size * sizeof(T);
  }
  void release() noexcept {
    if (data_ != nullptr) arena_->deallocate(data_);
    data_ = nullptr;
    size_ = 0;
  }

  std::shared_ptr<SharedArena> arena_;
  T* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace mpdemo
