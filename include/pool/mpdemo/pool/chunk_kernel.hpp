// ChunkKernel: "apply fn to elements [begin, end) of this input, into this output", as plain bytes.
//
// Every way mpdemo runs a map (the sequential loop, threads, forked workers) calls the same compiled
// loop, apply_chunk<F, T> (apply_chunk_streaming<F, T> beyond the cache), so a comparison between them measures the
// parallelism and nothing else. A ChunkKernel is trivially copyable, so the master can send it through a pipe to a
// worker it forked: the code pointer and the callable's bytes mean the same thing in a forked copy of the program.
//
// How the loop stores its results is the kernel's too, chosen per map by one rule (stores_for): plain
// stores while the arrays fit in the last-level cache, non-temporal ("streaming") stores beyond it,
// where a plain store first reads the output's cache line from memory only to overwrite it.
#pragma once

#include "mpdemo/sys/errors.hpp"
#include "mpdemo/sys/interrupt.hpp"

#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <new>
#include <numeric>
#include <stdexcept>
#include <string>
#include <type_traits>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace mpdemo {

inline constexpr std::size_t kMaxCallableBytes = 64;

/// What a map can run: a function pointer, a captureless lambda, or a small trivially copyable
/// function object (its members are copied bytewise into the worker, so they must not point into
/// memory the worker does not share: no pointers or references to the master's heap).
template <class F, class T>
concept ElementFunction =
    std::is_trivially_copyable_v<F> && sizeof(F) <= kMaxCallableBytes && alignof(F) <= alignof(std::max_align_t) &&
    std::invocable<const F&, const T&>&& std::is_trivially_copyable_v<T>&& std::is_trivially_copyable_v<
        std::remove_cvref_t<std::invoke_result_t<const F&, const T&>>>;

template <class F, class T>
using map_result_t = std::remove_cvref_t<std::invoke_result_t<const F&, const T&>>;

/// How a map's loop writes its results.
enum class Stores : unsigned char {
  cached,     ///< plain stores: best while the arrays fit in the cache, where the next reader finds them
  streaming,  ///< non-temporal stores, straight to memory: no read of each output line before it is overwritten
};

/// The rule every map follows: streaming once a map's input and output together (`working_set_bytes`)
/// exceed the last-level cache this process's first CPU sees (hwloc's figure, Topology), cached
/// otherwise or where no cache is known. The environment variable MPDEMO_STREAM_ABOVE (bytes, with an
/// optional K, M or G suffix: powers of 1024) replaces the cache size, for a machine that reports a
/// cache it does not have (a VM shown its host's). Throws BadArgument, naming the variable, when
/// its value is not a size.
Stores stores_for(std::size_t working_set_bytes);

/// What the rule compares with, and where that figure came from ("the last-level cache, from hwloc",
/// "MPDEMO_STREAM_ABOVE", "no cache size known"): for reports. Read once per process.
struct StoreRule {
  std::size_t stream_above_bytes = 0;  ///< 0 with `never`: no map streams
  bool never = false;
  std::string source;
};
const StoreRule& store_rule();

