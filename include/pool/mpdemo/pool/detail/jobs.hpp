// The typed jobs behind the pools' calls: where a job's input lives, how a worker reaches it, and
// where its results go. Internal to mpdemo (templates in the public headers need them).
#pragma once

#include "mpdemo/pool/detail/job.hpp"
#include "mpdemo/pool/serialization.hpp"
#include "mpdemo/pool/shared_arena.hpp"
#include "mpdemo/pool/task.hpp"
#include "mpdemo/sys/interrupt.hpp"

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <iterator>
#include <memory>
#include <mutex>
#include <ranges>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace mpdemo::detail {

/// Process pools, trivially copyable values: the input copied once into the shared arena, the worker
/// writing its results in place there, each chunk's results copied out as soon as it is done (so
/// imap can hand them over at once). The arrays belong to the job: a failure need not wait for them.
template <class T, class R>
class SharedMemoryJob final : public ResultsJob<R> {
 public:
  template <class F, class Input>
  SharedMemoryJob(F fn, const Input& input, const std::shared_ptr<SharedArena>& arena, std::size_t chunksize,
                  std::size_t workers, bool stop_at_first_failure)
      : ResultsJob<R>(std::ranges::size(input), chunksize, workers, stop_at_first_failure),
        kernel_(ChunkKernel::of<T>(fn)),  // plain stores: the master copies each chunk's results out at once
        input_(arena, std::ranges::size(input)),
        output_(arena, std::ranges::size(input)) {
    std::ranges::copy(input, input_.begin());
    // As map's new vector is made: in huge pages where the system offers them, zeroed with interrupt
    // checks between blocks.
    this->results = interruptible_vector<R>(input_.size());
  }
  ChunkOrder order(std::size_t) override {
    ChunkOrder order;
    order.kernel = kernel_;
    order.input = input_.data();
    order.output = output_.data();
    order.input_element_bytes = sizeof(T);
    order.output_element_bytes = sizeof(R);
    return order;
  }
  void store(std::size_t chunk, std::span<const std::byte>) override {
    const ChunkRange range = this->plan[chunk];
    std::copy(output_.begin() + range.begin, output_.begin() + range.end,
              this->results.begin() + static_cast<std::ptrdiff_t>(range.begin));
  }

 private:
  ChunkKernel kernel_;
  SharedArray<T> input_;
  SharedArray<R> output_;
};

/// Process pools, values that are not trivially copyable (or starmap's tuples): every chunk's elements
/// serialized into one block of the shared arena at submission, the worker's serialized results read
/// back into `results` as each chunk is done.
template <class R>
class SerializedJob final : public ResultsJob<R> {
 public:
  template <class T, Unpack U, class F, class Input>
  static std::shared_ptr<SerializedJob> make(F fn, const Input& input, const std::shared_ptr<SharedArena>& arena,
                                             std::size_t chunksize, std::size_t workers, bool stop_at_first_failure) {
    auto job = std::make_shared<SerializedJob>(std::ranges::size(input), chunksize, workers, stop_at_first_failure);
    job->serial_ = SerialKernel::of<T, U>(fn);
    // Serialized chunk by chunk into the master's own memory, then copied into the arena in one block.
    std::vector<std::byte> bytes;
    job->offsets_.push_back(0);
    auto element = std::ranges::begin(input);
    for (std::size_t chunk = 0; chunk < job->plan.count(); ++chunk) {
      const ChunkRange range = job->plan[chunk];
      auto end = std::next(element, static_cast<std::ptrdiff_t>(range.size()));
      serialize_elements(std::ranges::subrange(element, end), bytes);
      element = end;
      job->offsets_.push_back(bytes.size());
    }
    if (!bytes.empty()) {
      job->block_ = SharedArray<std::byte>(arena, bytes.size());
      std::memcpy(job->block_.data(), bytes.data(), bytes.size());
    }
    job->results = interruptible_vector<R>(job->plan.size());  // as the other jobs' results
    return job;
  }

  using ResultsJob<R>::ResultsJob;

  ChunkOrder order(std::size_t chunk) override {
    ChunkOrder order;
    order.serial = serial_;
    order.serialized_input = {block_.data() + offsets_[chunk], offsets_[chunk + 1] - offsets_[chunk]};
    return order;
  }
  void store(std::size_t chunk, std::span<const std::byte> bytes) override {
    const ChunkRange range = this->plan[chunk];
    std::size_t index = range.begin;
    const std::size_t count = deserialize_elements<R>(bytes, [&](R&& value) {
      if (index < range.end) this->results[index] = std::move(value);
      ++index;
    });
    if (count != range.size()) {
      throw std::runtime_error("a worker sent " + std::to_string(count) + " results for a chunk of " +
                               std::to_string(range.size()));
    }
  }

 private:
  SerialKernel serial_;
  std::vector<std::size_t> offsets_;  ///< chunk c's bytes are [offsets_[c], offsets_[c + 1]) of block_
  SharedArray<std::byte> block_;
};

/// Thread pools: a copy of the elements (the caller may let its own go once the call returns), fn
/// called on them in the pool's threads, results in place. Threads share memory: nothing serialized.
template <class T, class R, Unpack U, class F>
class LocalJob final : public ResultsJob<R> {
 public:
  template <class Input>
  LocalJob(F fn, const Input& input, std::size_t chunksize, std::size_t workers, bool stop_at_first_failure)
      : ResultsJob<R>(std::ranges::size(input), chunksize, workers, stop_at_first_failure),
        fn_(fn),
        input_(std::ranges::begin(input), std::ranges::end(input)) {
    this->results = interruptible_vector<R>(input_.size());  // as SharedMemoryJob's
  }
  void run_here(std::size_t chunk) override {
    const ChunkRange range = this->plan[chunk];
    if constexpr (std::is_same_v<R, bool>) {
      // std::vector<bool> packs 64 results into a word, and a chunk's first and last words are its
      // neighbours' too: two threads may not write them at once. Computed apart, stored under a lock.
      std::vector<char> bits(range.size());
      compute(range, [&](std::size_t i, bool value) { bits[i - range.begin] = value ? 1 : 0; });
      const std::lock_guard lock(packed_results_);
      for (std::size_t i = range.begin; i < range.end; ++i) this->results[i] = bits[i - range.begin] != 0;
    } else {
      compute(range, [this](std::size_t i, R value) { this->results[i] = std::move(value); });
    }
  }

 private:
  /// fn over `range`, an interrupt looked for every kCheckBlockElements; store(i, result) keeps each.
  template <class Store>
  void compute(ChunkRange range, Store store) {
    for (std::size_t i = range.begin; i < range.end; ++i) {
      if ((i & (kCheckBlockElements - 1)) == 0) throw_if_interrupted();
      store(i, call_element<U>(fn_, input_[i]));
    }
  }

  F fn_;
  std::vector<T> input_;
  std::mutex packed_results_;  ///< R = bool: one chunk at a time stores into the packed results
};

}  // namespace mpdemo::detail
