// Sweep: the crossover finder and the cost model on synthetic timings, the three data paths on real
// workers, and the sweep command's JSON, CSV and plots (with and without gnuplot).
#include "mpdemo/lab/sweep.hpp"

#include "mpdemo/lab/kernels.hpp"
#include "mpdemo/pool/process_pool.hpp"
#include "mpdemo/sys/spawn.hpp"
#include "support/run_program.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

namespace {

using mpdemo::testing::run_mpdemo;
using ::testing::HasSubstr;

const std::vector<std::size_t> kSizes{10, 100, 1000, 10000};

TEST(Crossover, FoundAtTheFirstSizeWhereTheMethodIsFaster) {
  const std::vector<double> loop{1, 10, 100, 1000};
  const std::vector<double> pool{50, 55, 80, 520};
  EXPECT_EQ(mpdemo::find_crossover(kSizes, loop, pool), std::optional<std::size_t>(1000));
}

TEST(Crossover, NeverCrosses) {
  const std::vector<double> loop{1, 10, 100, 1000};
  const std::vector<double> pool{50, 60, 150, 1500};
  EXPECT_EQ(mpdemo::find_crossover(kSizes, loop, pool), std::nullopt);
}

TEST(Crossover, CrossesAtTheFirstSize) {
  const std::vector<double> loop{5, 10, 100, 1000};
  const std::vector<double> pool{4, 6, 60, 600};
  EXPECT_EQ(mpdemo::find_crossover(kSizes, loop, pool), std::optional<std::size_t>(10));
}

TEST(CostModel, FitsFixedAndPerElementCosts) {
  // t = 2 + 0.5 n, exactly.
  const std::vector<double> seconds{2 + 5, 2 + 50, 2 + 500, 2 + 5000};
  const mpdemo::CostModel model = mpdemo::fit_cost_model(kSizes, seconds);
  EXPECT_DOUBLE_EQ(model.per_element_seconds, 0.5);
  EXPECT_DOUBLE_EQ(model.fixed_seconds, 2.0);
  EXPECT_DOUBLE_EQ(model.at(100), 52.0);
}

TEST(CostModel, PredictsWhereTwoModelsCross) {
  const mpdemo::CostModel loop{0.0, 1.0};
  const mpdemo::CostModel pool{100.0, 0.5};
  EXPECT_DOUBLE_EQ(*mpdemo::predict_crossover(loop, pool), 200.0);                          // 100 + 0.5 n = n
  EXPECT_EQ(mpdemo::predict_crossover(loop, mpdemo::CostModel{100.0, 1.5}), std::nullopt);  // never catches up
  EXPECT_EQ(mpdemo::predict_crossover(loop, mpdemo::CostModel{0.0, 0.5}), std::optional<double>(0.0));
}

TEST(Sweep, AnalysisOfSyntheticPointsGivesBothCrossovers) {
  mpdemo::SweepResult result;
  result.options.routes = {mpdemo::DataRoute::shared()};
  const std::vector<double> loop{1e-8, 1e-7, 1e-6, 1e-5, 1e-4};
  const std::vector<double> pool{2e-5, 2e-5, 2.05e-5, 2.5e-5, 7e-5};  // 2e-5 + 5e-10 n
  std::size_t n = 10;
  for (std::size_t i = 0; i < loop.size(); ++i, n *= 10) {
    mpdemo::SweepPoint point;
    point.size = n;
    point.sequential = loop[i];
    point.pool_with_start = {pool[i]};
    point.pool_warm = {pool[i]};
    result.points.push_back(point);
  }
  mpdemo::analyse_sweep(result);
  ASSERT_EQ(result.crossovers.size(), 1u);
  EXPECT_EQ(result.crossovers[0].measured, std::optional<std::size_t>(100000));
  ASSERT_TRUE(result.crossovers[0].predicted.has_value());
  // 2e-5 + 5e-10 n = 1e-9 n  =>  n = 40000
  EXPECT_NEAR(*result.crossovers[0].predicted, 40000, 1000);
}

TEST(DataPaths, PipeCopyAndSharedGiveIdenticalResults) {
  mpdemo::ProcessPool pool(2);
  std::mt19937_64 engine(3);
  std::uniform_real_distribution<double> uniform(0, 1);
  const std::size_t n = 123'457;
  std::vector<double> input(n);
  for (double& x : input) x = uniform(engine);
  const mpdemo::SquaredWithWork kernel{7};
  std::vector<double> expected(n);
  for (std::size_t i = 0; i < n; ++i) {
    double y = input[i] * input[i];
    for (int k = 0; k < 7; ++k) y = y * 0.999999 + 1e-7;
    expected[i] = y;
  }
  std::vector<double> through_pipes(n);
  pool.map_into(kernel, input, through_pipes, 0, mpdemo::DataPath::pipe);
  std::vector<double> copied(n);
  pool.map_into(kernel, input, copied);
  auto shared_in = pool.make_shared_array<double>(n);
  auto shared_out = pool.make_shared_array<double>(n);
  std::copy(input.begin(), input.end(), shared_in.begin());
  pool.map_into(kernel, shared_in, shared_out);
  EXPECT_EQ(through_pipes, expected);
  EXPECT_EQ(copied, expected);
  EXPECT_TRUE(std::equal(shared_out.begin(), shared_out.end(), expected.begin()));
}

TEST(Sweep, RunsEveryMethodAndVerifiesThem) {
  mpdemo::SweepOptions options;
  options.sizes = {1000, 10, 20000};
  options.repeat = 1;
  options.workers = 2;
  options.work = 3;
  const mpdemo::SweepResult result = mpdemo::run_sweep(options);
  ASSERT_EQ(result.points.size(), 3u);
  EXPECT_EQ(result.points[0].size, 10u) << "sizes are run in ascending order";
  for (const auto& point : result.points) {
    EXPECT_TRUE(point.verified) << point.size;
    EXPECT_GT(point.sequential, 0);
    EXPECT_GT(point.threads_warm, 0);
    ASSERT_EQ(point.pool_warm.size(), 3u);
    for (double t : point.pool_with_start) EXPECT_GT(t, 0);
  }
  EXPECT_EQ(result.crossovers.size(), 3u);
}

// With a fork server, every process pool of the sweep has its workers forked by it: the warm pool's,
// once, and each fresh pool's, once per route and repeat; and every method is still verified.
TEST(Sweep, WithAForkServerEveryProcessPoolIsForkedByIt) {
  if (!mpdemo::ForkServer::supported()) GTEST_SKIP() << "no fork server on this machine (ForkServer::supported)";
  mpdemo::SweepOptions options;
  options.sizes = {1000, 20000};
  options.repeat = 2;
  options.workers = 2;
  options.fork_server = mpdemo::ProcessPool::start_fork_server();
  const mpdemo::SweepResult result = mpdemo::run_sweep(options);
  ASSERT_EQ(result.points.size(), 2u);
  for (const auto& point : result.points) EXPECT_TRUE(point.verified) << point.size;
  const std::size_t routes = std::size(mpdemo::kAllRoutes);
  EXPECT_EQ(options.fork_server->children_forked(), 2 * (1 + 2 * routes * 2))
      << "two workers each: the warm pool, and a fresh pool per size, route and repeat";
}

TEST(Sweep, SkipsSizesBeyondTheTimeBudget) {
  mpdemo::SweepOptions options;
  // The last would take minutes: predicted from the size before it, then skipped. The budget is
  // far above what the two small sizes cost even on a loaded machine, which this test must not
  // depend on (a 0.5 s budget once skipped 100 on a slow CI machine).
  options.sizes = {10, 100, 1'000'000'000};
  options.repeat = 1;
  options.max_seconds = 10;
  options.routes = {mpdemo::DataRoute::shared()};
  const mpdemo::SweepResult result = mpdemo::run_sweep(options);
  EXPECT_EQ(result.points.size(), 2u);
  EXPECT_EQ(result.skipped, std::vector<std::size_t>{1'000'000'000});
}

// --- the command ---------------------------------------------------------------------------------

const std::vector<std::string> kQuickSweep{"sweep", "--sizes", "10,1000,1e4", "--repeat", "1", "--workers", "2"};

std::vector<std::string> quick_sweep(std::vector<std::string> extra) {
  std::vector<std::string> args = kQuickSweep;
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

// Whether a CSV row is a process pool's ("proc" or "proc+start"), which has a start method.
bool is_process_pool_row(const std::string& line) {
  return line.find(",proc,") != std::string::npos || line.find(",proc+start,") != std::string::npos;
}

TEST(SweepCommand, JsonHasRowsForEveryMethodAndTheCrossovers) {
  const auto result = run_mpdemo(quick_sweep({"--format", "json"}));
  ASSERT_EQ(result.exit_code(), 0) << result.err;
  const auto json = nlohmann::json::parse(result.out);
  EXPECT_TRUE(json.at("verified").get<bool>());
  EXPECT_EQ(json.at("rows").size(), 3u * 9u);  // 3 sizes x (seq, 2 thread, 2 x 3 routes)
  for (const auto& row : json.at("rows")) {
    EXPECT_GT(row.at("seconds").get<double>(), 0.0);
    EXPECT_LE(row.at("seconds").get<double>(), result.wall_seconds) << "longer than the whole sweep, by our clock";
    EXPECT_TRUE(row.contains("speedup_vs_seq"));
    EXPECT_TRUE(row.contains("data"));
  }
  ASSERT_EQ(json.at("crossovers").size(), 3u);
  for (const auto& c : json.at("crossovers")) {
    EXPECT_TRUE(c.contains("measured"));
    EXPECT_TRUE(c.contains("predicted"));
  }
}

TEST(SweepCommand, WithAForkServerTheTableTheJsonAndTheCsvSaySo) {
  if (!mpdemo::ForkServer::supported()) GTEST_SKIP() << "no fork server on this machine (ForkServer::supported)";
  const auto json_run =
      run_mpdemo(quick_sweep({"--start-method", "forkserver", "--format", "json", "--data", "shared"}));
  ASSERT_EQ(json_run.exit_code(), 0) << json_run.err;
  const auto json = nlohmann::json::parse(json_run.out);
  EXPECT_EQ(json.at("start_method"), "forkserver");
  EXPECT_TRUE(json.at("verified").get<bool>());
  const auto table = run_mpdemo(quick_sweep({"--start-method", "forkserver", "--data", "shared"}));
  ASSERT_EQ(table.exit_code(), 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr("2 workers forked by a fork server (--start-method forkserver)"));
  // Every process pool's row says how its workers were forked; the loop's and the threads' have none.
  const auto csv = run_mpdemo(quick_sweep({"--start-method", "forkserver", "--format", "csv", "--data", "shared"}));
  ASSERT_EQ(csv.exit_code(), 0) << csv.err;
  std::istringstream lines(csv.out);
  std::size_t pool_rows = 0;
  for (std::string line; std::getline(lines, line);) {
    const bool pool_row = is_process_pool_row(line);
    pool_rows += pool_row ? 1 : 0;
    if (line.starts_with("size,")) continue;
    EXPECT_TRUE(line.ends_with(pool_row ? ",forkserver" : ",-")) << line;
  }
  EXPECT_EQ(pool_rows, 3u * 2u);
  const auto plain = run_mpdemo(quick_sweep({"--format", "json", "--data", "shared"}));
  ASSERT_EQ(plain.exit_code(), 0) << plain.err;
  EXPECT_EQ(nlohmann::json::parse(plain.out).at("start_method"), "fork");
}

TEST(SweepCommand, CsvHasTheDocumentedColumns) {
  const auto result = run_mpdemo(quick_sweep({"--format", "csv", "--data", "shared"}));
  ASSERT_EQ(result.exit_code(), 0) << result.err;
  std::istringstream lines(result.out);
  std::string header;
  std::getline(lines, header);
  EXPECT_EQ(header, "size,method,data,seconds,speedup_vs_seq,start_method");
  std::size_t rows = 0;
  for (std::string line; std::getline(lines, line); ++rows) {
    EXPECT_EQ(std::count(line.begin(), line.end(), ','), 5) << line;
    const bool pool_row = is_process_pool_row(line);
    EXPECT_TRUE(line.ends_with(pool_row ? ",fork" : ",-")) << line;
  }
  EXPECT_EQ(rows, 3u * 5u);  // seq, threads, threads+start, proc, proc+start
}

TEST(SweepCommand, TableNamesTheCrossover) {
  const auto result = run_mpdemo(quick_sweep({"--work", "50"}));
  ASSERT_EQ(result.exit_code(), 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("Crossover"));
  EXPECT_THAT(result.out, HasSubstr("predicted"));
  EXPECT_THAT(result.out, HasSubstr("proc+start pipe"));
}

class SweepPlot : public ::testing::TestWithParam<std::string> {};

TEST_P(SweepPlot, WritesANonEmptyImage) {
  const auto path = std::filesystem::temp_directory_path() / ("mpdemo-sweep-test." + GetParam());
  std::filesystem::remove(path);
  const auto result = run_mpdemo(quick_sweep({"--plot", path.string()}));
  ASSERT_EQ(result.exit_code(), 0) << result.err;
  ASSERT_TRUE(std::filesystem::exists(path));
  std::ifstream image(path, std::ios::binary);
  std::ostringstream contents;
  contents << image.rdbuf();
  if (GetParam() == "png") {
    EXPECT_EQ(contents.str().substr(1, 3), "PNG");
  } else {
    EXPECT_THAT(contents.str(), HasSubstr("<svg"));
  }
  EXPECT_GT(std::filesystem::file_size(path), 1000u);
  std::filesystem::remove(path);
}
INSTANTIATE_TEST_SUITE_P(Formats, SweepPlot, ::testing::Values("png", "svg"));

TEST(SweepCommand, PlotsToTheTerminal) {
  const auto result = run_mpdemo(quick_sweep({"--plot", "-"}));
  ASSERT_EQ(result.exit_code(), 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("Speedup over the loop"));
  EXPECT_THAT(result.out, HasSubstr("as fast as the loop"));
}

TEST(SweepCommand, WithoutGnuplotSaysHowToInstallItAndKeepsTheTable) {
  ASSERT_EQ(::setenv("MPDEMO_GNUPLOT", "/nonexistent/gnuplot", 1), 0);  // inherited by the child
  const auto path = std::filesystem::temp_directory_path() / "mpdemo-no-gnuplot.png";
  const auto result = run_mpdemo(quick_sweep({"--plot", path.string()}));
  ::unsetenv("MPDEMO_GNUPLOT");
  std::filesystem::remove(path);
  EXPECT_EQ(result.exit_code(), 2);
  EXPECT_THAT(result.err, HasSubstr("apt-get install gnuplot-nox"));
  EXPECT_THAT(result.out, HasSubstr("Crossover")) << "the table must still print";
}

TEST(SweepCommand, BadPlotPathsAndOptionsExitWith2) {
  for (const std::vector<std::string>& extra : {std::vector<std::string>{"--plot", "/nonexistent-dir/x.png"},
                                                {"--plot", "chart.jpg"},
                                                {"--max-seconds", "0"},
                                                {"--max-seconds", "-3"},
                                                {"--data", "carrier-pigeon"},
                                                {"--work", "-1"},
                                                {"--sizes", "10,abc"},
                                                {"--repeat", "0"},
                                                {"--format", "xml"},
                                                {"--start-method", "spawn"}}) {
    const auto result = run_mpdemo(quick_sweep(extra));
    EXPECT_EQ(result.exit_code(), 2) << extra[0] << " " << extra[1] << ": " << result.err;
    EXPECT_TRUE(result.out.empty()) << extra[0] << " " << extra[1];
    EXPECT_THAT(result.err, HasSubstr(extra[0]));
  }
}

TEST(SweepCommand, ProgressOnlyWhenStderrIsATerminal) {
  // Not a terminal: nothing on stderr.
  const auto piped = run_mpdemo(quick_sweep({"--data", "shared"}));
  ASSERT_EQ(piped.exit_code(), 0) << piped.err;
  EXPECT_EQ(piped.err.find("sweep: size"), std::string::npos) << piped.err;
  // A terminal, through script(1) from util-linux: the progress line is there.
  if (!std::filesystem::exists("/usr/bin/script")) GTEST_SKIP() << "no /usr/bin/script to give mpdemo a terminal";
  const std::string command = std::string("/usr/bin/script -qec '") + MPDEMO_EXECUTABLE +
                              " sweep --sizes 10,1000 --repeat 1 --workers 2 --data shared' /dev/null";
  FILE* terminal = ::popen(command.c_str(), "r");
  ASSERT_NE(terminal, nullptr);
  std::string seen;
  char buffer[4096];
  for (std::size_t got; (got = std::fread(buffer, 1, sizeof(buffer), terminal)) > 0;) seen.append(buffer, got);
  EXPECT_EQ(::pclose(terminal), 0);
  EXPECT_THAT(seen, HasSubstr("sweep: size 1000 (2/2)"));
  EXPECT_THAT(seen, HasSubstr("Crossover"));
}

TEST(CostsCommand, JsonAndCsvHaveTheDocumentedFields) {
  const auto json_run = run_mpdemo({"costs", "--repeat", "1", "--large-parent-mib", "16", "--format", "json"});
  ASSERT_EQ(json_run.exit_code(), 0) << json_run.err;
  const auto json = nlohmann::json::parse(json_run.out);
  ASSERT_GE(json.size(), 10u);
  for (const auto& cost : json) {
    for (const char* field : {"name", "unit", "median", "min", "max", "repeats", "lesson"}) {
      EXPECT_TRUE(cost.contains(field)) << field;
    }
  }
  const auto csv_run = run_mpdemo({"costs", "--repeat", "1", "--large-parent-mib", "16", "--format", "csv"});
  ASSERT_EQ(csv_run.exit_code(), 0) << csv_run.err;
  EXPECT_EQ(csv_run.out.substr(0, csv_run.out.find('\n')).substr(0, 10), "name,unit,");
  const auto bad = run_mpdemo({"costs", "--repeat", "0"});
  EXPECT_EQ(bad.exit_code(), 2);
  EXPECT_THAT(bad.err, HasSubstr("--repeat"));
}

}  // namespace
