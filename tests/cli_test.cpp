// The mpdemo executable, run for real: its JSON, its lesson, and exit status 2 for every kind of bad input.
#include "mpdemo/lab/mpi_methods.hpp"
#include "mpdemo/sys/spawn.hpp"
#include "mpdemo/sys/topology.hpp"
#include "support/run_program.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <thread>

namespace {

using mpdemo::testing::run_mpdemo;
using ::testing::HasSubstr;
using ::testing::Not;

// --start-method forkserver: every process pool's workers forked by a fork server the run starts first;
// the results are verified as ever, and the run says how its workers were forked.
TEST(Cli, RunWithAForkServerVerifiesEveryModeAndSaysSo) {
  if (!mpdemo::ForkServer::supported()) GTEST_SKIP() << "no fork server on this machine (ForkServer::supported)";
  const auto result =
      run_mpdemo({"run", "--size", "100003", "--repeat", "1", "--start-method", "forkserver", "--format", "json"});
  ASSERT_EQ(result.exit_code(), 0) << result.err;
  const auto json = nlohmann::json::parse(result.out);
  EXPECT_EQ(json.at("start_method"), "forkserver");
  ASSERT_EQ(json.at("modes").size(), 6u);
  for (const auto& mode : json.at("modes")) EXPECT_TRUE(mode.at("verified").get<bool>()) << mode.at("name");
  const auto table =
      run_mpdemo({"run", "--size", "1000", "--repeat", "1", "--mode", "proc", "--start-method", "forkserver"});
  ASSERT_EQ(table.exit_code(), 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr("forked by a fork server (--start-method forkserver)"));
  const auto by_default = run_mpdemo({"run", "--size", "1000", "--repeat", "1", "--mode", "proc", "--format", "json"});
  ASSERT_EQ(by_default.exit_code(), 0) << by_default.err;
  EXPECT_EQ(nlohmann::json::parse(by_default.out).at("start_method"), "fork");
  // Bad input: a method mpdemo does not have, and a fork server under MPI.
  const auto spawn = run_mpdemo({"run", "--size", "1000", "--start-method", "spawn"});
  EXPECT_EQ(spawn.exit_code(), 2);
  EXPECT_THAT(spawn.err, HasSubstr("--start-method"));
  const auto mpi = run_mpdemo({"run", "--size", "1000", "--backend", "mpi", "--start-method", "forkserver"});
  EXPECT_EQ(mpi.exit_code(), 2);
  EXPECT_THAT(mpi.err, HasSubstr("--start-method forkserver is for the local pools"));
}

TEST(Cli, TheLessonWithAForkServerSaysSoAndVerifiesEverything) {
  if (!mpdemo::ForkServer::supported()) GTEST_SKIP() << "no fork server on this machine (ForkServer::supported)";
  const auto result = run_mpdemo({"--large-size", "20000", "--start-method", "forkserver"});
  ASSERT_EQ(result.exit_code(), 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("the process pools' workers forked by a fork server started before the arrays"));
  std::size_t verified = 0;
  for (std::size_t at = result.out.find("All results match"); at != std::string::npos;
       at = result.out.find("All results match", at + 1)) {
    ++verified;
  }
  EXPECT_EQ(verified, 2u) << result.out;  // both sizes
  const auto unknown = run_mpdemo({"--start-method", "spawn"});
  EXPECT_EQ(unknown.exit_code(), 2);
  EXPECT_THAT(unknown.err, HasSubstr("--start-method"));
}

TEST(Cli, RunWithTheCallerComputingVerifiesEveryModeWithATeamOfOneWorkerFewer) {
  const auto result = run_mpdemo({"run", "--size", "100003", "--repeat", "1", "--caller-computes", "--format", "json"});
  ASSERT_EQ(result.exit_code(), 0) << result.err;
  const auto json = nlohmann::json::parse(result.out);
  EXPECT_EQ(json.at("caller_computes"), true);
  const std::size_t cores = mpdemo::system_topology().default_workers();
  const std::size_t workers = cores > 1 ? cores - 1 : 1;
  EXPECT_EQ(json.at("workers"), workers) << "the caller takes one core's share";
  EXPECT_EQ(json.at("chunksize"), (100003 + 4 * (workers + 1) - 1) / (4 * (workers + 1))) << "cut for the team";
  ASSERT_EQ(json.at("modes").size(), 6u);
  for (const auto& mode : json.at("modes")) EXPECT_TRUE(mode.at("verified").get<bool>()) << mode.at("name");
  // An explicit --workers is the number of workers; the caller comes on top, and the table says so.
  const auto table = run_mpdemo(
      {"run", "--size", "1000", "--repeat", "1", "--caller-computes", "--workers", "2", "--mode", "warm-proc"});
  ASSERT_EQ(table.exit_code(), 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr("2 workers and the caller computing (--caller-computes), chunksize 84"));
  const auto without =
      run_mpdemo({"run", "--size", "1000", "--repeat", "1", "--mode", "warm-proc", "--format", "json"});
  ASSERT_EQ(without.exit_code(), 0) << without.err;
  EXPECT_EQ(nlohmann::json::parse(without.out).at("caller_computes"), false);
  // The loop alone has no pool whose caller could share: the run says nothing of one.
  const auto loop = run_mpdemo({"run", "--size", "1000", "--repeat", "1", "--mode", "seq", "--caller-computes"});
  ASSERT_EQ(loop.exit_code(), 0) << loop.err;
  EXPECT_THAT(loop.out, Not(HasSubstr("caller computing")));
  // Over MPI rank 0 is pinned to its first worker's core: refused, with what to do instead.
  const auto mpi = run_mpdemo({"run", "--size", "1000", "--backend", "mpi", "--caller-computes"});
  EXPECT_EQ(mpi.exit_code(), 2);
  EXPECT_THAT(mpi.err, HasSubstr("--caller-computes is for the local pools: run it without --backend mpi"));
}

TEST(Cli, RunJsonHasEveryModeAndItsPhasesAddUp) {
  const auto result = run_mpdemo({"run", "--size", "100000", "--repeat", "3", "--workers", "2", "--format", "json"});
  ASSERT_EQ(result.exit_code(), 0) << result.err;
  const auto json = nlohmann::json::parse(result.out);
  EXPECT_EQ(json.at("size"), 100000);
  EXPECT_EQ(json.at("workers"), 2);
  EXPECT_EQ(json.at("chunksize"), 12500);  // ceil(100000 / (4 * 2)), Python's default
  std::set<std::string> names;
  for (const auto& mode : json.at("modes")) {
    names.insert(mode.at("name").get<std::string>());
    EXPECT_TRUE(mode.at("verified").get<bool>()) << mode.at("name");
    EXPECT_EQ(mode.at("repeats"), 3);
    const auto& total = mode.at("total");
    EXPECT_LE(total.at("min").get<double>(), total.at("median").get<double>());
    EXPECT_LE(total.at("median").get<double>(), total.at("max").get<double>());
    const auto& phases = mode.at("phases");
    double sum = 0;
    for (const char* phase : {"start", "move_in", "compute", "collect", "stop"}) {
      const double value = phases.at(phase).get<double>();
      EXPECT_GE(value, 0.0) << phase;
      sum += value;
    }
    EXPECT_NEAR(sum, phases.at("total").get<double>(), 1e-9);
    // With an odd number of repeats the median run is a real run: its total is the median.
    EXPECT_NEAR(phases.at("total").get<double>(), total.at("median").get<double>(), 1e-9);
    EXPECT_GT(phases.at("compute").get<double>(), 0.0);
    // The test's own clock: one run of a mode cannot take longer than the whole program did.
    EXPECT_LE(phases.at("total").get<double>(), result.wall_seconds) << mode.at("name");
    EXPECT_LE(total.at("max").get<double>(), result.wall_seconds) << mode.at("name");
  }
  EXPECT_EQ(names, (std::set<std::string>{"seq", "proc", "proc-copy", "thread", "warm-proc", "warm-thread"}));
}

TEST(Cli, RunOneModeWithAChunksize) {
  const auto result =
      run_mpdemo({"run", "-n", "1e4", "--mode", "proc", "--chunksize", "7", "--repeat", "1", "-f", "json"});
  ASSERT_EQ(result.exit_code(), 0) << result.err;
  const auto json = nlohmann::json::parse(result.out);
  EXPECT_EQ(json.at("size"), 10000);
  EXPECT_EQ(json.at("chunksize"), 7);
  ASSERT_EQ(json.at("modes").size(), 1u);
  EXPECT_EQ(json.at("modes")[0].at("name"), "proc");
  EXPECT_GT(json.at("modes")[0].at("phases").at("start").get<double>(), 0.0) << "a fresh pool pays its start";
}

TEST(Cli, RunTableSaysWhatWasVerified) {
  const auto result = run_mpdemo({"run", "--size", "1000", "--repeat", "1"});
  ASSERT_EQ(result.exit_code(), 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("warm-proc"));
  EXPECT_THAT(result.out, HasSubstr("yes"));
  EXPECT_THAT(result.out, ::testing::Not(HasSubstr(" NO")));
  EXPECT_THAT(result.out, HasSubstr("Fastest:"));
}

TEST(Cli, TheLessonPrintsItsBoxesAndVerifies) {
  const auto result = run_mpdemo({"--large-size", "200000"});
  ASSERT_EQ(result.exit_code(), 0) << result.err;
  const std::string dashes(50, '-');
  for (const char* name : {"array_squared_sp", "array_squared_mp", "array_squared_mp_copy", "array_squared_threads",
                           "array_squared_mp_warm"}) {
    const std::string title = dashes + " " + name + " " + dashes;
    EXPECT_THAT(result.out, HasSubstr(title + "\nfunc: " + name + " executed in ")) << name;
    EXPECT_THAT(result.out, HasSubstr("s.\n" + std::string(title.size(), '-') + "\n")) << name;
  }
  EXPECT_THAT(result.out, HasSubstr("physical cores"));
  EXPECT_THAT(result.out, HasSubstr("=== 10 numbers ==="));
  EXPECT_THAT(result.out, HasSubstr("=== 200,000 numbers ==="));
  EXPECT_THAT(result.out, HasSubstr("All results match the sequential answer exactly."));
  EXPECT_THAT(result.out, HasSubstr("Fastest:"));
}

TEST(Cli, TopologyJsonIsConsistent) {
  const auto result = run_mpdemo({"topology", "--format", "json"});
  ASSERT_EQ(result.exit_code(), 0) << result.err;
  const auto json = nlohmann::json::parse(result.out);
  EXPECT_GE(json.at("logical_cpus").get<int>(), json.at("physical_cores").get<int>());
  EXPECT_GE(json.at("physical_cores").get<int>(), json.at("workers").get<int>());
  EXPECT_EQ(json.at("workers").get<std::size_t>(), json.at("worker_cpus").size());
  EXPECT_GE(json.at("sockets").get<int>(), 1);
}

TEST(Cli, HelpAndVersionSucceed) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"--help"}, {"--version"}, {"run", "--help"}, {"topology", "--help"}}) {
    const auto result = run_mpdemo(args);
    EXPECT_EQ(result.exit_code(), 0) << args.front();
    EXPECT_FALSE(result.out.empty()) << args.front();
  }
}

