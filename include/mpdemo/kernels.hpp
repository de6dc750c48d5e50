// The element functions mpdemo's lesson and benchmarks map: small, trivially copyable callables, so
// every mode runs one and the same compiled loop (see chunk_kernel.hpp).
#pragma once

namespace mpdemo {

/// The lesson's `squared(x)`: one multiply per 16 bytes of memory traffic, so memory-bound.
inline constexpr auto squared = [](double x) noexcept { return x * x; };

}  // namespace mpdemo
