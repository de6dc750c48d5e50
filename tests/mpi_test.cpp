// `mpdemo run --backend mpi` under a real mpirun (Open MPI): every path verified by rank 0 against
// its own loop, uneven splits, one rank, a simulated second node over TCP, bad options, a rank
// killed mid-run and an interrupted mpirun. Built only with the MPI backend.
//
// Open MPI settings for this machine, as the README documents them: the suite runs as root in CI
// (OMPI_ALLOW_RUN_AS_ROOT), containers may forbid the shared-memory transport's single-copy
// mechanism (CMA, which needs ptrace rights), so it is off, and -np above the cores needs
// --oversubscribe. --bind-to none: mpdemo places the ranks itself, one per core as the fork pool does.
#include "mpdemo/sys/huge_pages.hpp"
#include "mpdemo/sys/proc_files.hpp"
#include "support/run_program.hpp"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include <unistd.h>

namespace {

using namespace std::chrono_literals;
using mpdemo::testing::eventually;
using mpdemo::testing::ProgramResult;
using mpdemo::testing::run_program;
using ::testing::HasSubstr;
using ::testing::Not;

class Mpi : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ::setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
    ::setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    ::setenv("OMPI_MCA_btl_vader_single_copy_mechanism", "none", 1);
  }

  // mpirun -np `ranks` [launcher options] mpdemo run --backend mpi [arguments]
  static ProgramResult mpirun(int ranks, const std::vector<std::string>& launcher,
                              const std::vector<std::string>& arguments,
                              std::chrono::milliseconds timeout = std::chrono::seconds(60),
                              const std::function<void(pid_t)>& on_started = {}) {
    std::vector<std::string> argv{MPDEMO_MPIEXEC, "-np", std::to_string(ranks), "--oversubscribe", "--bind-to", "none"};
    argv.insert(argv.end(), launcher.begin(), launcher.end());
    argv.insert(argv.end(), {mpdemo::testing::mpdemo_executable(), "run", "--backend", "mpi"});
    argv.insert(argv.end(), arguments.begin(), arguments.end());
    return run_program(argv, timeout, on_started);
  }

  static std::map<std::string, bool> verified_modes(const nlohmann::json& json) {
    std::map<std::string, bool> modes;
    for (const auto& mode : json.at("modes")) modes[mode.at("name")] = mode.at("verified").get<bool>();
    return modes;
  }
};

std::string whole_file(const std::filesystem::path& path) {
  std::ifstream file(path);
  std::ostringstream text;
  text << file.rdbuf();
  return text.str();
}

std::size_t occurrences(const std::string& text, const std::string& what) {
  std::size_t count = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++count;
  return count;
}

TEST_F(Mpi, TwoRanksVerifyEveryPathAndReportThemInJson) {
  const auto result = mpirun(2, {}, {"--mode", "mpi", "--size", "100003", "--repeat", "3", "--format", "json"});
  ASSERT_EQ(result.exit_code(), 0) << result.err;
  const auto json = nlohmann::json::parse(result.out);  // rank 0 alone prints: one document
  EXPECT_EQ(json.at("backend"), "mpi");
  EXPECT_EQ(json.at("mpi").at("ranks"), 2);
  EXPECT_EQ(json.at("mpi").at("nodes"), 1);
  EXPECT_GT(json.at("mpi").at("startup").get<double>(), 0.0);
  EXPECT_EQ(verified_modes(json),
            (std::map<std::string, bool>{{"mpi-scatter", true}, {"mpi-window", true}, {"mpi-hybrid", true}}));
  for (const auto& mode : json.at("modes")) {
    const auto& phases = mode.at("phases");
    EXPECT_GT(phases.at("compute").get<double>(), 0.0) << mode.at("name");
    EXPECT_EQ(phases.at("start").get<double>(), 0.0) << "mpirun started the ranks before mpdemo ran";
    // The window path copies nothing; scatter and hybrid move the data in and out.
    const bool copies = mode.at("name") != "mpi-window";
    EXPECT_EQ(phases.at("move_in").get<double>() > 0.0, copies) << mode.at("name");
    EXPECT_EQ(phases.at("collect").get<double>() > 0.0, copies) << mode.at("name");
    EXPECT_LE(phases.at("total").get<double>(), result.wall_seconds);
  }
}

