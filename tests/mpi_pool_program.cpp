// mpdemo::MpiPool used as a library, under mpirun (mpi_test runs it): every call on every path,
// each result checked on the root against its own loop. Prints "ok" lines on the root; exits 1 on
// the first wrong result.
//
//   mpi_pool_program PATH SIZE [RANKS_PER_NODE]     PATH: scatter, shared-window or hybrid
//   mpi_pool_program mismatch                       rank 1 maps floats where the root maps doubles
#include "mpdemo/mpi/mpi_pool.hpp"
#include "mpdemo/sys/errors.hpp"
#include "mpdemo/sys/huge_pages.hpp"
#include "support/mappings.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <numeric>
#include <string>
#include <vector>

namespace {

// Not the lesson's function: odd enough that a slice in the wrong place shows.
struct Affine {
  std::int64_t scale;
  std::int64_t operator()(std::int32_t x) const noexcept { return scale * x + 1; }
};

int fail(const std::string& what) {
  std::fprintf(stderr, "mpi_pool_program: %s\n", what.c_str());
  return 1;
}

mpdemo::MpiPath path_named(const std::string& name) {
  if (name == "scatter") return mpdemo::MpiPath::scatter;
  if (name == "shared-window") return mpdemo::MpiPath::shared_window;
  if (name == "hybrid") return mpdemo::MpiPath::hybrid;
  throw mpdemo::BadArgument("unknown path " + name);
}

int mismatch() {
  mpdemo::MpiPool pool;
  if (pool.is_root()) {
    const std::vector<double> input(10, 2.0);
    pool.map([](double x) { return x * x; }, input);
  } else {
    pool.map([](float x) { return x * x; }, std::vector<float>{});
  }
  return 0;  // not reached: the pool ends the job
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return fail("usage: mpi_pool_program PATH SIZE [RANKS_PER_NODE] | mismatch");
  mpdemo::MpiSession mpi;
  if (std::string(argv[1]) == "mismatch") return mismatch();
  if (argc < 3) return fail("usage: mpi_pool_program PATH SIZE [RANKS_PER_NODE]");
  const std::size_t size = std::strtoull(argv[2], nullptr, 10);
  mpdemo::MpiPool pool({.path = path_named(argv[1]), .ranks_per_node = argc > 3 ? std::atoi(argv[3]) : 0});

  // The input exists on the root only, as in a real program that reads it from a file.
  std::vector<std::int32_t> input;
  if (pool.is_root()) {
    input.resize(size);
    std::iota(input.begin(), input.end(), -static_cast<std::int32_t>(size / 2));
  }
  const Affine affine{3};
  for (int round = 0; round < 2; ++round) {  // twice: buffers and windows are reused
    mpdemo::MapStats stats;
    const std::vector<std::int64_t> result = pool.map(affine, input, &stats);
    if (!pool.is_root() && !result.empty()) return fail("a rank other than the root got a result");
    if (result.size() != input.size()) return fail("map: " + std::to_string(result.size()) + " results");
    for (std::size_t i = 0; i < input.size(); ++i) {
      if (result[i] != 3 * static_cast<std::int64_t>(input[i]) + 1) return fail("map: wrong at " + std::to_string(i));
    }
    if (pool.is_root()) std::printf("ok map round %d, %zu elements\n", round, result.size());
    // A result that can hold a 2 MiB page is made as the loop's is, asking for them (VmFlags "hg").
    if (pool.is_root() && round == 1 && result.size() * sizeof(std::int64_t) >= 2 * mpdemo::kHugePageBytes &&
        std::filesystem::exists(mpdemo::HugePages::kPrivateSettingFile)) {  // without THP, madvise fails
      const bool asked = mpdemo::testing::mapping_holding(result.data() + result.size() / 2).flags.contains("hg");
      std::printf("map's result asks for huge pages: %s\n", asked ? "yes" : "no");
    }
  }

  std::vector<double> halves(pool.is_root() ? size : 0, -1.0);
  pool.map_into([](std::int32_t x) { return x / 2.0; }, input, halves);
  for (std::size_t i = 0; i < input.size(); ++i) {
    if (halves[i] != input[i] / 2.0) return fail("map_into: wrong at " + std::to_string(i));
  }
  if (pool.is_root()) std::printf("ok map_into, %zu elements\n", halves.size());

  const std::vector<std::int64_t> nothing = pool.map(affine, std::vector<std::int32_t>{});
  if (!nothing.empty()) return fail("an empty map returned something");

  if (pool.nodes() == 1) {  // in place, in the node's window: every rank fills its part of the input
    auto shared_input = pool.make_shared_array<std::int32_t>(size);
    auto shared_output = pool.make_shared_array<std::int64_t>(size);
    for (std::size_t i = static_cast<std::size_t>(pool.rank()); i < size; i += static_cast<std::size_t>(pool.ranks()))
      shared_input.data()[i] = static_cast<std::int32_t>(i);
    pool.barrier(shared_input);
    pool.map_into(affine, shared_input, shared_output);
    if (pool.is_root()) {
      for (std::size_t i = 0; i < size; ++i) {
        if (shared_output.data()[i] != 3 * static_cast<std::int64_t>(i) + 1)
          return fail("in place: wrong at " + std::to_string(i));
      }
      std::printf("ok in place, %zu elements\n", size);
    }
  }
  if (pool.is_root()) std::printf("ok %d ranks on %d nodes\n", pool.ranks(), pool.nodes());
  return 0;
}
