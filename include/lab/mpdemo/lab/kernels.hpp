// The element functions mpdemo's lesson and benchmarks map: small, trivially copyable callables, so
// every mode runs one and the same compiled loop (see chunk_kernel.hpp).
#pragma once

namespace mpdemo {

/// The lesson's `squared(x)`: one multiply per 16 bytes of memory traffic, so memory-bound.
inline constexpr auto squared = [](double x) noexcept { return x * x; };

}  // namespace mpdemo

namespace mpdemo {

/// squared, then `steps` more dependent multiply-adds per element: `sweep --work K` turns the
/// memory-bound job into a compute-bound one. Trivially copyable, so a pool can send it to workers.
struct SquaredWithWork {
  unsigned steps = 0;
  double operator()(double x) const noexcept {
    double y = x * x;
    for (unsigned i = 0; i < steps; ++i) y = y * 0.999999 + 1e-7;  // each step needs the last: no overlap
    return y;
  }
};

}  // namespace mpdemo