namespace detail {
/// Orders the streamed stores before whatever the caller does next (sfence): a worker's "done" must
/// not overtake its results. On every exit, an interrupt's throw included.
struct StreamFence {
  StreamFence() = default;
  StreamFence(const StreamFence&) = delete;
  StreamFence& operator=(const StreamFence&) = delete;
  ~StreamFence();
};

/// Copies `bytes` (a multiple of 16) from `from` to `to` (16-byte aligned) with non-temporal stores.
inline void stream_out(std::byte* to, const std::byte* from, std::size_t bytes) noexcept {
#if defined(__SSE2__)
  for (std::size_t done = 0; done < bytes; done += 16) {
    _mm_stream_si128(reinterpret_cast<__m128i*>(to + done),
                     _mm_loadu_si128(reinterpret_cast<const __m128i*>(from + done)));
  }
#else
  std::memcpy(to, from, bytes);          // no non-temporal store this compiler lets us name: plain ones
#endif
}

/// The loop every map runs: out[i] = fn(in[i]) for i in [begin, end), with plain stores.
template <class F, class T>
void apply_chunk(const std::byte* callable, const void* input, void* output, std::size_t begin, std::size_t end) {
  using R = map_result_t<F, T>;
  const F& fn = *std::launder(reinterpret_cast<const F*>(callable));
  const T* in = static_cast<const T*>(input);
  R* out = static_cast<R*>(output);
  // In blocks, with an interrupt check between them, so Ctrl-C (or a deadline) stops the loop and a
  // thread pool's map within microseconds; the inner loop stays a plain one the compiler vectorises.
  // In a forked worker the check never fires (its stop state is reset): the master kills it instead.
  for (std::size_t block = begin; block < end; block += kCheckBlockElements) {
    throw_if_interrupted();
    const std::size_t block_end = end - block > kCheckBlockElements ? block + kCheckBlockElements : end;
    // Unrolled: GCC 12 otherwise issues one 16-byte vector per iteration, which in L1 ran at half the
    // speed (1000 doubles: 220 ns against 110 ns) on the current VM.
#pragma GCC unroll 4
    for (std::size_t i = block; i < block_end; ++i) out[i] = std::invoke(fn, in[i]);
  }
}

/// The same loop with streaming stores. Its results go out in tiles, each computed by the same
/// vectorised loop into a buffer that stays in L1 and then streamed to memory: this works for any
/// result type, where streaming each result as it is computed would need intrinsics per type. A tile
/// is the fewest whole 16-byte stores of whole results that cover a 64-byte cache line: one line for
/// results of 1, 2, 4, 8 or 16 bytes (and 32 or 64), a little more for other sizes (96 bytes for 12,
/// 80 for 20). The first tile starts on a line where the output lets it, so that with one-line tiles
/// each fills one write-combining buffer, which leaves for memory whole. On the project's current VM,
/// at 10^8 doubles, 64-byte tiles ran as fast as streaming each result (48.9-51.1 ms against
/// 50.5-51.6 ms), where 256-byte tiles took 56-59 ms and 4 KiB ones 1.5x longer: the longer a tile,
/// the longer its reads and its stores come in separate bursts. A separate function from
/// apply_chunk, not a branch in it, so that the plain loop compiles exactly as before (with one
/// runtime branch, the in-cache loop measured 1.2x slower).
template <class F, class T>
void apply_chunk_streaming(const std::byte* callable, const void* input, void* output, std::size_t begin,
                           std::size_t end) {
  using R = map_result_t<F, T>;
  constexpr std::size_t kLine = 64;
  constexpr std::size_t kUnit = 16 / std::gcd(sizeof(R), std::size_t{16});  // elements in a multiple of 16 bytes
  constexpr std::size_t kUnitBytes = kUnit * sizeof(R);
  constexpr std::size_t kTileElements = kUnit * ((kLine + kUnitBytes - 1) / kUnitBytes);
  if constexpr (kTileElements * sizeof(R) > 4096) {
    // A result whose 16-byte multiple is larger than a page (16 x an odd size above 256 bytes): its
    // tile would take the stack; plain stores, as the loop's.
    apply_chunk<F, T>(callable, input, output, begin, end);
  } else {
    const F& fn = *std::launder(reinterpret_cast<const F*>(callable));
    const T* in = static_cast<const T*>(input);
    R* out = static_cast<R*>(output);
    // Plain stores up to the first result on a cache line's boundary, or failing that (a result whose
    // size never lands on one from this address) on a 16-byte boundary, which a streaming store needs;
    // where neither comes (an even-sized result at an odd address), plain stores throughout.
    auto first_on = [&](std::size_t boundary) {
      std::size_t at = begin;
      while (at < end && at - begin < kLine && reinterpret_cast<std::uintptr_t>(out + at) % boundary != 0) ++at;
      return at;
    };
    std::size_t aligned = first_on(kLine);
    if (reinterpret_cast<std::uintptr_t>(out + aligned) % kLine != 0) aligned = first_on(16);
    if (reinterpret_cast<std::uintptr_t>(out + aligned) % 16 != 0) {
      apply_chunk<F, T>(callable, input, output, begin, end);
      return;
    }
    apply_chunk<F, T>(callable, input, output, begin, aligned);
    // Raw bytes, not R[]: a trivially copyable R need not be default-constructible.
    alignas(alignof(R) > 16 ? alignof(R) : 16) std::byte storage[kTileElements * sizeof(R)];
    R* tile = reinterpret_cast<R*>(storage);
    const StreamFence fence;
    constexpr std::size_t kBlock = (kCheckBlockElements + kTileElements - 1) / kTileElements * kTileElements;
    for (std::size_t block = aligned; block < end; block += kBlock) {
      throw_if_interrupted();
      const std::size_t block_end = end - block > kBlock ? block + kBlock : end;
      std::size_t first = block;
      for (; block_end - first >= kTileElements; first += kTileElements) {
#pragma GCC unroll 4
        for (std::size_t i = 0; i < kTileElements; ++i)
          ::new (static_cast<void*>(tile + i)) R(std::invoke(fn, in[first + i]));
        stream_out(reinterpret_cast<std::byte*>(out + first), storage, sizeof(storage));
      }
      for (; first < block_end; ++first) out[first] = std::invoke(fn, in[first]);  // the ragged end: plain stores
    }
  }
}
}  // namespace detail

