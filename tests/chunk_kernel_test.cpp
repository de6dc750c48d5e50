// ChunkKernel's stores: the streaming path (results computed into a tile, then stored past the cache)
// gives exactly what a plain loop gives, for every result size and alignment, and writes nothing
// outside [begin, end); the rule that chooses it compares a map's bytes with one threshold, which
// MPDEMO_STREAM_ABOVE sets (tried in fresh mpdemo processes, since the rule is read once per process).
#include "mpdemo/pool/chunk_kernel.hpp"
#include "mpdemo/lab/kernels.hpp"
#include "mpdemo/sys/topology.hpp"
#include "support/expected.hpp"
#include "support/run_program.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace {

using mpdemo::ChunkKernel;
using mpdemo::Stores;
using mpdemo::testing::random_doubles;
using mpdemo::testing::run_program;
using ::testing::HasSubstr;

/// Result types of awkward sizes: 12 bytes (never a whole 16 per element), 3 bytes (alignment 1),
/// 100 bytes (larger than a store), each built from the input so that a wrong index shows.
struct Twelve {
  float a, b, c;
  bool operator==(const Twelve&) const = default;
};
struct Three {
  std::uint8_t a, b, c;
  bool operator==(const Three&) const = default;
};
struct Hundred {
  std::array<std::uint8_t, 100> bytes;
  bool operator==(const Hundred&) const = default;
};
constexpr auto to_twelve = [](double x) noexcept {
  return Twelve{static_cast<float>(x), static_cast<float>(x * 2), static_cast<float>(x * 3)};
};
constexpr auto to_three = [](double x) noexcept {
  const auto v = static_cast<std::uint32_t>(x * 16777216.0);
  return Three{static_cast<std::uint8_t>(v), static_cast<std::uint8_t>(v >> 8), static_cast<std::uint8_t>(v >> 16)};
};
constexpr auto to_hundred = [](double x) noexcept {
  Hundred h{};
  const auto v = static_cast<std::uint32_t>(x * 4294967295.0);
  for (std::size_t i = 0; i < h.bytes.size(); ++i) h.bytes[i] = static_cast<std::uint8_t>((v >> (i % 4 * 8)) ^ i);
  return h;
};

/// Runs the kernel with `stores` over [begin, end) of `input` into `output` (placed `offset` bytes
/// past a 64-byte cache line's boundary, so that the output is misaligned as the test asks), and
/// checks every element of [begin, end) against fn applied here, and that the bytes around it are
/// untouched.
template <class R, class F>
void expect_like_a_loop(F fn, Stores stores, const std::vector<double>& input, std::size_t begin, std::size_t end,
                        std::size_t offset) {
  constexpr unsigned char kUntouched = 0xA5;
  std::vector<unsigned char> buffer(64 + offset + input.size() * sizeof(R) + 64, kUntouched);
  const std::size_t to_line = (64 - reinterpret_cast<std::uintptr_t>(buffer.data()) % 64) % 64;
  const std::size_t start = to_line + offset;
  auto* output = reinterpret_cast<R*>(buffer.data() + start);
  ChunkKernel::of<double>(fn, stores)(input.data(), output, begin, end);
  for (std::size_t i = 0; i < input.size(); ++i) {
    const unsigned char* bytes = buffer.data() + start + i * sizeof(R);
    if (i >= begin && i < end) {
      R got;
      std::memcpy(&got, bytes, sizeof(R));
      ASSERT_TRUE(got == fn(input[i])) << "element " << i << " of [" << begin << ", " << end << "), output offset "
                                       << offset;
    } else {
      for (std::size_t b = 0; b < sizeof(R); ++b)
        ASSERT_EQ(bytes[b], kUntouched) << "element " << i << " outside [" << begin << ", " << end << ") was written";
    }
  }
  for (std::size_t b = start + input.size() * sizeof(R); b < buffer.size(); ++b) ASSERT_EQ(buffer[b], kUntouched);
  for (std::size_t b = 0; b < start; ++b) ASSERT_EQ(buffer[b], kUntouched);
}

