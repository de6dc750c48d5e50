#include "mpdemo/sys/timing.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace {

TEST(FormatDuration, PicksAUnitAndThreeSignificantDigits) {
  EXPECT_EQ(mpdemo::format_duration(1.25), "1.25 s");
  EXPECT_EQ(mpdemo::format_duration(0.0062), "6.20 ms");
  EXPECT_EQ(mpdemo::format_duration(95.34e-6), "95.3 us");
  EXPECT_EQ(mpdemo::format_duration(123.4e-9), "123 ns");
  EXPECT_EQ(mpdemo::format_duration(999.7e-9), "1.00 us");  // rounding carries into the next unit
  EXPECT_EQ(mpdemo::format_duration(9.999e-3), "10.0 ms");
  EXPECT_EQ(mpdemo::format_duration(0.0), "0");
}

TEST(BenchmarkBox, IsTheLessonsDecoratorOutput) {
  const std::string dashes(50, '-');
  const std::string title = dashes + " array_squared_sp " + dashes;
  EXPECT_EQ(mpdemo::benchmark_box("array_squared_sp", 0.0000123),
            title + "\nfunc: array_squared_sp executed in 0.00001s.\n" + std::string(title.size(), '-') + "\n");
  EXPECT_NE(mpdemo::benchmark_box("f", 1.5).find("func: f executed in 1.50000s."), std::string::npos);
}

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
