// A program that uses only ProcessPool, built against the installed package. Exit 0 only if the
// workers computed every square, checked against a loop of its own.
#include <mpdemo/pool/process_pool.hpp>

#include <cstdio>
#include <vector>

int main() {
  mpdemo::ProcessPool pool(2);
  std::vector<double> input(100'000);
  for (std::size_t i = 0; i < input.size(); ++i) input[i] = static_cast<double>(i) * 0.5;
  const std::vector<double> squares = pool.map([](double x) { return x * x; }, input);
  for (std::size_t i = 0; i < input.size(); ++i) {
    if (squares[i] != input[i] * input[i]) {
      std::printf("element %zu: %g, expected %g\n", i, squares[i], input[i] * input[i]);
      return 1;
    }
  }
  std::printf("consumer: %zu squares from %zu worker processes, all correct\n", squares.size(), pool.size());
  return 0;
}
