// Word frequencies over a text with map over its lines: std::string in, std::map out, both serialized
// between master and workers (Python's Pool pickles them the same way). Then the price of that
// serialization: the same words counted from lines passed as strings (serialized) and from offsets
// into the text kept in shared memory (trivially copyable, zero copy).
//
//   build/release/examples/word_frequencies book.txt
//   build/release/examples/word_frequencies --lines 200000        (a text made up on the spot)
#include "example.hpp"
#include "mpdemo/pool/process_pool.hpp"
#include "mpdemo/pool/thread_pool.hpp"

#include <fmt/format.h>
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace {

using Counts = std::map<std::string, std::uint64_t>;

template <class Each>
void for_each_word(const char* text, std::size_t length, Each&& each) {
  std::size_t i = 0;
  while (i < length) {
    while (i < length && std::isalpha(static_cast<unsigned char>(text[i])) == 0) ++i;
    const std::size_t start = i;
    while (i < length && std::isalpha(static_cast<unsigned char>(text[i])) != 0) ++i;
    if (i > start) each(start, i);
  }
}

Counts word_counts(const std::string& line) {
  Counts counts;
  for_each_word(line.data(), line.size(), [&](std::size_t begin, std::size_t end) {
    std::string word = line.substr(begin, end - begin);
    for (char& c : word) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    ++counts[word];
  });
  return counts;
}

std::uint64_t words_in_line(const std::string& line) {
  std::uint64_t words = 0;
  for_each_word(line.data(), line.size(), [&](std::size_t, std::size_t) { ++words; });
  return words;
}

/// A line as where it is in the text: trivially copyable, so it is shared in place.
struct LineRef {
  std::uint64_t offset;
  std::uint64_t length;
};
/// Counts the words of a LineRef in a text that every worker maps (the pool's shared memory).
struct WordsInText {
  const char* text;
  std::uint64_t operator()(const LineRef& line) const {
    std::uint64_t words = 0;
    for_each_word(text + line.offset, line.length, [&](std::size_t, std::size_t) { ++words; });
    return words;
  }
};

Counts merged(const std::vector<Counts>& parts) {
  Counts total;
  for (const Counts& part : parts) {
    for (const auto& [word, count] : part) total[word] += count;
  }
  return total;
}

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream file(path);
  if (!file)
    throw mpdemo::cli::UsageError(
        fmt::format("cannot read '{}': {}", mpdemo::report::printable(path, 200), std::strerror(errno)));
  std::vector<std::string> lines;
  for (std::string line; std::getline(file, line);) lines.push_back(std::move(line));
  return lines;
}

std::vector<std::string> made_up_lines(std::size_t count, std::uint64_t seed) {
  static const char* const kWords[] = {"the",    "process", "thread", "core",  "fork",   "pipe",   "memory", "shared",
                                       "lesson", "pool",    "map",    "chunk", "worker", "master", "cache",  "page"};
  std::mt19937_64 engine(seed);
  std::uniform_int_distribution<std::size_t> word(0, std::size(kWords) - 1);
  std::uniform_int_distribution<int> length(3, 14);
  std::vector<std::string> lines;
  for (std::size_t i = 0; i < count; ++i) {
    std::string line;
    for (int w = length(engine); w > 0; --w) line += std::string(kWords[word(engine)]) + (w > 1 ? " " : ".");
    lines.push_back(std::move(line));
  }
  return lines;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Word frequencies with map over a text's lines (serialized std::string), processes vs threads vs a loop",
               "word_frequencies"};
  std::string path;
  std::size_t made_up = 100'000;
  std::size_t workers = 0;
  app.add_option("FILE", path, "a text file (default: a made-up text of --lines lines)");
  mpdemo::cli::add_count_option(app, "--lines", made_up, 1, 100'000'000,
                                "lines of made-up text without FILE (default 1e5)");
  mpdemo::cli::add_workers_option(app, workers);
  return mpdemo::example::run(argc, argv, app, [&] {
    const std::vector<std::string> lines = path.empty() ? made_up_lines(made_up, 7) : read_lines(path);
    mpdemo::ProcessPool processes(workers);
    mpdemo::ThreadPool threads(workers);
    std::cout << fmt::format("{} lines; {} workers, started before timing.\n", lines.size(), processes.size());

    Counts expected;
    Counts by_processes;
    Counts by_threads;
    mpdemo::example::boxed("words_sequential", [&] {
      for (const std::string& line : lines) {
        for (const auto& [word, count] : word_counts(line)) expected[word] += count;
      }
    });
    mpdemo::example::boxed("words_processes", [&] { by_processes = merged(processes.map(word_counts, lines)); });
    mpdemo::example::boxed("words_threads", [&] { by_threads = merged(threads.map(word_counts, lines)); });

    // The price of serializing: the same count of words, from strings and from offsets into shared text.
    std::size_t total_bytes = 0;
    for (const std::string& line : lines) total_bytes += line.size();
    auto text = processes.make_shared_array<char>(std::max<std::size_t>(total_bytes, 1));
    std::vector<LineRef> refs;
    std::size_t offset = 0;
    for (const std::string& line : lines) {
      std::memcpy(text.data() + offset, line.data(), line.size());
      refs.push_back({offset, line.size()});
      offset += line.size();
    }
    std::vector<std::uint64_t> from_strings;
    std::vector<std::uint64_t> from_refs;
    const double serialized = mpdemo::example::boxed("words_per_line_serialized",
                                                     [&] { from_strings = processes.map(words_in_line, lines); });
    const double in_place = mpdemo::example::boxed("words_per_line_in_place",
                                                   [&] { from_refs = processes.map(WordsInText{text.data()}, refs); });
    std::cout << fmt::format(
        "Counting words per line: {} with the lines serialized as std::string, {} with offsets into the text in "
        "shared memory ({:.1f}x): the price of serializing.\n",
        mpdemo::report::format_duration(serialized), mpdemo::report::format_duration(in_place),
        in_place > 0 ? serialized / in_place : 0.0);

    std::vector<std::pair<std::string, std::uint64_t>> top(expected.begin(), expected.end());
    std::sort(top.begin(), top.end(), [](const auto& a, const auto& b) {
      return a.second > b.second || (a.second == b.second && a.first < b.first);
    });
    std::cout << "Most frequent:";
    for (std::size_t i = 0; i < std::min<std::size_t>(5, top.size()); ++i) {
      std::cout << fmt::format(" {} {}", top[i].first, top[i].second);
    }
    std::cout << '\n';
    const bool verified = by_processes == expected && by_threads == expected && from_strings == from_refs;
    std::cout << (verified ? fmt::format("Processes and threads found the loop's {} distinct words exactly.\n",
                                         expected.size())
                           : std::string("MISMATCH: a pool's counts differ from the loop's\n"));
    return verified ? 0 : 1;
  });
}