TEST(ChunkKernel, StreamingStoresGiveWhatTheLoopGivesAtEveryStartLengthAndAlignment) {
  const std::vector<double> input = random_doubles(1300, 7);
  // Lengths across the tile (8 doubles, one cache line) and the interrupt-check block (512), starts
  // at every phase of a cache line, outputs at every phase a double can have in a cache line: the
  // plain stores before the first line, the tiles, the ragged end.
  for (std::size_t begin : {0u, 1u, 2u, 3u, 7u, 8u, 9u, 31u, 33u}) {
    for (std::size_t length :
         {0u, 1u, 2u, 5u, 7u, 8u, 9u, 15u, 16u, 17u, 31u, 32u, 33u, 511u, 512u, 513u, 1100u, 1267u}) {
      if (begin + length > input.size()) continue;
      for (std::size_t offset : {0u, 8u, 16u, 24u, 32u, 40u, 48u, 56u}) {
        expect_like_a_loop<double>(mpdemo::squared, Stores::streaming, input, begin, begin + length, offset);
        expect_like_a_loop<double>(mpdemo::squared, Stores::cached, input, begin, begin + length, offset);
      }
    }
  }
}

TEST(ChunkKernel, StreamingStoresWorkForResultsOfAnySize) {
  const std::vector<double> input = random_doubles(700, 11);
  for (std::size_t begin : {0u, 1u, 5u}) {
    for (std::size_t end : {begin, begin + 1, std::size_t{333}, std::size_t{700}}) {
      for (std::size_t offset : {0u, 1u, 4u, 12u, 20u, 36u, 52u}) {
        expect_like_a_loop<float>([](double x) noexcept { return static_cast<float>(x); }, Stores::streaming, input,
                                  begin, end, offset / 4 * 4);
        expect_like_a_loop<Twelve>(to_twelve, Stores::streaming, input, begin, end, offset / 4 * 4);
        expect_like_a_loop<Three>(to_three, Stores::streaming, input, begin, end, offset);
        expect_like_a_loop<Hundred>(to_hundred, Stores::streaming, input, begin, end, offset);
      }
    }
  }
}

TEST(ChunkKernel, AResultThatNeverReachesA16ByteBoundaryIsStoredPlainly) {
  // Two bytes at an odd address, or eight (two floats) at 4 mod 16: no element ever starts on a
  // 16-byte boundary, so no stream is possible; the kernel must notice and store every element
  // plainly, not skip or misplace any.
  struct Floats {
    float a, b;
    bool operator==(const Floats&) const = default;
  };
  const std::vector<double> doubles = random_doubles(300, 5);
  expect_like_a_loop<Floats>(
      [](double x) noexcept {
        return Floats{static_cast<float>(x), static_cast<float>(-x)};
      },
      Stores::streaming, doubles, 0, 300, 4);
  struct Two {
    std::uint8_t a, b;
    bool operator==(const Two&) const = default;
  };
  const std::vector<double> input = random_doubles(300, 3);
  expect_like_a_loop<Two>(
      [](double x) noexcept {
        const auto v = static_cast<std::uint16_t>(x * 65535.0);
        return Two{static_cast<std::uint8_t>(v), static_cast<std::uint8_t>(v >> 8)};
      },
      Stores::streaming, input, 0, 300, 1);
}

TEST(ChunkKernel, AResultTooLargeForATileIsStoredPlainly) {
  // 4099 bytes: a whole number of 16-byte stores takes 16 of them (64 KiB), more than the kernel will
  // put on the stack; it falls back to plain stores, and the results are still exact.
  struct Large {
    std::array<std::uint8_t, 4099> bytes;
    bool operator==(const Large&) const = default;
  };
  const std::vector<double> input = random_doubles(40, 9);
  expect_like_a_loop<Large>(
      [](double x) noexcept {
        Large large{};
        const auto v = static_cast<std::uint32_t>(x * 4294967295.0);
        for (std::size_t i = 0; i < large.bytes.size(); ++i)
          large.bytes[i] = static_cast<std::uint8_t>((v >> (i % 4 * 8)) + i);
        return large;
      },
      Stores::streaming, input, 3, 37, 0);
}

