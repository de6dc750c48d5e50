// ChunkKernel: "apply fn to elements [begin, end) of this input, into this output", as plain bytes.
//
// Every way mpdemo runs a map (the sequential loop, threads, forked workers) calls the same compiled
// loop, apply_chunk<F, T>, so a comparison between them measures the parallelism and nothing else.
// A ChunkKernel is trivially copyable, so the master can send it through a pipe to a worker it
// forked: the code pointer and the callable's bytes mean the same thing in a forked copy of the
// program.
#pragma once

#include "mpdemo/sys/errors.hpp"
#include "mpdemo/sys/interrupt.hpp"

#include <array>
#include <concepts>
#include <cstddef>
#include <cstring>
#include <functional>
#include <new>
#include <stdexcept>
#include <string>
#include <type_traits>

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

namespace detail {
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
    for (std::size_t i = block; i < block_end; ++i) out[i] = std::invoke(fn, in[i]);
  }
}
}  // namespace detail

class ChunkKernel {
 public:
  template <class T, class F>
  requires ElementFunction<F, T>
  static ChunkKernel of(F fn) noexcept {
    ChunkKernel kernel;
    kernel.apply_ = &detail::apply_chunk<F, T>;
    if constexpr (!std::is_empty_v<F>)
      std::memcpy(kernel.callable_.data(), &fn, sizeof(F));  // a lambda without captures has no bytes worth sending
    return kernel;
  }

  /// out[i] = fn(in[i]) for i in [begin, end); `input` and `output` point at element 0.
  void operator()(const void* input, void* output, std::size_t begin, std::size_t end) const {
    apply_(callable_.data(), input, output, begin, end);
  }

 private:
  using Apply = void (*)(const std::byte*, const void*, void*, std::size_t, std::size_t);
  Apply apply_ = nullptr;
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
