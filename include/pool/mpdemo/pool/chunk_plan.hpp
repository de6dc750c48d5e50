// ChunkPlan: how a map of n elements is cut into chunks, with Python's Pool.map default chunksize.
#pragma once

#include <cstddef>

namespace mpdemo {

/// Python's `Pool.map` default: `chunksize, extra = divmod(n, 4 * workers); if extra: chunksize += 1`,
/// i.e. ceil(n / (4 * workers)): four chunks per worker, so a worker that finishes early takes more.
constexpr std::size_t default_chunksize(std::size_t n, std::size_t workers) noexcept {
  const std::size_t per_round = 4 * (workers == 0 ? 1 : workers);
  return n / per_round + (n % per_round != 0 ? 1 : 0);
}

/// The half-open range [begin, end) of input indices one chunk covers.
struct ChunkRange {
  std::size_t begin;
  std::size_t end;
  std::size_t size() const noexcept { return end - begin; }
};

/// Splits [0, n) into ceil(n / chunksize) consecutive chunks; the last may be shorter.
class ChunkPlan {
 public:
  /// chunksize 0 means default_chunksize(n, workers).
  constexpr ChunkPlan(std::size_t n, std::size_t chunksize, std::size_t workers) noexcept
      : size_(n), chunksize_(chunksize != 0 ? chunksize : default_chunksize(n, workers)) {
    if (chunksize_ == 0) chunksize_ = 1;  // n == 0: no chunks, but keep the arithmetic well defined
  }

  constexpr std::size_t size() const noexcept { return size_; }
  constexpr std::size_t chunksize() const noexcept { return chunksize_; }
  constexpr std::size_t count() const noexcept { return size_ / chunksize_ + (size_ % chunksize_ != 0 ? 1 : 0); }
  constexpr ChunkRange operator[](std::size_t chunk) const noexcept {
    const std::size_t begin = chunk * chunksize_;
    const std::size_t end = size_ - begin < chunksize_ ? size_ : begin + chunksize_;
    return {begin, end};
  }

 private:
  std::size_t size_;
  std::size_t chunksize_;
};

}  // namespace mpdemo
