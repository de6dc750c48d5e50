#include "mpdemo/pool/shared_arena.hpp"

#include "mpdemo/sys/errors.hpp"
#include "mpdemo/sys/huge_pages.hpp"
#include "mpdemo/sys/topology.hpp"

#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>
#include <boost/interprocess/managed_external_buffer.hpp>
#include <cstdint>
#include <mutex>

namespace mpdemo {

namespace bip = boost::interprocess;

namespace {

// Blocks carry their size in a header the arena writes just below them, so deallocate needs only the
// pointer. Keeping the header a page below the block keeps the block itself page-aligned.
struct BlockHeader {
  std::size_t bytes;
};

}  // namespace

struct SharedArena::Impl {
  SharedMapping region;
  bip::managed_external_buffer heap;
  mutable std::mutex mutex;

  explicit Impl(std::size_t capacity) : region(map(capacity)), heap(bip::create_only, region.address(), region.size()) {
    // A crashing worker would otherwise dump the whole arena into its core file before its pipes
    // close, delaying the master's notice of its death by as long as that takes.
    ::madvise(region.address(), region.size(), MADV_DONTDUMP);
  }

  static SharedMapping map(std::size_t capacity) {
    // In 2 MiB pages where the system's shared memory has them, or else mpdemo's own tmpfs does
    // (huge_pages.hpp). A worker's page tables over the arena then hold one entry per 2 MiB instead
    // of per 4 KiB: 512 times fewer faults on a fresh pool, and on a VM that shadows page tables, no
    // per-page cost to wake a worker that slept while mapping GBs.
    SharedMapping mapped(capacity);
    // Anonymous shared memory under shmem_enabled "advise" must ask ("always" and "within_size" need
    // no asking, "never" ignores it, the own tmpfs gives them unasked). Asked before the heap writes
    // its header, whose small page would otherwise keep the first 2 MiB in small pages.
    ask_for_huge_pages(mapped.address(), mapped.size());
    return mapped;
  }
};

SharedArena::SharedArena(std::size_t capacity_bytes) : impl_(std::make_unique<Impl>(capacity_bytes)) {}
SharedArena::~SharedArena() = default;

std::size_t SharedArena::default_capacity_target() noexcept {
  std::size_t target = physical_memory_bytes() / 2;
  // Under an address-space limit (ulimit -v) the arena takes at most a quarter of it, so that the
  // program's own vectors still fit beside it.
  if (const std::optional<std::uint64_t> address_space = soft_limit(RLIMIT_AS)) {
    target = std::min<std::size_t>(target, static_cast<std::size_t>(*address_space / 4));
  }
  return target;
}

std::shared_ptr<SharedArena> SharedArena::process_default() {
  static std::mutex creation;
  static std::shared_ptr<SharedArena> arena;
  const std::lock_guard lock(creation);
  if (!arena) {
    // Address space, not memory: pages are only allocated when touched. A strict overcommit policy
    // may still refuse a large reservation, so ask for less until it is granted.
    for (std::size_t capacity = default_capacity_target();; capacity /= 2) {
      try {
        arena = std::make_shared<SharedArena>(capacity);
        break;
      } catch (const std::system_error&) {
        if (capacity < (std::size_t{64} << 20)) throw;
      }
    }
  }
  return arena;
}

void* SharedArena::allocate(std::size_t bytes) {
  const std::size_t page = page_size();
  if (bytes > capacity()) throw ArenaExhausted(bytes, free_bytes(), capacity());  // also keeps bytes + page finite
  const std::lock_guard lock(impl_->mutex);
  // One extra page in front holds the header, so the block proper starts on a page boundary and
  // its pages belong to it alone (which is what makes trimming it with MADV_REMOVE safe).
  void* raw = impl_->heap.allocate_aligned(bytes + page, page, std::nothrow);
  if (raw == nullptr) throw ArenaExhausted(bytes, impl_->heap.get_free_memory(), capacity());
  auto* block = static_cast<std::byte*>(raw) + page;
  auto* header = reinterpret_cast<BlockHeader*>(block - sizeof(BlockHeader));
  header->bytes = bytes;
  return block;
}

void SharedArena::deallocate(void* block) noexcept {
  if (block == nullptr) return;
  const std::size_t page = page_size();
  auto* start = static_cast<std::byte*>(block);
  const std::size_t bytes = reinterpret_cast<const BlockHeader*>(start - sizeof(BlockHeader))->bytes;
  if (bytes >= kTrimThreshold) {
    // Whole 2 MiB spans only: punching part of a huge page splits it, and the neighbouring block's
    // half of it would go on in small pages. What is left at the ends (under 4 MiB of a block of 32
    // MiB or more) stays for the next block.
    const AlignedSpan spans = whole_units_inside(start, bytes, kHugePageBytes);
    if (spans.bytes > 0) ::madvise(spans.begin, spans.bytes, MADV_REMOVE);
  }
  const std::lock_guard lock(impl_->mutex);
  impl_->heap.deallocate(start - page);
}

bool SharedArena::contains(const void* pointer, std::size_t bytes) const noexcept {
  // As integers: ordering pointers into unrelated objects is unspecified.
  const auto base = reinterpret_cast<std::uintptr_t>(impl_->region.address());
  const auto p = reinterpret_cast<std::uintptr_t>(pointer);
  const std::size_t size = impl_->region.size();
  return p >= base && bytes <= size && p - base <= size - bytes;
}

std::size_t SharedArena::capacity() const noexcept { return impl_->region.size(); }

SharedMemorySource SharedArena::source() const noexcept { return impl_->region.source(); }

std::uint64_t SharedArena::mapping_number() const noexcept { return impl_->region.number(); }

std::size_t SharedArena::free_bytes() const {
  const std::lock_guard lock(impl_->mutex);
  return impl_->heap.get_free_memory();
}

ArenaExhausted::ArenaExhausted(std::size_t requested, std::size_t available, std::size_t capacity)
    : Error(fmt::format("shared arena exhausted: asked for {} bytes, {} of {} bytes are free", requested, available,
                        capacity)) {}

}  // namespace mpdemo
