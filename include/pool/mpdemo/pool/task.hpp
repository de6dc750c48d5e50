// Tasks: what a pool's calls accept, and how a worker process runs a chunk of serialized values.
//
// A pool runs a function in workers that were forked before the function was given. So the function
// is sent as its code address (the same in every forked copy of the program) and its bytes: it must
// be a function pointer, a captureless lambda, or a small trivially copyable function object, whose
// members mean the same in a worker (no pointers into the master's heap). Python pickles functions by
// name for the same reason.
#pragma once

#include "mpdemo/pool/chunk_kernel.hpp"
#include "mpdemo/pool/serialization.hpp"

#include <array>
#include <cstddef>
#include <cstring>
#include <functional>
#include <new>
#include <span>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace mpdemo {

/// A function a pool can send to its workers (see above).
template <class F>
concept TaskFunction = std::is_trivially_copyable_v<F> && sizeof(F) <= kMaxCallableBytes &&
                       alignof(F) <= alignof(std::max_align_t);

/// How an element becomes arguments: whole (map, imap), or unpacked from a tuple-like (starmap).
enum class Unpack { whole, tuple };

namespace detail {

template <Unpack U, class F, class T>
struct element_result;
template <class F, class T>
struct element_result<Unpack::whole, F, T> {
  using type = std::remove_cvref_t<std::invoke_result_t<const F&, const T&>>;
};
template <class F, class T>
struct element_result<Unpack::tuple, F, T> {
  using type = std::remove_cvref_t<decltype(std::apply(std::declval<const F&>(), std::declval<const T&>()))>;
};

}  // namespace detail

/// What fn returns for one element T, called as Unpack says.
template <Unpack U, class F, class T>
using element_result_t = typename detail::element_result<U, F, T>::type;

/// fn called on one element: fn(element), or fn(element's members...) for Unpack::tuple.
template <Unpack U, class F, class T>
decltype(auto) call_element(const F& fn, const T& element) {
  if constexpr (U == Unpack::tuple) {
    return std::apply(fn, element);
  } else {
    return std::invoke(fn, element);
  }
}

namespace detail {
template <class F, class T, std::size_t... I>
constexpr bool invocable_with_members(std::index_sequence<I...>) {
  return std::invocable<const F&, decltype(std::get<I>(std::declval<const T&>()))...>;
}
}  // namespace detail

/// T is tuple-like (std::tuple, std::pair, std::array) and fn takes its members as arguments.
template <class F, class T>
concept CallableOnMembers = requires {
  std::tuple_size<T>::value;
}
&&detail::invocable_with_members<F, T>(std::make_index_sequence<std::tuple_size_v<T>>{});

/// fn can be called on one element T as U says.
template <class F, class T, Unpack U>
concept CallableOn = (U == Unpack::whole && std::invocable<const F&, const T&>) ||
                     (U == Unpack::tuple && CallableOnMembers<F, T>);

/// fn can be called on T as U says, and what it returns can come back from a worker.
template <class F, class T, Unpack U>
concept ElementTask = TaskFunction<F> && Transferable<T> && CallableOn<F, T, U> &&
    Transferable<element_result_t<U, F, T>> && std::default_initializable<element_result_t<U, F, T>>;

/// Whether a map of fn over T can share its data in place (zero copy) instead of serializing it.
template <class F, class T, Unpack U>
inline constexpr bool shares_in_place =
    U == Unpack::whole&& std::is_trivially_copyable_v<T>&& std::is_trivially_copyable_v<element_result_t<U, F, T>>;

namespace detail {

template <class T, class F, Unpack U>
void apply_serialized(const std::byte* callable, std::span<const std::byte> input, std::vector<std::byte>& results) {
  using R = element_result_t<U, F, T>;
  const F& fn = *std::launder(reinterpret_cast<const F*>(callable));
  ByteSource source(input);
  std::istream in_stream(&source);
  cereal::BinaryInputArchive in(in_stream);
  ByteSink sink(results);
  std::ostream out_stream(&sink);
  cereal::BinaryOutputArchive out(out_stream);
  std::uint64_t count = 0;
  in(count);
  out(count);
  for (std::uint64_t i = 0; i < count; ++i) {
    T element{};
    in(element);
    const R result = call_element<U>(fn, element);
    out(result);
  }
}

}  // namespace detail

/// "Read a chunk's serialized elements, call fn on each, write the serialized results": the worker's
/// half of a map over values that are not trivially copyable. Trivially copyable itself, so the
/// master sends it through a pipe like a ChunkKernel.
class SerialKernel {
 public:
  template <class T, Unpack U, class F>
  static SerialKernel of(F fn) noexcept {
    SerialKernel kernel;
    kernel.apply_ = &detail::apply_serialized<T, F, U>;
    if constexpr (!std::is_empty_v<F>) std::memcpy(kernel.callable_.data(), &fn, sizeof(F));
    return kernel;
  }

  /// Appends the serialized results of the elements serialized in `input` to `results`. Throws what
  /// fn throws, and cereal::Exception if `input` is torn.
  void operator()(std::span<const std::byte> input, std::vector<std::byte>& results) const {
    apply_(callable_.data(), input, results);
  }
  explicit operator bool() const noexcept { return apply_ != nullptr; }

 private:
  using Apply = void (*)(const std::byte*, std::span<const std::byte>, std::vector<std::byte>&);
  Apply apply_ = nullptr;
  alignas(std::max_align_t) std::array<std::byte, kMaxCallableBytes> callable_{};
};

static_assert(std::is_trivially_copyable_v<SerialKernel>);

}  // namespace mpdemo