class ChunkKernel {
 public:
  /// The kernel with plain stores; for_elements() then chooses them for a map's size.
  template <class T, class F>
  requires ElementFunction<F, T>
  static ChunkKernel of(F fn, Stores stores = Stores::cached) noexcept {
    ChunkKernel kernel;
    kernel.cached_ = &detail::apply_chunk<F, T>;
#if defined(__SSE2__)
    kernel.streaming_ = &detail::apply_chunk_streaming<F, T>;
#else
    kernel.streaming_ = kernel.cached_;  // no non-temporal store to name: the tile would be pure overhead
#endif
    kernel.bytes_per_element_ = sizeof(T) + sizeof(map_result_t<F, T>);
    kernel.stores_ = stores;
    if constexpr (!std::is_empty_v<F>)
      std::memcpy(kernel.callable_.data(), &fn, sizeof(F));  // a lambda without captures has no bytes worth sending
    return kernel;
  }

  /// This kernel with the stores the rule (stores_for) chooses for a map of `elements` elements: how
  /// every mode's map, loop included, asks for its kernel, so that all of them store alike.
  ChunkKernel for_elements(std::size_t elements) const {
    return with_stores(stores_for(elements * bytes_per_element_));
  }
  /// This kernel with the stores another process chose (an MPI root, for every rank).
  ChunkKernel with_stores(Stores stores) const noexcept {
    ChunkKernel kernel = *this;
    kernel.stores_ = stores;
    return kernel;
  }

  Stores stores() const noexcept { return stores_; }

  /// out[i] = fn(in[i]) for i in [begin, end); `input` and `output` point at element 0. Never inlined,
  /// so every caller (the loop, threads, OpenMP, a worker) runs the one compiled loop through its
  /// pointer: inlined into each caller, the same loop measured up to 1.2x apart in cache, by placement.
  [[gnu::noinline]] void operator()(const void* input, void* output, std::size_t begin, std::size_t end) const {
    (stores_ == Stores::streaming ? streaming_ : cached_)(callable_.data(), input, output, begin, end);
  }

 private:
  using Apply = void (*)(const std::byte*, const void*, void*, std::size_t, std::size_t);
  Apply cached_ = nullptr;
  Apply streaming_ = nullptr;
  std::size_t bytes_per_element_ = 0;  ///< one input and one result
  Stores stores_ = Stores::cached;
  alignas(std::max_align_t) std::array<std::byte, kMaxCallableBytes> callable_{};
};

static_assert(std::is_trivially_copyable_v<ChunkKernel>);

/// Every map_into (processes, threads, the loop) writes one output element per input element:
/// throws BadArgument, naming `caller`, when the two sizes differ.
inline void require_same_size(std::size_t input, std::size_t output, const char* caller) {
  if (input != output) {
    throw BadArgument(std::string(caller) + ": output has " + std::to_string(output) + " elements but input has " +
                      std::to_string(input) + "; they must be equal");
  }
}

}  // namespace mpdemo
