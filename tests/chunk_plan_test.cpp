#include "mpdemo/pool/chunk_plan.hpp"
#include "mpdemo/pool/detail/chunk_queue.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
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

using mpdemo::detail::ChunkLocality;

/// A record in which a chunk new to its runner cost `new_over_known` times one it ran before: member
/// `member` ran `chunk` of 10 elements at 1 ns an element, having run it once before at
/// `new_over_known` ns an element.
ChunkLocality measured(double new_over_known, std::size_t member = 7, std::size_t chunk = 0) {
  ChunkLocality locality;
  locality.record(member, chunk, static_cast<std::int64_t>(10 * new_over_known), 10);
  locality.record(member, chunk, 10, 10);
  return locality;
}

TEST(ChunkLocality, AChunkIsNewToAMemberUntilItRunsItAndAgainAfterItsProcessIsReplaced) {
  ChunkLocality locality;
  EXPECT_FALSE(locality.ran_before(1, 3));
  EXPECT_EQ(locality.new_over_known_cost(), 0.0) << "nothing measured: no rule yet";
  locality.record(1, 3, 4000, 100);  // new to member 1: 40 ns an element
  EXPECT_TRUE(locality.ran_before(1, 3));
  EXPECT_FALSE(locality.ran_before(0, 3)) << "another member's page tables are its own";
  EXPECT_FALSE(locality.ran_before(1, 2));
  EXPECT_EQ(locality.new_over_known_cost(), 0.0) << "only new chunks measured: no ratio yet";
  locality.record(1, 3, 500, 100);  // known to member 1 now: 5 ns an element
  EXPECT_DOUBLE_EQ(locality.new_over_known_cost(), 8.0);
  locality.forget(1);
  EXPECT_FALSE(locality.ran_before(1, 3)) << "a replaced worker's process has touched nothing";
}

TEST(ChunkLocality, TheCostsAreTheMediansOfTheLastSixteenChunksOfEachKind) {
  ChunkLocality locality;
  for (std::size_t c = 0; c < 3; ++c)
    locality.record(0, c, static_cast<std::int64_t>(1000 * (c + 1)), 1);              // new: 1000, 2000, 3000
  for (std::size_t c = 0; c < 3; ++c) locality.record(0, c, c == 2 ? 9000 : 100, 1);  // known: 100, 100, 9000
  EXPECT_DOUBLE_EQ(locality.new_over_known_cost(), 20.0) << "a slow outlier does not make the rule";
  for (int i = 0; i < 16; ++i) locality.record(0, 0, 400, 1);  // the old known costs roll out
  EXPECT_DOUBLE_EQ(locality.new_over_known_cost(), 5.0);
}

TEST(ChunkQueue, AThiefFirstStealsAChunkItRanBefore) {
  ChunkQueue queue(9, 3, ChunkQueue::Order::by_worker_region);  // runs 0-2, 3-5, 6-8
  ChunkLocality locality = measured(100.0);                     // new pages cost 100x: no new steals
  locality.record(0, 5, 10, 10);                                // worker 0 ran chunk 5 before
  EXPECT_EQ(queue.take(1, &locality), 3u);
  EXPECT_EQ(queue.take(2, &locality), 6u);
  for (std::size_t c : {0u, 1u, 2u}) EXPECT_EQ(queue.take(0, &locality), c);
  ASSERT_TRUE(queue.has_for(0, &locality));
  EXPECT_EQ(queue.source(0, &locality), 1u);
  EXPECT_EQ(queue.take(0, &locality), 5u) << "worker 2's run is as full, but chunk 5's pages are worker 0's";
  EXPECT_FALSE(queue.has_for(0, &locality)) << "every chunk left is new to worker 0, and costs 100 of its owner's";
  EXPECT_TRUE(queue.has_for(0)) << "without the record, a steal is always allowed";
  EXPECT_EQ(queue.take(1, &locality), 4u) << "the owners finish their own runs";
}

TEST(ChunkQueue, AChunkNewToTheThiefIsStolenOnlyWhileItsOwnerHasEnoughLeftToPayForIt) {
  ChunkQueue queue(10, 2, ChunkQueue::Order::by_worker_region);  // runs 0-4, 5-9
  const ChunkLocality locality = measured(3.0);                  // a new chunk costs 3 known ones
  EXPECT_EQ(queue.take(1, &locality), 5u);                       // the owner of 5-9 has begun
  for (std::size_t c = 0; c < 5; ++c) EXPECT_EQ(queue.take(0, &locality), c);
  EXPECT_EQ(queue.take(0, &locality), 9u) << "6-9 left: the owner would reach 9 after 3 chunks";
  EXPECT_EQ(queue.take(0, &locality), 8u) << "6-8 left: as long as the thief takes";
  EXPECT_FALSE(queue.has_for(0, &locality)) << "6-7 left: the owner is there sooner";
  EXPECT_EQ(queue.left(), 2u);
}

TEST(ChunkQueue, ARunWhoseOwnerHasNotBegunIsHelpedWhateverItCosts) {
  // Its owner may be late, dead, or a caller whose map another thread hands out: waiting could hang.
  ChunkQueue queue(4, 2, ChunkQueue::Order::by_worker_region);  // runs 0-1, 2-3
  const ChunkLocality locality = measured(1000.0);
  EXPECT_EQ(queue.take(0, &locality), 0u);
  EXPECT_EQ(queue.take(0, &locality), 1u);
  EXPECT_EQ(queue.take(0, &locality), 3u);
  EXPECT_EQ(queue.take(0, &locality), 2u);
  EXPECT_TRUE(queue.empty());
}

TEST(ChunkQueue, ARunNotYetBegunIsHelpedEvenWhereABegunOneIsAsFull) {
  ChunkQueue queue(11, 3, ChunkQueue::Order::by_worker_region);  // runs 0-3, 4-7, 8-10
  const ChunkLocality locality = measured(100.0);
  EXPECT_EQ(queue.take(1, &locality), 4u);  // 5-7 left, begun; 8-10 left, worker 2 not there yet
  for (std::size_t c = 0; c < 4; ++c) EXPECT_EQ(queue.take(0, &locality), c);
  EXPECT_EQ(queue.take(0, &locality), 10u) << "worker 1's run is as full, but worker 2 may be late or dead";
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