TEST_F(Mpi, TheComparisonRunsTheLoopTheForkPoolAndThreadsBesideTheRanks) {
  const auto result = mpirun(2, {}, {"--size", "20000", "--repeat", "1", "--format", "json"});
  ASSERT_EQ(result.exit_code(), 0) << result.err;
  EXPECT_EQ(verified_modes(nlohmann::json::parse(result.out)), (std::map<std::string, bool>{{"seq", true},
                                                                                            {"warm-proc", true},
                                                                                            {"warm-thread", true},
                                                                                            {"mpi-scatter", true},
                                                                                            {"mpi-window", true},
                                                                                            {"mpi-hybrid", true}}));
}

TEST_F(Mpi, ThreeRanksSplitSizesThatDoNotDivideAndFewerElementsThanRanks) {
  for (const char* size : {"1000003", "2", "1"}) {
    const auto result = mpirun(3, {}, {"--mode", "mpi", "--size", size, "--repeat", "2", "--format", "json"});
    ASSERT_EQ(result.exit_code(), 0) << size << ": " << result.err;
    const auto json = nlohmann::json::parse(result.out);
    EXPECT_EQ(json.at("mpi").at("ranks"), 3);
    EXPECT_EQ(verified_modes(json),
              (std::map<std::string, bool>{{"mpi-scatter", true}, {"mpi-window", true}, {"mpi-hybrid", true}}))
        << size;
  }
}

TEST_F(Mpi, OneRankIsAJobToo) {
  const auto result = mpirun(1, {}, {"--mode", "mpi", "--size", "1001", "--repeat", "1", "--format", "json"});
  ASSERT_EQ(result.exit_code(), 0) << result.err;
  const auto json = nlohmann::json::parse(result.out);
  EXPECT_EQ(json.at("mpi").at("ranks"), 1);
  EXPECT_EQ(verified_modes(json),
            (std::map<std::string, bool>{{"mpi-scatter", true}, {"mpi-window", true}, {"mpi-hybrid", true}}));
}

// Two "nodes" on this machine: ranks 0-1 and rank 2, talking over TCP (--mca btl self,tcp) as hosts
// would. The hybrid path scatters to the two leaders; the shared-window path cannot span nodes.
TEST_F(Mpi, SimulatedNodesOverTcpRunTheCrossNodePaths) {
  const auto result =
      mpirun(3, {"--mca", "btl", "self,tcp"},
             {"--ranks-per-node", "2", "--mode", "mpi", "--size", "100001", "--repeat", "2", "--format", "json"});
  ASSERT_EQ(result.exit_code(), 0) << result.err;
  const auto json = nlohmann::json::parse(result.out);
  EXPECT_EQ(json.at("mpi").at("nodes"), 2);
  EXPECT_EQ(verified_modes(json), (std::map<std::string, bool>{{"mpi-scatter", true}, {"mpi-hybrid", true}}))
      << "mpi (every path) leaves out the one that cannot span nodes";

  const auto refused = mpirun(2, {"--mca", "btl", "self,tcp"},
                              {"--ranks-per-node", "1", "--mode", "mpi-window", "--size", "100", "--repeat", "1"});
  EXPECT_EQ(refused.exit_code(), 2) << refused.err;
  EXPECT_EQ(occurrences(refused.err, "the shared-window path needs every rank on one node"), 1u)
      << "said once, by rank 0:\n"
      << refused.err;
  EXPECT_TRUE(refused.out.empty());
}

TEST_F(Mpi, BadOptionsExitWith2AndAreSaidOnce) {
  for (const std::vector<std::string>& arguments :
       {std::vector<std::string>{"--ranks-per-node", "-1"}, {"--mode", "nonsense"}, {"--size", "-5"}}) {
    const auto result = mpirun(2, {}, arguments);
    EXPECT_EQ(result.exit_code(), 2) << arguments[0] << ": " << result.err;
    EXPECT_EQ(occurrences(result.err, "error: "), 1u) << "said once, by rank 0:\n" << result.err;
  }
  // A store threshold that is not a size, on every rank: refused before MPI starts, said once.
  const auto threshold = mpirun(2, {"-x", "MPDEMO_STREAM_ABOVE=lots"}, {"--size", "1000"});
  EXPECT_EQ(threshold.exit_code(), 2) << threshold.err;
  EXPECT_EQ(occurrences(threshold.err, "MPDEMO_STREAM_ABOVE='lots'"), 1u) << threshold.err;
  // The MPI modes and options without the MPI backend: refused, with the command that runs them.
  const auto local = mpdemo::testing::run_mpdemo({"run", "--mode", "mpi-hybrid", "--size", "10"});
  EXPECT_EQ(local.exit_code(), 2);
  EXPECT_THAT(local.err, HasSubstr("mpirun -np K mpdemo run --backend mpi --mode mpi-hybrid"));
  const auto simulated = mpdemo::testing::run_mpdemo({"run", "--ranks-per-node", "2", "--size", "10"});
  EXPECT_EQ(simulated.exit_code(), 2);
  EXPECT_THAT(simulated.err, HasSubstr("--ranks-per-node belongs to --backend mpi"));
}

