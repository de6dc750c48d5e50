// The examples, run as a reader would run them, on small input: each finishes, says its pools agreed
// with the loop, prints the lesson's boxes, and refuses bad input with exit status 2.
#include "support/run_program.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

namespace {

using mpdemo::testing::run_program;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

TEST(Examples, MonteCarloPiAgreesAcrossLoopProcessesAndThreads) {
  const auto result = run_program({MPDEMO_EXAMPLE_PI, "--samples", "2e5", "--tasks", "6", "--workers", "2"}, 60s);
  ASSERT_EQ(result.exit_code(), 0) << result.status.str() << result.err;
  EXPECT_THAT(result.out, HasSubstr("func: pi_sequential executed in"));
  EXPECT_THAT(result.out, HasSubstr("func: pi_processes executed in"));
  EXPECT_THAT(result.out, HasSubstr("func: pi_threads executed in"));
  EXPECT_THAT(result.out, HasSubstr("All three counted"));
  EXPECT_THAT(result.out, HasSubstr("pi ~ 3.1")) << "2e5 points are enough for two digits";
}

TEST(Examples, CountPrimesAgreesAtEveryChunksize) {
  const auto result = run_program({MPDEMO_EXAMPLE_PRIMES, "--limit", "1e5", "--ranges", "16", "--workers", "2"}, 60s);
  ASSERT_EQ(result.exit_code(), 0) << result.status.str() << result.err;
  EXPECT_THAT(result.out, HasSubstr("Every way counted 9592 primes")) << "pi(10^5) = 9592";
  EXPECT_THAT(result.out, HasSubstr("func: primes_processes executed in"));
  for (const char* chunksize : {"         1 ", "         4 ", "        16 "})
    EXPECT_THAT(result.out, HasSubstr(chunksize));
}

TEST(Examples, WordFrequenciesOfAFileAgreeAcrossLoopProcessesAndThreads) {
  const std::filesystem::path file = std::filesystem::temp_directory_path() / "mpdemo-words-test.txt";
  {
    std::ofstream text(file);
    for (int i = 0; i < 500; ++i)
      text << "The pool forks; the Pool maps.\n"
           << "one two\n";
  }
  const auto result = run_program({MPDEMO_EXAMPLE_WORDS, file.string(), "--workers", "2"}, 60s);
  std::filesystem::remove(file);
  ASSERT_EQ(result.exit_code(), 0) << result.status.str() << result.err;
  EXPECT_THAT(result.out, HasSubstr("Most frequent: pool 1000 the 1000"));
  EXPECT_THAT(result.out, HasSubstr("found the loop's 6 distinct words exactly"));
  EXPECT_THAT(result.out, HasSubstr("the price of serializing"));
}

TEST(Examples, BadInputExitsWithStatusTwoAndSaysWhy) {
  const auto zero = run_program({MPDEMO_EXAMPLE_PI, "--tasks", "0"}, 30s);
  EXPECT_EQ(zero.exit_code(), 2);
  EXPECT_THAT(zero.err, HasSubstr("--tasks"));
  const auto ranges = run_program({MPDEMO_EXAMPLE_PRIMES, "--limit", "10", "--ranges", "20"}, 30s);
  EXPECT_EQ(ranges.exit_code(), 2);
  EXPECT_THAT(ranges.err, HasSubstr("--ranges 20"));
  const auto missing = run_program({MPDEMO_EXAMPLE_WORDS, "/nonexistent/words.txt"}, 30s);
  EXPECT_EQ(missing.exit_code(), 2);
  EXPECT_THAT(missing.err, HasSubstr("cannot read '/nonexistent/words.txt'"));
  for (const auto& result : {zero, ranges, missing}) EXPECT_TRUE(result.out.empty()) << "nothing done, nothing said";
}

}  // namespace
