// How long an idle worker spins for its next task before it sleeps, and what it does between two
// looks: the rules (IdleSpin, spin_style_for) and what they do in both pools. Run with no other test beside (SERIAL): a
// busy machine keeps a spinning worker off its core, and whether it slept then says nothing about its spin.
#include "mpdemo/pool/detail/idle_spin.hpp"
#include "mpdemo/pool/process_pool.hpp"
#include "mpdemo/pool/thread_pool.hpp"
#include "mpdemo/sys/proc_files.hpp"
#include "mpdemo/sys/timing.hpp"
#include "mpdemo/sys/topology.hpp"
#include "mpdemo/sys/trace.hpp"
#include "support/run_program.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <sys/resource.h>
#include <unistd.h>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using Control = mpdemo::ProcessPoolOptions::Control;

// IdleSpin, the rule: how long an idle worker spins for its next task before it sleeps.
TEST(IdleSpin, GrowsToSpinThroughAShortSleepAndFallsBackAfterTwoLongOnesInARow) {
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
  spin.slept(500'000);  // a sleep as long as the limit: a pause of the program's, the pace kept
  EXPECT_EQ(spin.current(), 500us);
  spin.slept(800'000);  // a second in a row: the program maps slowly now, back to the base
  EXPECT_EQ(spin.current(), 50us);
  spin.slept(900'000);  // and there it stays
  EXPECT_EQ(spin.current(), 50us);
}

// A program mapping in bursts at one pace, with pauses between them: the spin learned in one burst
// is there from the second map of the next, however many maps each burst holds.
TEST(IdleSpin, APauseBetweenBurstsKeepsThePaceLearned) {
  mpdemo::detail::IdleSpin spin(50us, 2000us);
  spin.slept(700'000);  // the first gap of the first burst: asleep, learnt
  EXPECT_EQ(spin.current(), 876us);
  for (int burst = 0; burst < 3; ++burst) {
    spin.caught_spinning();  // the rest of the burst's gaps: caught spinning
    spin.caught_spinning();
    spin.slept(50'000'000);  // the pause after the burst
    EXPECT_EQ(spin.current(), 876us) << "burst " << burst;
  }
  // Without a wait caught spinning between them, two pauses in a row forget it.
  spin.slept(50'000'000);
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

// PoolOptions::SpinStyle, the rule: pause where the workers and the caller have a CPU each, yield
// where a waiter may hold the CPU the one it waits for needs.
TEST(SpinStyle, PausesWhereTheWorkersAndTheCallerFitTheCpusAndYieldsWhereTheyDoNot) {
  using Style = mpdemo::PoolOptions::SpinStyle;
  EXPECT_EQ(mpdemo::spin_style_for(Style::automatic, 1, 2), Style::pause);  // the caller's team on two CPUs
  EXPECT_EQ(mpdemo::spin_style_for(Style::automatic, 3, 4), Style::pause);
  EXPECT_EQ(mpdemo::spin_style_for(Style::automatic, 2, 2), Style::yield);  // two workers and a master on two
  EXPECT_EQ(mpdemo::spin_style_for(Style::automatic, 1, 1), Style::yield);
  EXPECT_EQ(mpdemo::spin_style_for(Style::automatic, 1, 0), Style::yield);  // the CPUs are not known
  EXPECT_EQ(mpdemo::spin_style_for(Style::yield, 1, 64), Style::yield);     // asked for: kept
  EXPECT_EQ(mpdemo::spin_style_for(Style::pause, 8, 2), Style::pause);
  // Two cores of two hardware threads each: three workers pinned one per core share a core.
  EXPECT_EQ(mpdemo::spin_style_for(Style::automatic, 3, 4, 2), Style::yield);
  EXPECT_EQ(mpdemo::spin_style_for(Style::automatic, 3, 4, 0), Style::pause);  // unpinned: 4 CPUs, 4 members
  EXPECT_EQ(mpdemo::spin_style_for(Style::automatic, 2, 4, 2), Style::pause);
  // A pool's own options on this machine: unpinned, as many workers as CPUs leave the caller none.
  mpdemo::PoolOptions unpinned;
  unpinned.pin_workers = false;
  EXPECT_EQ(mpdemo::spin_style_for(unpinned, mpdemo::system_topology().allowed_cpus.size()), Style::yield);
}

/// A thread's CPU time so far, in clock ticks, as the kernel accounts it (/proc/.../stat).
struct CpuTicks {
  long long user = 0;
  long long system = 0;  ///< in the kernel: a yielding spin's sched_yield calls
  CpuTicks operator-(const CpuTicks& before) const { return {user - before.user, system - before.system}; }
  CpuTicks operator+(const CpuTicks& more) const { return {user + more.user, system + more.system}; }
};

CpuTicks cpu_ticks_of(const std::string& stat_path) {
  const std::optional<mpdemo::ProcStat> stat = mpdemo::ProcStat::read(stat_path);
  if (!stat) {
    ADD_FAILURE() << "could not read " << stat_path;
    return {};
  }
  return {static_cast<long long>(stat->user_ticks), static_cast<long long>(stat->system_ticks)};
}

/// Where an idle worker of a pool made with `options` (one worker, its spin long) spends 300 ms of
/// spinning for its next task: in user space (pausing) or in the kernel (yielding).
template <class Pool, class Options, class TicksSoFar>
CpuTicks ticks_while_spinning(Options options, TicksSoFar ticks_so_far) {
  options.workers = 1;
  options.spin = 2s;  // longer than the test looks: the worker spins throughout
  options.spin_limit = 2s;
  Pool pool(options);
  EXPECT_EQ(pool.map([](int x) { return x + 1; }, std::vector<int>{41})[0], 42);
  const CpuTicks before = ticks_so_far(pool);
  std::this_thread::sleep_for(300ms);
  return ticks_so_far(pool) - before;
}

/// Pausing: no system call between looks, so the kernel's share of the spin is what interrupts take.
/// Yielding: a system call per look, so most of it. A spin the worker could not run (a busy machine)
/// proves nothing either way.
void expect_spun_like(mpdemo::PoolOptions::SpinStyle style, const CpuTicks& spun, const char* asked) {
  const long long total = spun.user + spun.system;
  if (total < ::sysconf(_SC_CLK_TCK) / 10) {
    GTEST_SKIP() << "the worker was kept off its CPU: it spun " << total << " ticks of 300 ms";
  }
  // Measured on the project's VM: pausing 0 ticks of 30 in the kernel, yielding 16-20 of 29.
  if (style == mpdemo::PoolOptions::SpinStyle::pause) {
    EXPECT_LE(spun.system * 10, total) << asked << ": a pausing spin spent " << spun.system << " of " << total
                                       << " ticks in the kernel";
  } else {
    EXPECT_GE(spun.system * 4, total) << asked << ": a yielding spin spent only " << spun.system << " of " << total
                                      << " ticks in the kernel";
  }
}

/// Whether reading the clock enters the kernel here (a clock source the vDSO cannot read: xen, hpet):
/// then every look of any spin does, and where a spin's time goes says nothing of its style.
bool clock_reads_enter_the_kernel() {
  rusage before{};
  rusage after{};
  ::getrusage(RUSAGE_THREAD, &before);
  const std::int64_t until = mpdemo::monotonic_ns() + 50'000'000;
  while (mpdemo::monotonic_ns() < until) {
  }
  ::getrusage(RUSAGE_THREAD, &after);
  const auto micros = [](const timeval& t) { return t.tv_sec * 1'000'000LL + t.tv_usec; };
  const long long system = micros(after.ru_stime) - micros(before.ru_stime);
  const long long user = micros(after.ru_utime) - micros(before.ru_utime);
  return system * 4 > system + user;
}

/// Each style asked for, and automatic, which for one worker is pause where this process may use two
/// CPUs or more (pinned to a core of its own), and yield on one.
template <class SpinWith>
void expect_each_style_spins_as_it_says(SpinWith spin_with) {
  if (clock_reads_enter_the_kernel()) GTEST_SKIP() << "reading the clock enters the kernel on this machine";
  using Style = mpdemo::PoolOptions::SpinStyle;
  expect_spun_like(Style::pause, spin_with(Style::pause), "pause");
  if (::testing::Test::IsSkipped()) return;
  expect_spun_like(Style::yield, spin_with(Style::yield), "yield");
  if (::testing::Test::IsSkipped()) return;
  expect_spun_like(mpdemo::spin_style_for(mpdemo::PoolOptions{}, 1), spin_with(Style::automatic), "automatic");
}

TEST(SpinStyle, APausingWorkerSpinsInUserSpaceAndAYieldingOneInTheKernel) {
  expect_each_style_spins_as_it_says([](mpdemo::PoolOptions::SpinStyle style) {
    mpdemo::ProcessPoolOptions options;  // mailboxes: a look is a load (through the pipes, a poll())
    options.spin_style = style;
    return ticks_while_spinning<mpdemo::ProcessPool>(options, [](const mpdemo::ProcessPool& pool) {
      return cpu_ticks_of("/proc/" + std::to_string(pool.worker_pids()[0].value()) + "/stat");
    });
  });
}

TEST(SpinStyle, APausingThreadSpinsInUserSpaceAndAYieldingOneInTheKernel) {
  expect_each_style_spins_as_it_says([](mpdemo::PoolOptions::SpinStyle style) {
    mpdemo::PoolOptions options;
    options.spin_style = style;
    return ticks_while_spinning<mpdemo::ThreadPool>(options, [](const mpdemo::ThreadPool&) {
      CpuTicks total;  // every thread of this process but the test's own is the pool's
      for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
        const pid_t tid = std::stoi(task.path().filename().string());
        if (tid != ::gettid()) total = total + cpu_ticks_of(task.path().string() + "/stat");
      }
      return total;
    });
  });
}

/// A thread's context switches so far (/proc/<pid>/task/<tid>/status, or a process's main thread),
/// and how long it has waited, runnable, for a CPU (schedstat's run delay, 0 where it is not kept).
struct Switches {
  long long slept = 0;      ///< voluntary: it blocked (a spinning thread's yields are not counted)
  long long displaced = 0;  ///< involuntary: another runnable thread took its core (a yield that gave it away)
  long long waited_ns = 0;  ///< runnable but not running: after a wake-up or a displacement

  Switches operator-(const Switches& before) const {
    return {slept - before.slept, displaced - before.displaced, waited_ns - before.waited_ns};
  }
  Switches operator+(const Switches& more) const {
    return {slept + more.slept, displaced + more.displaced, waited_ns + more.waited_ns};
  }
};

/// `status_path`'s thread's Switches; its run delay from the schedstat file beside it.
Switches switches_of(const std::string& status_path) {
  const std::optional<mpdemo::ProcFields> status = mpdemo::ProcFields::read(status_path);
  const auto count = [&status](std::string_view key) {
    return static_cast<long long>(status ? status->number(key).value_or(0) : 0);
  };
  long long on_cpu_ns = 0;
  long long waited_ns = 0;
  std::ifstream(status_path.substr(0, status_path.rfind('/')) + "/schedstat") >> on_cpu_ns >> waited_ns;
  return {count("voluntary_ctxt_switches"), count("nonvoluntary_ctxt_switches"), waited_ns};
}

void busy_wait(std::chrono::microseconds gap) {
  const mpdemo::Stopwatch clock;
  while (clock.seconds() < std::chrono::duration<double>(gap).count()) {
  }
}

constexpr int kGaps = 200;

/// A pool's worker's context switches over kGaps maps of one element, each after 400 us of the
/// program's own work (eight times the base spin of 50 us), its spin fixed or allowed to grow up to
/// 50 ms. `switches_so_far(pool)` counts them.
template <class Pool, class Options, class SwitchesSoFar>
Switches switches_in_gaps(Options options, bool grows, SwitchesSoFar switches_so_far) {
  options.workers = 1;
  options.spin = 50us;
  options.spin_limit = grows ? 50ms : 50us;
  Pool pool(options);
  EXPECT_EQ(pool.map([](int x) { return x + 1; }, std::vector<int>{20})[0], 21);
  const Switches before = switches_so_far(pool);
  for (int gap = 0; gap < kGaps; ++gap) {
    busy_wait(400us);
    EXPECT_EQ(pool.map([](int x) { return x * 3; }, std::vector<int>{gap})[0], gap * 3);
  }
  return switches_so_far(pool) - before;
}

/// With the spin fixed the worker sleeps in every gap (on a quiet machine, 200 of 200); allowed to
/// grow, it learns the gap and stays awake through the next ones (0 of 200).
void expect_the_spin_learns_the_gap(const Switches& fixed, const Switches& growing) {
  EXPECT_LE(growing.slept, kGaps / 4) << "a worker whose spin may grow kept sleeping in the gaps";
  if (fixed.slept >= kGaps / 2) return;
  // The control failed. A machine busy with something else keeps a spinning worker off its core past
  // its spin, and it then finds its task without sleeping, fixed or not: then it proves nothing.
  if (fixed.displaced > kGaps / 4) {
    GTEST_SKIP() << "the machine was busy: another thread took the worker's core " << fixed.displaced << " times";
  }
  ADD_FAILURE() << "a worker spinning a fixed 50 us slept in only " << fixed.slept << " of " << kGaps
                << " gaps of 400 us, and nothing else took its core";
}

constexpr int kBursts = 30;
/// More time than this waiting for a CPU, the worker's and the program's together over the bursts,
/// says another thread shared their cores: 0-0.8 ms on a quiet machine, 23-35 ms with a busy loop
/// beside the test (which took the program's CPU as it woke from each pause, and left the worker
/// sleeping in up to 23 gaps while displacing either of them at most 3 times).
constexpr long long kBusyNs = 5'000'000;
constexpr int kBurstGaps = 4;

/// What switches_in_bursts counted: the worker's context switches in all, those within the bursts
/// (from just after each pause to just after the burst's last map: its gaps), and the program's own
/// (its displacements and its waits for a CPU, each stretching one of its gaps or pauses).
struct BurstSwitches {
  Switches worker;
  Switches in_gaps;
  Switches program;
};

/// The calling thread's Switches so far.
Switches switches_of_this_thread() { return switches_of("/proc/thread-self/status"); }

/// A pool's worker's context switches over kBursts bursts of maps of one element, kBurstGaps gaps of
/// 400 us of the program's own work between a burst's maps, and a pause of 20 ms (ten times the spin's
/// limit, 2 ms) before each burst. `switches_so_far(pool)` counts them.
template <class Pool, class Options, class SwitchesSoFar>
std::optional<BurstSwitches> switches_in_bursts(Options options, SwitchesSoFar switches_so_far) {
  options.workers = 1;
  options.spin = 50us;
  options.spin_limit = 2ms;
  // The program sleeps between bursts, and a thread that wakes on its worker's CPU stays there, its own
  // work then taking the core the worker spins on: the worker would sleep for want of its core, not
  // for its spin. So the program keeps off the worker's CPU (and cannot with one CPU).
  const mpdemo::Topology& topology = mpdemo::system_topology();
  std::vector<int> others;
  for (int cpu : topology.allowed_cpus) {
    if (cpu != topology.worker_cpu(0)) others.push_back(cpu);
  }
  if (others.empty() || !mpdemo::pin_calling_thread(others)) return std::nullopt;
  struct Unpin {
    ~Unpin() { mpdemo::pin_calling_thread(mpdemo::system_topology().allowed_cpus); }
  } unpin;
  Pool pool(options);
  EXPECT_EQ(pool.map([](int x) { return x + 1; }, std::vector<int>{20})[0], 21);
  const Switches before = switches_so_far(pool);
  const Switches program_before = switches_of_this_thread();
  Switches in_gaps;
  for (int burst = 0; burst < kBursts; ++burst) {
    std::this_thread::sleep_for(20ms);
    // Read while the worker sleeps out the pause, and again while it still spins after the burst:
    // what lies between is the burst's gaps alone.
    const Switches burst_began = switches_so_far(pool);
    for (int map = 0; map <= kBurstGaps; ++map) {
      if (map > 0) busy_wait(400us);
      EXPECT_EQ(pool.map([](int x) { return x * 3; }, std::vector<int>{map})[0], map * 3);
    }
    in_gaps = in_gaps + (switches_so_far(pool) - burst_began);
  }
  return BurstSwitches{switches_so_far(pool) - before, in_gaps, switches_of_this_thread() - program_before};
}

/// The pause before each burst is a sleep (kBursts of them). A worker that forgot the pace in each
/// pause would also sleep in each burst's first gap (kBursts sleeps within the bursts); one that
/// forgot it in every other pause (its gaps caught spinning not counted as the pace kept) in half of
/// them (15-17 of 30, measured with that fault put in IdleSpin); one that keeps it, only in the first
/// burst's. So the sleeps within the bursts are counted apart from the pauses': 1-3 of them on the
/// project's current machine, where the bound leaves room for kBursts / 4, which a vCPU the host takes
/// now and then, unseen by any count here, may use. (With 20 bursts and every sleep counted, 20-24
/// where 25 were allowed, a CI run failed with 26.)
/// A worker kept off its CPU from before its spin ran out until the next burst came (the VM's host
/// took the vCPU; in a CI run under ASan: 19 sleeps) finds its task without sleeping, so the floor
/// asks for half the pauses: a worker that never sleeps, the failure it is there for, sleeps in none.
/// A program or worker kept off its core by another thread stretches gaps past the worker's spin
/// (kBusyNs); such a run proves nothing either way, and is skipped.
void expect_the_pace_survives_the_pauses(const std::optional<BurstSwitches>& counted) {
  if (!counted) GTEST_SKIP() << "no CPU besides the worker's for the program";
  const Switches& worker = counted->worker;
  const Switches& program = counted->program;
  constexpr int kAtMostInGaps = kBursts / 4;
  const auto busy = [&] {
    return fmt::format(
        "the worker was displaced {} times and waited {:.1f} ms for its CPU, the program {} times and "
        "{:.1f} ms",
        worker.displaced, static_cast<double>(worker.waited_ns) / 1e6, program.displaced,
        static_cast<double>(program.waited_ns) / 1e6);
  };
  if (counted->in_gaps.slept > kAtMostInGaps &&
      (worker.displaced + program.displaced > kBursts / 4 || worker.waited_ns + program.waited_ns > kBusyNs)) {
    GTEST_SKIP() << "the machine was busy: " << busy();
  }
  EXPECT_LE(counted->in_gaps.slept, kAtMostInGaps)
      << "a worker forgot its program's pace in the pauses between bursts (it slept " << worker.slept
      << " times in all; " << busy() << ")";
  EXPECT_GE(worker.slept - counted->in_gaps.slept, kBursts / 2)
      << "a worker stayed awake through the program's pauses of 20 ms";
}

class IdleSpinning : public ::testing::TestWithParam<Control> {};

TEST_P(IdleSpinning, AWorkerWhoseTasksComeALittleAfterItsSpinEndsLearnsToSpinThroughTheGap) {
  auto switches = [&](bool grows) {
    mpdemo::ProcessPoolOptions options;
    options.control = GetParam();
    return switches_in_gaps<mpdemo::ProcessPool>(options, grows, [](const mpdemo::ProcessPool& pool) {
      return switches_of("/proc/" + std::to_string(pool.worker_pids()[0].value()) + "/status");
    });
  };
  const Switches fixed = switches(false);
  expect_the_spin_learns_the_gap(fixed, switches(true));
}

TEST_P(IdleSpinning, AWorkerKeepsItsProgramsPaceThroughAPauseBetweenBursts) {
  mpdemo::ProcessPoolOptions options;
  options.control = GetParam();
  expect_the_pace_survives_the_pauses(
      switches_in_bursts<mpdemo::ProcessPool>(options, [](const mpdemo::ProcessPool& pool) {
        return switches_of("/proc/" + std::to_string(pool.worker_pids()[0].value()) + "/status");
      }));
}

INSTANTIATE_TEST_SUITE_P(Controls, IdleSpinning, ::testing::Values(Control::shared_memory, Control::pipes),
                         [](const auto& param) { return param.param == Control::pipes ? "Pipes" : "Mailboxes"; });

/// A thread pool's threads' context switches: every thread of this process but the test's own is the pool's.
Switches switches_of_other_threads(const mpdemo::ThreadPool& /*pool*/) {
  Switches total;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    const pid_t tid = std::stoi(task.path().filename().string());
    if (tid != ::gettid()) total = total + switches_of(task.path().string() + "/status");
  }
  return total;
}

// The same for a thread pool's thread.
TEST(IdleSpinning, AThreadWhoseTasksComeALittleAfterItsSpinEndsLearnsToSpinThroughTheGap) {
  auto switches = [](bool grows) {
    return switches_in_gaps<mpdemo::ThreadPool>(mpdemo::PoolOptions{}, grows, switches_of_other_threads);
  };
  const Switches fixed = switches(false);
  expect_the_spin_learns_the_gap(fixed, switches(true));
}

TEST(IdleSpinning, AThreadKeepsItsProgramsPaceThroughAPauseBetweenBursts) {
  expect_the_pace_survives_the_pauses(
      switches_in_bursts<mpdemo::ThreadPool>(mpdemo::PoolOptions{}, switches_of_other_threads));
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
    const mpdemo::Stopwatch stopping;
    pool.reset();
    stops.push_back(stopping.seconds());
  }
  return mpdemo::Summary::of(stops).median;
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