TEST(ChunkKernel, ForElementsAsksTheRuleWithTheMapsInputAndOutputBytes) {
  const mpdemo::StoreRule& rule = mpdemo::store_rule();
  const auto kernel = ChunkKernel::of<double>(mpdemo::squared);
  EXPECT_EQ(kernel.stores(), Stores::cached);
  if (rule.never) {
    EXPECT_EQ(kernel.for_elements(std::size_t{1} << 40).stores(), Stores::cached);
    return;
  }
  // 16 bytes per element (8 in, 8 out): streaming from the first element past the threshold.
  const std::size_t fits = rule.stream_above_bytes / 16;
  EXPECT_EQ(kernel.for_elements(fits).stores(), Stores::cached);
  EXPECT_EQ(kernel.for_elements(fits + 1).stores(), Stores::streaming);
  EXPECT_EQ(mpdemo::stores_for(rule.stream_above_bytes), Stores::cached);
  EXPECT_EQ(mpdemo::stores_for(rule.stream_above_bytes + 1), Stores::streaming);
  // The kernel that was asked keeps its function: still squares.
  const std::vector<double> in{3.0, -2.0};
  std::vector<double> out(2);
  kernel.for_elements(fits + 1)(in.data(), out.data(), 0, 2);
  EXPECT_EQ(out, (std::vector<double>{9.0, 4.0}));
}

/// `mpdemo topology --format json` with MPDEMO_STREAM_ABOVE set to `value`, in a fresh process.
mpdemo::testing::ProgramResult topology_with(const std::string& value) {
  return run_program(
      {"env", "MPDEMO_STREAM_ABOVE=" + value, mpdemo::testing::mpdemo_executable(), "topology", "--format", "json"});
}

TEST(StoreRule, MpdemoStreamAboveSetsTheThresholdInBytesOrBinaryUnits) {
  const std::vector<std::pair<std::string, std::uint64_t>> cases{
      {"0", 0}, {"33554432", 33554432}, {"32M", 33554432}, {"32MiB", 33554432}, {"512k", 524288}, {"1G", 1073741824}};
  for (const auto& [text, bytes] : cases) {
    const auto result = topology_with(text);
    ASSERT_EQ(result.exit_code(), 0) << text << ": " << result.err;
    const auto json = nlohmann::json::parse(result.out);
    EXPECT_EQ(json.at("stream_above_bytes"), bytes) << text;
    EXPECT_EQ(json.at("stream_above_source"), "MPDEMO_STREAM_ABOVE") << text;
  }
}

TEST(StoreRule, WithoutTheVariableTheThresholdIsTheLastLevelCache) {
  const auto result = run_program(
      {"env", "-u", "MPDEMO_STREAM_ABOVE", mpdemo::testing::mpdemo_executable(), "topology", "--format", "json"});
  ASSERT_EQ(result.exit_code(), 0) << result.err;
  const auto json = nlohmann::json::parse(result.out);
  const std::size_t cache = mpdemo::discover_topology().last_level_cache_bytes;
  EXPECT_EQ(json.at("last_level_cache_bytes"), cache);
  if (cache == 0) {
    EXPECT_TRUE(json.at("stream_above_bytes").is_null());
  } else {
    EXPECT_EQ(json.at("stream_above_bytes"), cache);
  }
}

TEST(StoreRule, AValueThatIsNotASizeExitsWith2NamingTheVariable) {
  for (const std::string text :
       {"", "banana", "12X", "-5", "1.5G", "32 M", "99999999999999999999", "16777216T", "17179869184G"}) {
    const auto topology = topology_with(text);
    EXPECT_EQ(topology.exit_code(), 2) << "'" << text << "': " << topology.out;
    EXPECT_THAT(topology.err, HasSubstr("MPDEMO_STREAM_ABOVE='" + text + "'"));
    // The lesson's first map refuses it too: it says what is wrong, and crashes nowhere.
    const auto run = run_program(
        {"env", "MPDEMO_STREAM_ABOVE=" + text, mpdemo::testing::mpdemo_executable(), "run", "--size", "1000"});
    EXPECT_EQ(run.exit_code(), 2) << "'" << text << "': " << run.out;
    EXPECT_THAT(run.err, HasSubstr("expected a size in bytes"));
  }
}

TEST(StoreRule, TheLessonStreamingEveryMapStillVerifiesEveryMode) {
  // MPDEMO_STREAM_ABOVE=0: every map of every mode streams its stores; `run` checks each result
  // against its own sequential answer and fails (exit 1) on any difference.
  const auto result = run_program({"env", "MPDEMO_STREAM_ABOVE=0", mpdemo::testing::mpdemo_executable(), "run",
                                   "--size", "200003", "--mode", "all", "--repeat", "1", "--format", "json"});
  ASSERT_EQ(result.exit_code(), 0) << result.err;
  const auto json = nlohmann::json::parse(result.out);
  ASSERT_FALSE(json.at("modes").empty());
  for (const auto& mode : json.at("modes")) EXPECT_TRUE(mode.at("verified").get<bool>()) << mode.at("name");
}

}  // namespace
