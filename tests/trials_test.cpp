// Verification, which every reported "verified: yes" rests on: it must say no when a result differs
// anywhere, by one bit, and a summary of runs must say no if any run did.
#include "mpdemo/lab/trials.hpp"
#include "mpdemo/lab/experiment.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace {

TEST(Verification, OneWrongElementAnywhereIsCaught) {
  // Around the block sizes the checks work in (2^16) and at both ends.
  for (const std::size_t n :
       {std::size_t{1}, std::size_t{65'535}, std::size_t{65'536}, std::size_t{65'537}, std::size_t{200'003}}) {
    const std::vector<double> reference = mpdemo::uniform_random_array(n, 7);
    for (const std::size_t wrong : {std::size_t{0}, n / 2, n - 1, std::min(n - 1, std::size_t{65'536})}) {
      std::vector<double> result = reference;
      result[wrong] = std::nextafter(result[wrong], 2.0);  // one ulp: the smallest possible error
      EXPECT_FALSE(mpdemo::same_values(result, reference)) << "n " << n << ", element " << wrong;
    }
    EXPECT_TRUE(mpdemo::same_values(reference, reference));
  }
  EXPECT_FALSE(mpdemo::same_values(std::vector<double>{0.0}, std::vector<double>{-0.0})) << "bit for bit";
  EXPECT_FALSE(mpdemo::same_values(std::vector<double>(3), std::vector<double>(4))) << "a result too short";
}

TEST(Verification, ASummaryIsVerifiedOnlyIfEveryRunWas) {
  std::vector<mpdemo::Trial> trials(5);
  for (auto& trial : trials) trial.verified = true;
  EXPECT_TRUE(mpdemo::summarize(trials).verified);
  trials[3].verified = false;
  EXPECT_FALSE(mpdemo::summarize(trials).verified) << "one failed run must fail the mode";
}

TEST(Verification, TheReferenceIsComputedIndependently) {
  const std::vector<double> input{0.5, -3.0, 1e-200, 1e200};
  const std::vector<double> squares = mpdemo::reference_squares(input);
  EXPECT_EQ(squares, (std::vector<double>{0.25, 9.0, 0.0, INFINITY}));
}

}  // namespace
