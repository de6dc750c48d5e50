// The phase columns and JSON every report uses: each value under its own name, in its own column.
// Distinct values per phase, so a swapped or mislabelled phase cannot pass.
#include "phase_report.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace {

using ::testing::HasSubstr;

const mpdemo::PhaseTimes kPhases{0.001, 0.002, 0.003, 0.004, 0.005};

TEST(PhaseReport, EachPhaseIsInTheJsonUnderItsOwnName) {
  const nlohmann::json json = mpdemo::cli::phases_json(kPhases);
  EXPECT_EQ(json.at("start").get<double>(), kPhases.start_workers);
  EXPECT_EQ(json.at("move_in").get<double>(), kPhases.move_in);
  EXPECT_EQ(json.at("compute").get<double>(), kPhases.compute);
  EXPECT_EQ(json.at("collect").get<double>(), kPhases.collect);
  EXPECT_EQ(json.at("stop").get<double>(), kPhases.stop_workers);
  EXPECT_DOUBLE_EQ(json.at("total").get<double>(), 0.015);
  EXPECT_FALSE(mpdemo::cli::phases_json(kPhases, false).contains("total"));
}

TEST(PhaseReport, CellsLineUpUnderTheirHeadingsInOrder) {
  const std::string headings = mpdemo::cli::phase_headings();
  const std::string cells = mpdemo::cli::phase_cells(kPhases);
  ASSERT_EQ(headings.size(), cells.size()) << "'" << headings << "' vs '" << cells << "'";
  // Each duration ends where its heading ends.
  const std::vector<std::pair<std::string, std::string>> columns{{"start", "1.00 ms"},
                                                                 {"move in", "2.00 ms"},
                                                                 {"compute", "3.00 ms"},
                                                                 {"collect", "4.00 ms"},
                                                                 {"stop", "5.00 ms"}};
  for (const auto& [heading, cell] : columns) {
    const auto heading_end = headings.find(heading) + heading.size();
    const auto cell_end = cells.find(cell) + cell.size();
    EXPECT_EQ(heading_end, cell_end) << heading << " / " << cell << " in '" << cells << "'";
  }
  EXPECT_THAT(mpdemo::cli::phase_seconds_cells(kPhases), HasSubstr("0.00300"));
}

}  // namespace
