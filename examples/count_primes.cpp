// Counting primes in ranges with imap_unordered: the ranges are equally wide, but a range of large
// numbers costs more to check than one of small numbers, so the work per task is uneven. Handing
// tasks out one at a time (chunksize 1) lets a worker that finished early take the next; large chunks
// cost fewer messages but leave workers idle at the end. The table shows the time per chunksize.
//
//   build/release/examples/count_primes --limit 3e6 --ranges 64
#include "example.hpp"
#include "mpdemo/pool/process_pool.hpp"
#include "mpdemo/pool/thread_pool.hpp"

#include <fmt/format.h>
#include <cstdint>
#include <vector>

namespace {

/// [begin, end): trivially copyable, so the ranges are shared in place, never serialized.
struct NumberRange {
  std::uint64_t begin;
  std::uint64_t end;
};

bool is_prime(std::uint64_t n) {
  if (n < 2) return false;
  for (std::uint64_t d = 2; d * d <= n; ++d) {
    if (n % d == 0) return false;
  }
  return true;
}

std::uint64_t primes_in(const NumberRange& range) {
  std::uint64_t count = 0;
  for (std::uint64_t n = range.begin; n < range.end; ++n) {
    if (is_prime(n)) ++count;
  }
  return count;
}

template <class Pool>
std::uint64_t count_with(Pool& pool, const std::vector<NumberRange>& ranges, std::size_t chunksize) {
  std::uint64_t total = 0;
  for (const std::uint64_t count : pool.imap_unordered(primes_in, ranges, chunksize)) total += count;
  return total;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Count primes below --limit in --ranges equal ranges with imap_unordered, at several chunksizes",
               "count_primes"};
  std::size_t limit = 2'000'000;
  std::size_t pieces = 64;
  std::size_t workers = 0;
  mpdemo::cli::add_count_option(app, "--limit", limit, 2, std::size_t{1} << 40,
                                "count primes below this (default 2e6)");
  mpdemo::cli::add_count_option(app, "--ranges", pieces, 1, 1'000'000, "equal ranges, one task each (default 64)");
  mpdemo::cli::add_workers_option(app, workers);
  return mpdemo::example::run(argc, argv, app, [&] {
    if (pieces > limit) {
      throw mpdemo::cli::UsageError(
          fmt::format("--ranges {} is more than --limit {}: a range would be empty", pieces, limit));
    }
    std::vector<NumberRange> ranges;
    for (std::size_t i = 0; i < pieces; ++i) ranges.push_back({limit * i / pieces, limit * (i + 1) / pieces});

    mpdemo::ProcessPool processes(workers);
    mpdemo::ThreadPool threads(workers);
    std::cout << fmt::format("Primes below {} in {} ranges; {} workers, started before timing.\n", limit, pieces,
                             processes.size());
    std::uint64_t expected = 0;
    const double loop = mpdemo::example::boxed("primes_sequential", [&] {
      for (const NumberRange& range : ranges) expected += primes_in(range);
    });
    bool verified = true;
    std::cout << fmt::format("{:>10} {:>12} {:>12} {:>14} {:>14}\n", "chunksize", "processes", "threads",
                             "proc vs loop", "thread vs loop");
    for (std::size_t chunksize = 1; chunksize <= pieces; chunksize *= 4) {
      std::uint64_t by_processes = 0;
      std::uint64_t by_threads = 0;
      const mpdemo::Stopwatch clock;
      by_processes = count_with(processes, ranges, chunksize);
      const double process_seconds = clock.seconds();
      const mpdemo::Stopwatch thread_clock;
      by_threads = count_with(threads, ranges, chunksize);
      const double thread_seconds = thread_clock.seconds();
      verified = verified && by_processes == expected && by_threads == expected;
      std::cout << fmt::format(
          "{:>10} {:>12} {:>12} {:>13.2f}x {:>13.2f}x\n", chunksize, mpdemo::report::format_duration(process_seconds),
          mpdemo::report::format_duration(thread_seconds), loop / process_seconds, loop / thread_seconds);
    }
    std::uint64_t best = 0;
    mpdemo::example::boxed("primes_processes", [&] { best = count_with(processes, ranges, 1); });
    mpdemo::example::boxed("primes_threads", [&] { best = best == count_with(threads, ranges, 1) ? best : 0; });
    verified = verified && best == expected;
    std::cout << (verified ? fmt::format("Every way counted {} primes, as the loop did.\n", expected)
                           : fmt::format("MISMATCH: the loop counted {} primes, and a pool did not\n", expected));
    return verified ? 0 : 1;
  });
}