// The ranks mpirun started for a job whose rank 0 runs `mpdemo run ... --seed <seed>`: found by
// their command line, so that a test can see that none is left.
std::vector<pid_t> ranks_with_seed(const std::string& seed) {
  std::vector<pid_t> ranks;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmdline = whole_file(entry.path() / "cmdline");
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    if (cmdline.find(mpdemo::testing::mpdemo_executable()) == 0 &&
        cmdline.find("--seed " + seed) != std::string::npos) {
      ranks.push_back(std::stoi(name));
    }
  }
  return ranks;
}

int rank_of(pid_t pid) {
  const std::string environ = whole_file("/proc/" + std::to_string(pid) + "/environ");
  const std::string key = std::string("OMPI_COMM_WORLD_RANK=");
  for (std::size_t at = 0; at < environ.size(); at = environ.find('\0', at) + 1) {
    if (environ.compare(at, key.size(), key) == 0) return std::atoi(environ.c_str() + at + key.size());
    if (environ.find('\0', at) == std::string::npos) break;
  }
  return -1;
}

std::set<std::string> shared_memory_files() {
  std::set<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator("/dev/shm")) names.insert(entry.path().filename());
  return names;
}

// CPU seconds process `pid` has used (utime + stime, /proc/PID/stat).
double cpu_seconds(pid_t pid) {
  const std::optional<mpdemo::ProcStat> stat = mpdemo::ProcStat::of(pid);
  return stat ? stat->cpu_seconds() : 0;
}

// The ranks of a job run with --seed `seed`, by rank number, once rank 0 is well into its maps (it
// has used 1.5 s of CPU: MPI_Init and set-up take a fraction of that, however loaded the machine);
// empty if that did not happen within 30 s.
std::map<int, pid_t> running_ranks(const std::string& seed, std::size_t count) {
  std::map<int, pid_t> ranks;
  eventually(
      [&] {
        ranks.clear();
        for (const pid_t pid : ranks_with_seed(seed)) ranks[rank_of(pid)] = pid;
        return ranks.size() == count && ranks.contains(0) && cpu_seconds(ranks.at(0)) >= 1.5;
      },
      30s);
  return ranks.size() == count && ranks.contains(0) && cpu_seconds(ranks.at(0)) >= 1.5 ? ranks : std::map<int, pid_t>{};
}

// A job of 1000 maps of each path (about 1000 x 6 ms here): long enough to be struck in the middle.
std::vector<std::string> a_long_job(const std::string& seed) {
  return {"--mode", "mpi", "--size", "1e6", "--repeat", "1000", "--seed", seed};
}

TEST_F(Mpi, ARankKilledMidRunEndsTheJobNamingTheRankAndTheSignal) {
  const std::string seed = std::to_string(7'000'000 + ::getpid());
  const std::set<std::string> segments_before = shared_memory_files();
  bool struck = false;
  const auto result = mpirun(2, {}, a_long_job(seed), 60s, [&](pid_t) {
    const std::map<int, pid_t> ranks = running_ranks(seed, 2);
    ASSERT_EQ(ranks.size(), 2u) << "the ranks did not start";
    ASSERT_EQ(::kill(ranks.at(1), SIGKILL), 0);
    struck = true;
  });
  ASSERT_TRUE(struck);
  EXPECT_NE(result.exit_code(), 0);
  EXPECT_LT(result.wall_seconds, 30.0) << "the job must end soon after its rank died, never hang";
  EXPECT_THAT(result.err, HasSubstr("process rank 1")) << result.err;
  EXPECT_THAT(result.err, HasSubstr("signal 9")) << result.err;
  // Rank 0, stopped by mpirun's SIGTERM, says what it had checked before.
  EXPECT_THAT(result.err, HasSubstr("before the stop, rank 0 had mpi-scatter")) << result.err;
  EXPECT_THAT(result.err, Not(HasSubstr("of 0 verified")));
  EXPECT_TRUE(ranks_with_seed(seed).empty()) << "a rank outlived its job";
  EXPECT_EQ(shared_memory_files(), segments_before) << "a shared-memory segment outlived its job";
}