struct BadInput {
  std::vector<std::string> args;
  std::string message;  // what the error must name
};

void PrintTo(const BadInput& input, std::ostream* os) {
  *os << "mpdemo";
  for (const std::string& arg : input.args) *os << " '" << arg << "'";
}

class CliBadInput : public ::testing::TestWithParam<BadInput> {};

TEST_P(CliBadInput, ExitsWithStatus2AndNamesTheProblem) {
  const auto result = run_mpdemo(GetParam().args);
  EXPECT_EQ(result.exit_code(), 2) << result.err;
  EXPECT_THAT(result.err, HasSubstr(GetParam().message));
  EXPECT_TRUE(result.out.empty()) << "no partial output may pass for a result: " << result.out;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, CliBadInput,
    ::testing::Values(
        BadInput{{"run", "--size", "-5"}, "--size"}, BadInput{{"run", "--size", "abc"}, "--size"},
        BadInput{{"run", "--size", ""}, "--size"}, BadInput{{"run", "--size", "99999999999999999999999999"}, "--size"},
        BadInput{{"run", "--size", "1.5"}, "--size"}, BadInput{{"run", "--size", "1e12"}, "MemAvailable"},
        BadInput{{"run", "--workers", "0"}, "--workers"}, BadInput{{"run", "--workers", "5000"}, "from 1 to 4096"},
        BadInput{{"run", "--chunksize", "0"}, "--chunksize"}, BadInput{{"run", "--repeat", "0"}, "--repeat"},
        BadInput{{"run", "--mode", "fast"}, "--mode"}, BadInput{{"run", "--format", "xml"}, "--format"},
        BadInput{{"topology", "--format", "yaml"}, "--format"}, BadInput{{"frobnicate"}, "frobnicate"},
        BadInput{{"run", "--size"}, "--size"}, BadInput{{"--large-size", "5"}, "--large-size"},
        BadInput{{"run", "--workers", std::to_string(64 * std::thread::hardware_concurrency() + 1)}, "--workers"},
        BadInput{{"run", "--seed", "-1"}, "--seed"}, BadInput{{"run", "--seed", "18446744073709551616"}, "--seed"},
        BadInput{{"sweep", "--sizes", "10", "--format", "json", "--plot", "-"}, "--plot"},
        BadInput{{"sweep", "--sizes", "1e12"}, "MemAvailable"}, BadInput{{"costs", "--repeat", "abc"}, "--repeat"}));

}  // namespace

// Without mpirun, `--backend mpi` runs as a job of one rank; in a build without Open MPI (the
// sanitizer builds leave it out), it says how to get it, and exits 2.
TEST(Cli, TheMpiBackendRunsAsOneRankOrSaysHowToGetIt) {
  const auto result = run_mpdemo({"run", "--backend", "mpi", "--mode", "mpi", "--size", "1000", "--repeat", "1"});
  if (mpdemo::built_with_mpi()) {
    ASSERT_EQ(result.exit_code(), 0) << result.err;
    EXPECT_THAT(result.out, HasSubstr("mpi-*: 1 MPI ranks on 1 node(s)"));
    EXPECT_THAT(result.out, Not(HasSubstr("NO")));
  } else {
    EXPECT_EQ(result.exit_code(), 2);
    EXPECT_THAT(result.err, HasSubstr("built without MPI: install Open MPI"));
    EXPECT_TRUE(result.out.empty());
  }
}
