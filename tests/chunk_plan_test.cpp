#include "mpdemo/pool/chunk_plan.hpp"
#include "mpdemo/pool/detail/chunk_queue.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

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

using mpdemo::detail::ChunkQueue;

// Takes every chunk, worker after worker as listed in `turns` (cycled), and returns who took what.
std::vector<std::vector<std::size_t>> hand_out_all(ChunkQueue queue, std::size_t workers,
                                                   const std::vector<std::size_t>& turns) {
  std::vector<std::vector<std::size_t>> taken(workers);
  for (std::size_t t = 0; !queue.empty(); ++t) {
    const std::size_t worker = turns[t % turns.size()];
    const std::size_t peeked = queue.peek(worker);
    EXPECT_EQ(queue.take(worker), peeked) << "take must hand out what peek showed";
    taken[worker].push_back(peeked);
  }
  return taken;
}

TEST(ChunkQueue, InOrderHandsOutFirstComeFirstServed) {
  const auto taken = hand_out_all(ChunkQueue(6, 2, ChunkQueue::Order::in_order), 2, {1, 0});
  EXPECT_EQ(taken[1], (std::vector<std::size_t>{0, 2, 4}));
  EXPECT_EQ(taken[0], (std::vector<std::size_t>{1, 3, 5}));
}

TEST(ChunkQueue, ByRegionEachWorkerTakesItsOwnRunFromTheFront) {
  // Python's default chunksize gives four chunks per worker: worker 0 owns 0-3, worker 1 owns 4-7.
  const auto taken = hand_out_all(ChunkQueue(8, 2, ChunkQueue::Order::by_worker_region), 2, {0, 1});
  EXPECT_EQ(taken[0], (std::vector<std::size_t>{0, 1, 2, 3}));
  EXPECT_EQ(taken[1], (std::vector<std::size_t>{4, 5, 6, 7}));
}

TEST(ChunkQueue, AnIdleWorkerStealsFromTheBackOfTheFullestRun) {
  ChunkQueue queue(9, 3, ChunkQueue::Order::by_worker_region);  // runs 0-2, 3-5, 6-8
  for (int i = 0; i < 3; ++i) queue.take(0);                    // worker 0 is done with its own
  queue.take(1);                                                // worker 1 has 4-5 left, worker 2 6-8
  EXPECT_EQ(queue.take(0), 8u) << "the fullest run is worker 2's: its last chunk";
  EXPECT_EQ(queue.take(2), 6u) << "the owner still starts at its front";
  EXPECT_EQ(queue.left(), 3u);
}

TEST(ChunkQueue, EveryChunkIsHandedOutExactlyOnceWhateverTheTurns) {
  for (std::size_t chunks : {0u, 1u, 2u, 5u, 13u}) {
    for (std::size_t workers : {1u, 2u, 3u, 8u}) {
      for (const auto order : {ChunkQueue::Order::in_order, ChunkQueue::Order::by_worker_region}) {
        // Only worker 0 asks: it takes its own run, then steals all the others'.
        const auto taken = hand_out_all(ChunkQueue(chunks, workers, order), workers, {0, 0, workers - 1});
        std::vector<std::size_t> all;
        for (const auto& mine : taken) all.insert(all.end(), mine.begin(), mine.end());
        std::sort(all.begin(), all.end());
        std::vector<std::size_t> expected(chunks);
        for (std::size_t c = 0; c < chunks; ++c) expected[c] = c;
        EXPECT_EQ(all, expected) << chunks << " chunks, " << workers << " workers";
      }
    }
  }
}

TEST(ChunkQueue, FromOwnersEachWorkerTakesTheChunksItRanBefore) {
  // The last map: worker 1 stole chunks 2 and 3 from worker 0.
  const auto taken = hand_out_all(ChunkQueue({0, 0, 1, 1, 1, 1}, 2), 2, {0, 1, 0, 1, 1, 1});
  EXPECT_EQ(taken[0], (std::vector<std::size_t>{0, 1}));
  EXPECT_EQ(taken[1], (std::vector<std::size_t>{2, 3, 4, 5}));
}

TEST(ChunkQueue, DrainReturnsWhatWasNotHandedOut) {
  ChunkQueue queue(6, 2, ChunkQueue::Order::by_worker_region);
  queue.take(0);
  queue.take(1);
  std::vector<std::size_t> rest = queue.drain();
  std::sort(rest.begin(), rest.end());
  EXPECT_EQ(rest, (std::vector<std::size_t>{1, 2, 4, 5}));
  EXPECT_TRUE(queue.empty());
}

}  // namespace
