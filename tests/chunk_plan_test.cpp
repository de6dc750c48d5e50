#include "mpdemo/pool/chunk_plan.hpp"

#include <gtest/gtest.h>

namespace {

// Python's own formula, written out as Pool.map does it.
std::size_t python_chunksize(std::size_t n, std::size_t workers) {
  std::size_t chunksize = n / (workers * 4);
  if (n % (workers * 4) != 0) chunksize += 1;
  return chunksize;
}

TEST(ChunkPlan, DefaultChunksizeIsPythons) {
  for (std::size_t workers : {1u, 2u, 3u, 8u}) {
    for (std::size_t n : {0u, 1u, 7u, 8u, 9u, 100u, 1'000'003u}) {
      EXPECT_EQ(mpdemo::default_chunksize(n, workers), python_chunksize(n, workers)) << n << " / " << workers;
    }
  }
}

TEST(ChunkPlan, ChunksCoverEveryIndexOnceInOrder) {
  for (std::size_t n : {0u, 1u, 10u, 97u}) {
    for (std::size_t chunksize : {0u, 1u, 3u, 10u, 1000u}) {
      const mpdemo::ChunkPlan plan(n, chunksize, 2);
      std::size_t expected_begin = 0;
      for (std::size_t c = 0; c < plan.count(); ++c) {
        EXPECT_EQ(plan[c].begin, expected_begin);
        EXPECT_GT(plan[c].end, plan[c].begin);
        EXPECT_LE(plan[c].size(), plan.chunksize());
        expected_begin = plan[c].end;
      }
      EXPECT_EQ(expected_begin, n) << "n=" << n << " chunksize=" << chunksize;
    }
  }
}

}  // namespace