TEST_F(Mpi, AnInterruptedMpirunStopsEveryRank) {
  const std::string seed = std::to_string(8'000'000 + ::getpid());
  const std::set<std::string> segments_before = shared_memory_files();
  bool interrupted = false;
  const auto result = mpirun(2, {}, a_long_job(seed), 60s, [&](pid_t mpirun_pid) {
    ASSERT_EQ(running_ranks(seed, 2).size(), 2u) << "the ranks did not start";
    ASSERT_EQ(::kill(mpirun_pid, SIGINT), 0);  // Ctrl-C at the terminal that runs mpirun
    interrupted = true;
  });
  ASSERT_TRUE(interrupted);
  EXPECT_NE(result.exit_code(), 0);
  EXPECT_LT(result.wall_seconds, 30.0);
  EXPECT_THAT(result.err, HasSubstr("interrupted by SIG")) << result.err;
  EXPECT_TRUE(ranks_with_seed(seed).empty()) << "a rank outlived its job";
  EXPECT_EQ(shared_memory_files(), segments_before) << "a shared-memory segment outlived its job";
}

}  // namespace

namespace {

// mpdemo::MpiPool as a library (tests/mpi_pool_program.cpp): map, map_into with other types, an
// empty map and the in-place map on shared arrays, on every path, with uneven splits.
TEST_F(Mpi, ThePoolMapsOnEveryPathAsALibrary) {
  for (const char* path : {"scatter", "shared-window", "hybrid"}) {
    for (const int ranks : {2, 3}) {
      // With three ranks every map streams its stores (the root's choice, sent to every rank).
      const auto result = run_program({MPDEMO_MPIEXEC, "-np", std::to_string(ranks), "--oversubscribe", "--bind-to",
                                       "none", "-x", ranks == 3 ? "MPDEMO_STREAM_ABOVE=0" : "MPDEMO_STREAM_ABOVE=1G",
                                       MPDEMO_POOL_PROGRAM, path, "100003"});
      EXPECT_EQ(result.exit_code(), 0) << path << " x" << ranks << ": " << result.err;
      EXPECT_THAT(result.out, HasSubstr("ok map round 1, 100003 elements")) << path;
      EXPECT_THAT(result.out, HasSubstr("ok map_into, 100003 elements")) << path;
      EXPECT_THAT(result.out, HasSubstr("ok in place, 100003 elements")) << path;
      EXPECT_THAT(result.out, HasSubstr(fmt::format("ok {} ranks on 1 nodes", ranks))) << path;
    }
  }
  // A result of 8 MiB asks for 2 MiB pages, as the loop's does (where the kernel has them at all).
  const auto large = run_program(
      {MPDEMO_MPIEXEC, "-np", "2", "--oversubscribe", "--bind-to", "none", MPDEMO_POOL_PROGRAM, "scatter", "1048576"});
  EXPECT_EQ(large.exit_code(), 0) << large.err;
  EXPECT_THAT(large.out, HasSubstr("ok map round 1, 1048576 elements"));
  if (std::filesystem::exists(mpdemo::HugePages::kPrivateSettingFile)) {
    EXPECT_THAT(large.out, HasSubstr("map's result asks for huge pages: yes"));
  }
  // A store threshold that is not a size: the root refuses it in the map's announcement, so every rank
  // throws alike (the program does not catch it) and none waits for the others.
  const auto refused = run_program({MPDEMO_MPIEXEC, "-np", "2", "--oversubscribe", "--bind-to", "none", "-x",
                                    "MPDEMO_STREAM_ABOVE=lots", MPDEMO_POOL_PROGRAM, "scatter", "1000"});
  EXPECT_NE(refused.exit_code(), 0);
  EXPECT_THAT(refused.err, HasSubstr("MPDEMO_STREAM_ABOVE='lots': expected a size in bytes"));
  EXPECT_THAT(refused.err, HasSubstr("MpiPool::map: the root's MPDEMO_STREAM_ABOVE is not a size"));
  // Three ranks as two nodes over TCP: the hybrid path's cross-node scatter and gather.
  const auto hybrid = run_program({MPDEMO_MPIEXEC, "-np", "3", "--oversubscribe", "--bind-to", "none", "--mca", "btl",
                                   "self,tcp", MPDEMO_POOL_PROGRAM, "hybrid", "100003", "2"});
  EXPECT_EQ(hybrid.exit_code(), 0) << hybrid.err;
  EXPECT_THAT(hybrid.out, HasSubstr("ok map_into, 100003 elements"));
  EXPECT_THAT(hybrid.out, HasSubstr("ok 3 ranks on 2 nodes"));
}

// Fewer elements than ranks: ranks with nothing to do, in place; a simulated node with no element
// at all, whose window is empty.
TEST_F(Mpi, ThePoolMapsFewerElementsThanRanksAndNodesWithNothing) {
  const auto in_place = run_program(
      {MPDEMO_MPIEXEC, "-np", "3", "--oversubscribe", "--bind-to", "none", MPDEMO_POOL_PROGRAM, "shared-window", "2"});
  EXPECT_EQ(in_place.exit_code(), 0) << in_place.err;
  EXPECT_THAT(in_place.out, HasSubstr("ok in place, 2 elements"));
  const auto empty_node = run_program({MPDEMO_MPIEXEC, "-np", "3", "--oversubscribe", "--bind-to", "none", "--mca",
                                       "btl", "self,tcp", MPDEMO_POOL_PROGRAM, "hybrid", "1", "2"});
  EXPECT_EQ(empty_node.exit_code(), 0) << empty_node.err;
  EXPECT_THAT(empty_node.out, HasSubstr("ok map_into, 1 elements"));
  EXPECT_THAT(empty_node.out, HasSubstr("ok 3 ranks on 2 nodes"));
}

TEST_F(Mpi, RanksThatMapDifferentTypesAreRefusedNotGarbled) {
  const auto result = run_program(
      {MPDEMO_MPIEXEC, "-np", "2", "--oversubscribe", "--bind-to", "none", MPDEMO_POOL_PROGRAM, "mismatch"});
  EXPECT_NE(result.exit_code(), 0);
  EXPECT_LT(result.wall_seconds, 30.0);
  EXPECT_THAT(result.err, HasSubstr("MpiPool::map: rank 1 maps 4-byte elements into 4-byte results, but the root "
                                    "maps 8 into 8"));
  EXPECT_THAT(result.err, HasSubstr("every rank must call map with the same function and types"));
  // (mpirun's own account of the MPI_Abort usually follows, but it sometimes loses it: not ours to promise.)
}

}  // namespace

