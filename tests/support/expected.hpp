// Test support: inputs, and answers computed independently of mpdemo's own code paths.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace mpdemo::testing {

/// n numbers uniform in [0, 1), from the standard library directly.
inline std::vector<double> random_doubles(std::size_t n, std::uint64_t seed = 42) {
  std::mt19937_64 engine(seed);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  std::vector<double> values(n);
  for (double& v : values) v = uniform(engine);
  return values;
}

/// The independent answer: written out here, not through any of mpdemo's code paths.
inline std::vector<double> squares_of(const std::vector<double>& values) {
  std::vector<double> expected;
  expected.reserve(values.size());
  for (double v : values) expected.push_back(v * v);
  return expected;
}

}  // namespace mpdemo::testing
