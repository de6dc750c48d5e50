// The report layer on fixed data: every figure under its own name, in its own column, and every
// sentence saying what the numbers say. Distinct values everywhere, so a swapped or mislabelled value
// cannot pass.
#include "mpdemo/report/benchmark.hpp"
#include "mpdemo/report/costs.hpp"
#include "mpdemo/report/format.hpp"
#include "mpdemo/report/phases.hpp"
#include "mpdemo/report/topology.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace {

using mpdemo::CostMeasurement;
using ::testing::HasSubstr;

// ---- Numbers for people ---------------------------------------------------------------------------

TEST(CountAsPower, WritesPowersOfTenAsSuchAndOtherCountsWithCommas) {
  EXPECT_EQ(mpdemo::report::count_as_power(1000), "10^3");
  EXPECT_EQ(mpdemo::report::count_as_power(100'000'000), "10^8");
  EXPECT_EQ(mpdemo::report::count_as_power(2), "2");
  EXPECT_EQ(mpdemo::report::count_as_power(1), "1");
  EXPECT_EQ(mpdemo::report::count_as_power(30'000), "30,000");
}

TEST(FormatDuration, PicksAUnitAndThreeSignificantDigits) {
  EXPECT_EQ(mpdemo::report::format_duration(1.25), "1.25 s");
  EXPECT_EQ(mpdemo::report::format_duration(0.0062), "6.20 ms");
  EXPECT_EQ(mpdemo::report::format_duration(95.34e-6), "95.3 us");
  EXPECT_EQ(mpdemo::report::format_duration(123.4e-9), "123 ns");
  EXPECT_EQ(mpdemo::report::format_duration(999.7e-9), "1.00 us");  // rounding carries into the next unit
  EXPECT_EQ(mpdemo::report::format_duration(9.999e-3), "10.0 ms");
  EXPECT_EQ(mpdemo::report::format_duration(0.0), "0");
}

TEST(HumanBytes, WholeWhenExactOneDecimalOtherwise) {
  EXPECT_EQ(mpdemo::report::human_bytes(12), "12 B");
  EXPECT_EQ(mpdemo::report::human_bytes(512.0 * 1024 * 1024), "512 MiB");
  EXPECT_EQ(mpdemo::report::human_bytes(1.5 * 1024 * 1024 * 1024), "1.5 GiB");
  EXPECT_EQ(mpdemo::report::human_bytes(100e6), "95.4 MiB");
}

TEST(WithCommas, GroupsThousands) {
  EXPECT_EQ(mpdemo::report::with_commas(7), "7");
  EXPECT_EQ(mpdemo::report::with_commas(1000), "1,000");
  EXPECT_EQ(mpdemo::report::with_commas(10'000'000), "10,000,000");
}

TEST(ComparedWith, SaysFasterSlowerOrAboutTheSame) {
  EXPECT_EQ(mpdemo::report::compared_with(3.0, 1.0), "3.0x slower than");
  EXPECT_EQ(mpdemo::report::compared_with(1.0, 20.0), "20x faster than");
  EXPECT_EQ(mpdemo::report::compared_with(1.1, 1.0), "about as fast as");
  EXPECT_EQ(mpdemo::report::ratio(1.0, 0.0), 0.0);  // a figure that could not be measured compares as nothing
}

TEST(BenchmarkBox, IsTheLessonsDecoratorOutput) {
  const std::string dashes(50, '-');
  const std::string title = dashes + " array_squared_sp " + dashes;
  EXPECT_EQ(mpdemo::report::benchmark_box("array_squared_sp", 0.0000123),
            title + "\nfunc: array_squared_sp executed in 0.00001s.\n" + std::string(title.size(), '-') + "\n");
  EXPECT_NE(mpdemo::report::benchmark_box("f", 1.5).find("func: f executed in 1.50000s."), std::string::npos);
}

TEST(Printable, EscapesControlCharactersAndCutsLongText) {
  EXPECT_EQ(mpdemo::report::printable("a\nb\x1b"), "a\\nb\\x1b");
  EXPECT_EQ(mpdemo::report::printable(std::string(50, 'x'), 10), std::string(10, 'x') + "... (50 characters)");
}

// ---- Phases ---------------------------------------------------------------------------------------

const mpdemo::PhaseTimes kPhases{0.001, 0.002, 0.003, 0.004, 0.005};

TEST(PhaseReport, EachPhaseIsInTheJsonUnderItsOwnName) {
  const nlohmann::json json = mpdemo::report::phases_json(kPhases);
  EXPECT_EQ(json.at("start").get<double>(), kPhases.start_workers);
  EXPECT_EQ(json.at("move_in").get<double>(), kPhases.move_in);
  EXPECT_EQ(json.at("compute").get<double>(), kPhases.compute);
  EXPECT_EQ(json.at("collect").get<double>(), kPhases.collect);
  EXPECT_EQ(json.at("stop").get<double>(), kPhases.stop_workers);
  EXPECT_DOUBLE_EQ(json.at("total").get<double>(), 0.015);
  EXPECT_FALSE(mpdemo::report::phases_json(kPhases, false).contains("total"));
}

TEST(PhaseReport, CellsLineUpUnderTheirHeadingsInOrder) {
  const std::string headings = mpdemo::report::phase_headings();
  const std::string cells = mpdemo::report::phase_cells(kPhases);
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
  EXPECT_THAT(mpdemo::report::phase_seconds_cells(kPhases), HasSubstr("0.00300"));
}

// ---- Costs ----------------------------------------------------------------------------------------

std::vector<CostMeasurement> sample_costs() {
  return {
      {"fork_small_parent", "seconds per fork", {1e-4, 9e-5, 2e-4}, 9, true, {{"times_thread_start", 5.0}}},
      {"thread_start", "seconds per thread", {2e-5, 1e-5, 3e-5}, 9, true, {}},
      {"context_switch_two_cores", "seconds per switch", {}, 0, false, {}},
  };
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

TEST(CostLesson, SaysTheRowsOwnFiguresAndThoseItIsComparedWith) {
  const std::vector<CostMeasurement> costs = sample_costs();
  EXPECT_EQ(mpdemo::report::cost_lesson(costs[0], costs),
            "Starting and reaping a process (fork, _exit, waitpid) costs 100 us with a small parent, 5x the 20.0 us "
            "of starting and joining a thread.");
  EXPECT_THAT(mpdemo::report::cost_lesson(costs[1], costs), HasSubstr("costs 20.0 us"));
  EXPECT_THAT(mpdemo::report::cost_lesson(costs[2], costs), HasSubstr("Not measurable here"));
}

TEST(CostsJson, HasTheDocumentedFieldsAndNullTimesWhenNotMeasurable) {
  const std::vector<CostMeasurement> costs = sample_costs();
  const nlohmann::json rows = nlohmann::json::parse(mpdemo::report::costs_json(costs));
  ASSERT_TRUE(rows.is_array());
  ASSERT_EQ(rows.size(), 3U);
  for (const char* field : {"name", "unit", "measurable", "median", "min", "max", "repeats", "lesson", "details"}) {
    EXPECT_TRUE(rows[0].contains(field)) << field;
    EXPECT_TRUE(rows[2].contains(field)) << field;
  }
  EXPECT_EQ(rows[0]["name"], "fork_small_parent");
  EXPECT_EQ(rows[0]["unit"], "seconds per fork");
  EXPECT_EQ(rows[0]["measurable"], true);
  EXPECT_DOUBLE_EQ(rows[0]["median"].get<double>(), 1e-4);
  EXPECT_DOUBLE_EQ(rows[0]["min"].get<double>(), 9e-5);
  EXPECT_DOUBLE_EQ(rows[0]["max"].get<double>(), 2e-4);
  EXPECT_EQ(rows[0]["repeats"], 9);
  EXPECT_EQ(rows[0]["lesson"], mpdemo::report::cost_lesson(costs[0], costs));
  EXPECT_DOUBLE_EQ(rows[0]["details"]["times_thread_start"].get<double>(), 5.0);
  EXPECT_EQ(rows[2]["measurable"], false);
  EXPECT_TRUE(rows[2]["median"].is_null());
  EXPECT_TRUE(rows[2]["details"].is_object());
}

TEST(CostsCsv, HasAHeaderAndQuotesFieldsThatNeedIt) {
  const std::vector<CostMeasurement> costs = sample_costs();
  const std::vector<std::string> lines = lines_of(mpdemo::report::costs_csv(costs));
  ASSERT_EQ(lines.size(), 4U);
  EXPECT_EQ(lines[0], "name,unit,measurable,median,min,max,repeats,lesson,details");
  // The lesson holds commas: quoted.
  EXPECT_EQ(lines[1], "fork_small_parent,seconds per fork,true,0.0001,9e-05,0.0002,9,\"" +
                          mpdemo::report::cost_lesson(costs[0], costs) + "\",times_thread_start=5");
  EXPECT_EQ(lines[3].rfind("context_switch_two_cores,seconds per switch,false,,,,0,", 0), 0U) << lines[3];
  EXPECT_EQ(mpdemo::report::csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
}

TEST(CostsTable, PrintsEveryRowAndOneLessonPerLine) {
  const std::vector<CostMeasurement> costs = sample_costs();
  const std::string table = mpdemo::report::costs_table(costs);
  const std::vector<std::string> lines = lines_of(table);
  EXPECT_THAT(table, HasSubstr("fork_small_parent"));
  EXPECT_THAT(table, HasSubstr("[90.0 us, 200 us]"));
  EXPECT_THAT(table, HasSubstr("not measurable"));
  for (const CostMeasurement& cost : costs) {
    const std::string lesson = "- " + mpdemo::report::cost_lesson(cost, costs);
    EXPECT_NE(std::find(lines.begin(), lines.end(), lesson), lines.end()) << lesson;
  }
}

// ---- Benchmark figures ----------------------------------------------------------------------------

TEST(BenchmarkFigures, AJudgedFigureShowsTheDigitItsVerdictTurnsOn) {
  mpdemo::report::BenchmarkReport report;
  report.figures.push_back(
      {"ceiling", "warm pool at 10^8 over the ceiling", {0.9649, 0.801, 1.0449}, "x", ">= 0.97x", false});
  report.figures.push_back({"fixed", "a map of 2", {3.456, 2.04, 5.26}, "us", "", std::nullopt});
  const std::string table = mpdemo::report::benchmark_table(report, false);
  // Two decimals would print the median as 0.96x or 0.97x; a reader must see why it misses 0.97x.
  EXPECT_THAT(table, HasSubstr("0.965x  [0.80x .. 1.04x]")) << table;
  EXPECT_THAT(table, HasSubstr(">= 0.97x"));
  EXPECT_THAT(table, HasSubstr("NO"));
  // A figure with no target keeps its usual digits.
  EXPECT_THAT(table, HasSubstr("3.5 us  [2.0 us .. 5.3 us]")) << table;
}

// ---- Anchors: crossovers ---------------------------------------------------------------------------

mpdemo::report::BenchmarkTiming timed(std::string key, std::vector<double> seconds) {
  mpdemo::report::BenchmarkTiming t;
  t.key = std::move(key);
  t.seconds = std::move(seconds);
  return t;
}

// seq and a contender timed at each size (two rounds each); the contender's speedup per size is
// seq / contender.
mpdemo::report::AnchorsReport anchors(const std::vector<std::pair<double, double>>& seq_and_pool) {
  mpdemo::report::AnchorsReport report;
  report.modes = {{"seq", "loop", "seq"}, {"pool", "a pool", "seq"}, {"memcpy-1", "ceiling", ""}};
  std::size_t size = 100;
  for (const auto& [seq, pool] : seq_and_pool) {
    report.points.push_back({size, {timed("seq", {seq, seq}), timed("pool", {pool, pool}), timed("memcpy-1", {1, 1})}});
    size *= 10;
  }
  return report;
}

TEST(Crossover, IsTheSmallestSizeFromWhichTheModeStaysAhead) {
  // Behind at 10^2, ahead at 10^3, behind again at 10^4 (noise), ahead from 10^5 on.
  const auto report = anchors({{1, 2}, {2, 1}, {3, 4}, {4, 2}, {8, 2}});
  EXPECT_EQ(mpdemo::report::crossover(report, "pool"), std::optional<std::size_t>(100'000));
  const std::string table = mpdemo::report::anchors_table(report);
  EXPECT_THAT(table, HasSubstr("pool           10^5"));
  EXPECT_THAT(table, HasSubstr("4.00x"));  // 8 / 2 at 10^6
  const std::string crossovers = table.substr(table.find("crossover"), table.find("modes:") - table.find("crossover"));
  EXPECT_THAT(crossovers, ::testing::Not(HasSubstr("memcpy-1")));  // a ceiling has no crossover
}

TEST(Crossover, IsNoneWhenTheModeIsBehindAtTheLargestSize) {
  const auto report = anchors({{1, 2}, {2, 1}, {3, 4}});
  EXPECT_EQ(mpdemo::report::crossover(report, "pool"), std::nullopt);
  EXPECT_THAT(mpdemo::report::anchors_table(report), HasSubstr("not ahead at 10^4"));
  const auto json = nlohmann::json::parse(mpdemo::report::anchors_json(report));
  EXPECT_TRUE(json.at("crossovers").at("pool").is_null());
  EXPECT_FALSE(json.at("crossovers").contains("memcpy-1"));
}

TEST(AnchorsJson, GivesTheFirstCallOfEachBatchWhereModesRanInBatches) {
  auto report = anchors({{1, 2}, {2, 1}});
  report.points[1].timings[1].first_seconds = {7.0, 9.0};
  const auto json = nlohmann::json::parse(mpdemo::report::anchors_json(report));
  const auto& batched = json.at("points").at(1).at("timings").at(1);
  EXPECT_EQ(batched.at("key"), "pool");
  EXPECT_EQ(batched.at("first_of_batch_seconds"), nlohmann::json({7.0, 9.0}));
  EXPECT_EQ(batched.at("seconds"), nlohmann::json({1.0, 1.0}));
  EXPECT_FALSE(json.at("points").at(0).at("timings").at(1).contains("first_of_batch_seconds"));
}

// ---- The machine -------------------------------------------------------------------------------

TEST(PagesText, SaysThePageSizeTheSettingAndHowToChangeIt) {
  const mpdemo::HugePages offered{.private_setting = "madvise", .shared_setting = "within_size"};
  EXPECT_THAT(mpdemo::report::private_pages_text(offered), HasSubstr("2 MiB huge pages"));
  EXPECT_THAT(mpdemo::report::private_pages_text(offered), HasSubstr("enabled: madvise"));
  EXPECT_THAT(mpdemo::report::shared_pages_text(offered), HasSubstr("2 MiB huge pages"));
  EXPECT_THAT(mpdemo::report::shared_pages_text(offered), HasSubstr("shmem_enabled: within_size"));

  const mpdemo::HugePages refused{.private_setting = "never", .shared_setting = "never"};
  EXPECT_THAT(mpdemo::report::private_pages_text(refused), HasSubstr("4 KiB pages"));
  EXPECT_THAT(mpdemo::report::private_pages_text(refused), HasSubstr("enabled: never"));
  const std::string shared = mpdemo::report::shared_pages_text(refused);
  EXPECT_THAT(shared, HasSubstr("4 KiB pages"));
  EXPECT_THAT(shared, HasSubstr("shmem_enabled: never"));
  EXPECT_THAT(shared, HasSubstr("echo advise > /sys/kernel/mm/transparent_hugepage/shmem_enabled"));

  // Where the 2 MiB size's own file decided, the text names it, and so does the advice.
  mpdemo::HugePages by_size = refused;
  by_size.private_setting_file = mpdemo::HugePages::kPrivateSizeSettingFile;
  by_size.shared_setting_file = mpdemo::HugePages::kSharedSizeSettingFile;
  EXPECT_THAT(mpdemo::report::private_pages_text(by_size), HasSubstr("(hugepages-2048kB/enabled: never)"));
  EXPECT_THAT(mpdemo::report::shared_pages_text(by_size), HasSubstr("(hugepages-2048kB/shmem_enabled: never)"));
  EXPECT_THAT(mpdemo::report::shared_pages_text(by_size),
              HasSubstr("echo advise > /sys/kernel/mm/transparent_hugepage/hugepages-2048kB/shmem_enabled"));

  mpdemo::HugePages own = refused;
  own.own_tmpfs = true;
  EXPECT_THAT(mpdemo::report::shared_pages_text(own), HasSubstr("2 MiB huge pages from mpdemo's own tmpfs"));
  EXPECT_THAT(mpdemo::report::shared_pages_text(own), HasSubstr("shmem_enabled: never"));
  EXPECT_THAT(mpdemo::report::shared_pages_text(own), HasSubstr("MPDEMO_OWN_TMPFS=0"));
  mpdemo::HugePages failed = refused;
  failed.own_tmpfs_failure = "mpdemo could not make its own tmpfs: fsopen(\"tmpfs\"): Operation not permitted";
  EXPECT_THAT(mpdemo::report::shared_pages_text(failed), HasSubstr("4 KiB pages"));
  EXPECT_THAT(mpdemo::report::shared_pages_text(failed), HasSubstr(failed.own_tmpfs_failure));

  const mpdemo::HugePages unknown{};
  EXPECT_THAT(mpdemo::report::private_pages_text(unknown), HasSubstr("no transparent huge pages"));
  EXPECT_THAT(mpdemo::report::shared_pages_text(unknown), HasSubstr("no transparent huge pages"));
}

// An arena that exists is described by where its pages came from: one the own tmpfs could not hold
// (ulimit -f) is the system's shared memory, in its page size, whatever the machine offers arenas.
TEST(PagesText, AnArenaIsDescribedByWhereItsPagesCameFrom) {
  mpdemo::HugePages own{.private_setting = "madvise", .shared_setting = "never"};
  own.own_tmpfs = true;
  EXPECT_EQ(mpdemo::report::arena_pages_text(own, mpdemo::SharedMemorySource::own_tmpfs),
            mpdemo::report::shared_pages_text(own));
  const std::string fell_back = mpdemo::report::arena_pages_text(own, mpdemo::SharedMemorySource::anonymous);
  EXPECT_THAT(fell_back, HasSubstr("4 KiB pages"));
  EXPECT_THAT(fell_back, HasSubstr("anonymous shared memory"));
  EXPECT_THAT(fell_back, HasSubstr("could not hold it"));
  EXPECT_THAT(fell_back, Not(HasSubstr("2 MiB")));

  // Where the system's shared memory gets huge pages, an anonymous arena has them: nothing fell back.
  const mpdemo::HugePages offered{.private_setting = "madvise", .shared_setting = "advise"};
  EXPECT_EQ(mpdemo::report::arena_pages_text(offered, mpdemo::SharedMemorySource::anonymous),
            mpdemo::report::shared_pages_text(offered));
}

TEST(TopologyReport, NamesThePageSizesInTheTableAndTheJson) {
  mpdemo::Topology topology;
  topology.logical_cpus = 4;
  topology.physical_cores = 2;
  topology.sockets = 1;
  const mpdemo::StoreRule stores{};
  const mpdemo::HugePages pages{.private_setting = "never", .shared_setting = "advise"};
  const std::string table = mpdemo::report::topology_table(topology, stores, pages);
  EXPECT_THAT(table, HasSubstr("private memory in " + mpdemo::report::private_pages_text(pages) + "\n"));
  EXPECT_THAT(table, HasSubstr("shared memory in " + mpdemo::report::shared_pages_text(pages) + "\n"));
  const auto json = nlohmann::json::parse(mpdemo::report::topology_json(topology, stores, pages));
  EXPECT_EQ(json.at("huge_pages_private").at("setting"), "never");
  EXPECT_EQ(json.at("huge_pages_private").at("offered"), false);
  EXPECT_EQ(json.at("huge_pages_shared").at("setting"), "advise");
  EXPECT_EQ(json.at("huge_pages_shared").at("offered"), true);
  EXPECT_EQ(json.at("huge_pages_shared").at("file"), mpdemo::HugePages::kSharedSettingFile);
  EXPECT_EQ(json.at("huge_pages_arena").at("huge"), true);
  EXPECT_EQ(json.at("huge_pages_arena").at("source"), "anonymous");
  mpdemo::HugePages own{.private_setting = "madvise", .shared_setting = "never"};
  own.own_tmpfs = true;
  const auto own_json = nlohmann::json::parse(mpdemo::report::topology_json(topology, stores, own));
  EXPECT_EQ(own_json.at("huge_pages_shared").at("offered"), false);
  EXPECT_EQ(own_json.at("huge_pages_arena").at("huge"), true);
  EXPECT_EQ(own_json.at("huge_pages_arena").at("source"), "own_tmpfs");
  const auto unknown = nlohmann::json::parse(mpdemo::report::topology_json(topology, stores, {}));
  EXPECT_TRUE(unknown.at("huge_pages_shared").at("setting").is_null());
}

}  // namespace
