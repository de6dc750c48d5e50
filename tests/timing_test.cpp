#include "mpdemo/sys/timing.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace {

TEST(Summary, MedianMinMax) {
  const std::vector<double> odd{3, 1, 2};
  const auto a = mpdemo::Summary::of(odd);
  EXPECT_EQ(a.median, 2);
  EXPECT_EQ(a.min, 1);
  EXPECT_EQ(a.max, 3);
  const std::vector<double> even{4, 1, 3, 2};
  EXPECT_EQ(mpdemo::Summary::of(even).median, 2.5);
  EXPECT_EQ(mpdemo::Summary::of(std::vector<double>{}).median, 0);
}

TEST(PhaseTimes, TotalIsTheSumOfThePhases) {
  const mpdemo::PhaseTimes phases{1, 2, 3, 4, 5};
  EXPECT_EQ(phases.total(), 15);
  const auto values = mpdemo::phase_values(phases);
  EXPECT_EQ(values[0], 1);
  EXPECT_EQ(values[4], 5);
}

}  // namespace