namespace {

// Open MPI keeps shared windows as files in /dev/shm; a container's is 64 MB by default. A window
// that does not fit is refused before MPI starts (without the check, this job fails inside Open MPI
// with status 1, whose shared-memory transport cannot even start; a window that fits the transport
// but not the room left would die of SIGBUS at first touch). Shown with a
// 1 MB /dev/shm in a mount namespace of the test's own (needs root, as CI runs; skipped otherwise).
TEST_F(Mpi, WindowsThatDoNotFitInDevShmAreRefused) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to mount a small /dev/shm in a namespace of its own";
  const std::string command = std::string("mount -t tmpfs -o size=1m tmpfs /dev/shm && exec ") + MPDEMO_MPIEXEC +
                              " -np 2 --oversubscribe --bind-to none " + mpdemo::testing::mpdemo_executable() +
                              " run --backend mpi --mode mpi-window --size 1e6 --repeat 1";
  const auto result = run_program({"unshare", "--mount", "--propagation", "private", "sh", "-c", command});
  if (result.err.find("unshare") != std::string::npos || result.err.find("mount") == 0) {
    GTEST_SKIP() << "no mount namespace here: " << result.err;
  }
  EXPECT_EQ(result.exit_code(), 2) << result.err;
  EXPECT_THAT(result.err, HasSubstr("which Open MPI keeps as files in /dev/shm, but only"));
  EXPECT_TRUE(result.out.empty());
}

}  // namespace
