// How long an idle worker spins for its next task before it sleeps: the rule (IdleSpin) and what it
// does in both pools. Run with no other test beside (SERIAL): a busy machine keeps a spinning worker
// off its core, and whether it slept then says nothing about its spin.
#include "mpdemo/pool/detail/idle_spin.hpp"
#include "mpdemo/pool/process_pool.hpp"
#include "mpdemo/pool/thread_pool.hpp"

#include <gtest/gtest.h>

#include <unistd.h>
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using Control = mpdemo::ProcessPoolOptions::Control;

// IdleSpin, the rule: how long an idle worker spins for its next task before it sleeps.
TEST(IdleSpin, GrowsToSpinThroughAShortSleepAndFallsBackAfterALongOne) {
  mpdemo::detail::IdleSpin spin(50us, 500us);
  EXPECT_EQ(spin.current(), 50us);
  spin.slept(200'000);  // the next task came 200 us after the wait began: spin through that, and a quarter
  EXPECT_EQ(spin.current(), 251us);
  spin.slept(100'000);  // a shorter one: the spin follows the last sleep down, never below the base
  EXPECT_EQ(spin.current(), 126us);
  spin.slept(30'000);
  EXPECT_EQ(spin.current(), 50us);
  spin.slept(450'000);  // through 562 us would pass the limit
  EXPECT_EQ(spin.current(), 500us);
  spin.slept(500'000);  // a sleep as long as the limit: an idle pool, back to the base
  EXPECT_EQ(spin.current(), 50us);
}

TEST(IdleSpin, AFixedOrAZeroSpinNeverGrows) {
  mpdemo::detail::IdleSpin fixed(50us, 50us);
  fixed.slept(40'000);
  fixed.slept(200'000);
  EXPECT_EQ(fixed.current(), 50us);
  mpdemo::detail::IdleSpin below(50us, 10us);  // a limit under the base is the base
  below.slept(200'000);
  EXPECT_EQ(below.current(), 50us);
  mpdemo::detail::IdleSpin never(0us, 500us);  // spin 0: always sleep at once
  never.slept(100'000);
  EXPECT_EQ(never.current(), 0us);
}

/// How many times `pid` has gone to sleep (blocked): a spinning thread's yields are not counted.
long long voluntary_switches_of(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("voluntary_ctxt_switches:", 0) == 0) return std::stoll(line.substr(line.find(':') + 1));
  }
  ADD_FAILURE() << "no voluntary_ctxt_switches for " << pid;
  return 0;
}

void busy_wait(std::chrono::microseconds gap) {
  const auto until = std::chrono::steady_clock::now() + gap;
  while (std::chrono::steady_clock::now() < until) {
  }
}

constexpr int kGaps = 200;

/// How often a pool's worker slept over kGaps maps of one element, each after 400 us of the program's
/// own work (eight times the base spin of 50 us), its spin fixed or allowed to grow up to 50 ms.
/// `sleeps_of(pool)` counts its sleeps so far.
template <class Pool, class Options, class SleepsOf>
long long sleeps_in_gaps(Options options, bool grows, SleepsOf sleeps_of) {
  options.workers = 1;
  options.spin = 50us;
  options.spin_limit = grows ? 50ms : 50us;
  Pool pool(options);
  EXPECT_EQ(pool.map([](int x) { return x + 1; }, std::vector<int>{20})[0], 21);
  const long long before = sleeps_of(pool);
  for (int gap = 0; gap < kGaps; ++gap) {
    busy_wait(400us);
    EXPECT_EQ(pool.map([](int x) { return x * 3; }, std::vector<int>{gap})[0], gap * 3);
  }
  return sleeps_of(pool) - before;
}

/// With the spin fixed the worker sleeps in every gap (on a quiet machine, 200 of 200); allowed to
/// grow, it learns the gap and stays awake through the next ones (0 of 200).
void expect_the_spin_learns_the_gap(long long fixed, long long growing) {
  EXPECT_LE(growing, kGaps / 4) << "a worker whose spin may grow kept sleeping in the gaps";
  // The control. A machine busy with something else keeps a spinning worker off its core past its
  // spin; it then finds its task without sleeping, learnt or not, and the comparison proves nothing.
  if (fixed < kGaps / 2) GTEST_SKIP() << "the machine was too busy: a fixed spin slept in only " << fixed;
}

class IdleSpinning : public ::testing::TestWithParam<Control> {};

TEST_P(IdleSpinning, AWorkerWhoseTasksComeALittleAfterItsSpinEndsLearnsToSpinThroughTheGap) {
  auto sleeps = [&](bool grows) {
    mpdemo::ProcessPoolOptions options;
    options.control = GetParam();
    return sleeps_in_gaps<mpdemo::ProcessPool>(options, grows, [](const mpdemo::ProcessPool& pool) {
      return voluntary_switches_of(pool.worker_pids()[0].value());
    });
  };
  const long long fixed = sleeps(false);
  expect_the_spin_learns_the_gap(fixed, sleeps(true));
}

INSTANTIATE_TEST_SUITE_P(Controls, IdleSpinning, ::testing::Values(Control::shared_memory, Control::pipes),
                         [](const auto& param) { return param.param == Control::pipes ? "Pipes" : "Mailboxes"; });

// The same for a thread pool's thread: every thread of this process but the test's own is the pool's.
TEST(IdleSpinning, AThreadWhoseTasksComeALittleAfterItsSpinEndsLearnsToSpinThroughTheGap) {
  auto sleeps = [](bool grows) {
    return sleeps_in_gaps<mpdemo::ThreadPool>(mpdemo::PoolOptions{}, grows, [](const mpdemo::ThreadPool&) {
      long long total = 0;
      for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
        const pid_t tid = std::stoi(task.path().filename().string());
        if (tid != ::gettid()) total += voluntary_switches_of(tid);
      }
      return total;
    });
  };
  const long long fixed = sleeps(false);
  expect_the_spin_learns_the_gap(fixed, sleeps(true));
}

/// How long destroying a warm pool of two takes (the median of five), its workers spinning for
/// `spin` after their last task, so a stop comes while they spin (or asleep at once, for spin 0).
double median_stop_seconds(std::chrono::microseconds spin) {
  std::vector<double> stops;
  for (int pool_number = 0; pool_number < 5; ++pool_number) {
    mpdemo::ProcessPoolOptions options;
    options.workers = 2;
    options.spin = spin;
    auto pool = std::make_unique<mpdemo::ProcessPool>(options);
    EXPECT_EQ(pool->map([](int x) { return x * 5; }, std::vector<int>{1, 2, 3, 4})[3], 20);
    const auto stopping = std::chrono::steady_clock::now();
    pool.reset();
    stops.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - stopping).count());
  }
  std::sort(stops.begin(), stops.end());
  return stops[stops.size() / 2];
}

// A worker spinning for its next task (a spin of 10 s never ends by itself) leaves as soon as the pool
// stops, told by a flag in its mailbox, as fast as a sleeping worker woken by end-of-file: not at its
// next look at the pipes, up to 10 ms later (kHangUpCheckNs), as before the flag.
TEST(IdleSpinning, AWorkerSpinningWhenThePoolStopsLeavesAtOnce) {
  const double asleep = median_stop_seconds(0us);
  const double spinning = median_stop_seconds(std::chrono::microseconds(10s));
  EXPECT_LT(spinning, asleep + 0.005) << "spinning workers stopped in " << spinning * 1e3 << " ms, sleeping ones in "
                                      << asleep * 1e3 << " ms";
}

}  // namespace
