// ProcFields and ProcStat, the one reader of /proc's status and stat files: checked against what the
// kernel says through other calls (getrusage, getuid, a child's own CPU clock) and against processes
// made to be in a known state (asleep, dead and unreaped, named to fool a careless parser).
#include "mpdemo/sys/proc_files.hpp"
#include "mpdemo/sys/fd.hpp"
#include "mpdemo/sys/spawn.hpp"
#include "support/run_program.hpp"

#include <gtest/gtest.h>

#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

namespace {

using namespace std::chrono_literals;

TEST(ProcFields, ReadsKeysTextNumbersAndSizes) {
  const std::filesystem::path file = std::filesystem::path(::testing::TempDir()) / "proc_fields_sample";
  std::ofstream(file) << "Name:\tsome name\n"
                         "VmHWM:\t    1234 kB\n"
                         "Threads:\t3\n"
                         "Uid:\t1000\t1001\t1002\t1003\n"
                         "Empty:\n"
                         "SigCgt:\t0000000000004a02\n"
                         "a line without a key\n"
                         "model name\t: The First\n"  // /proc/cpuinfo's way: a padded key, once per processor
                         "model name\t: The Second\n";
  const std::optional<mpdemo::ProcFields> fields = mpdemo::ProcFields::read(file);
  std::filesystem::remove(file);
  ASSERT_TRUE(fields);
  EXPECT_EQ(fields->text("Name"), "some name");
  EXPECT_EQ(fields->text("Empty"), "");
  EXPECT_EQ(fields->bytes("VmHWM"), 1234u * 1024);
  EXPECT_EQ(fields->number("VmHWM"), 1234u);
  EXPECT_EQ(fields->bytes("Threads"), 3u) << "a field without a unit is bytes as written";
  EXPECT_EQ(fields->number("Uid"), 1000u) << "the first of the uids: the real one";
  EXPECT_EQ(fields->text("SigCgt"), "0000000000004a02");
  EXPECT_EQ(fields->number("Name"), std::nullopt) << "text is not a number";
  EXPECT_EQ(fields->number("Empty"), std::nullopt);
  EXPECT_EQ(fields->text("Missing"), std::nullopt);
  EXPECT_EQ(fields->text("VmHW"), std::nullopt) << "a key is matched whole, not by its beginning";
  EXPECT_EQ(fields->text("a line without a key"), std::nullopt);
  EXPECT_EQ(fields->text("model name"), "The First") << "a key's padding is not part of it; the first value stays";
}

TEST(ProcFields, AFileThatCannotBeOpenedIsNoneAndErrnoSaysWhy) {
  errno = 0;
  EXPECT_EQ(mpdemo::ProcFields::read(std::filesystem::path(::testing::TempDir()) / "no such file"), std::nullopt);
  EXPECT_EQ(errno, ENOENT);
}

TEST(ProcFields, ThisProcesssStatusAgreesWithTheKernelsOtherAnswers) {
  const std::optional<mpdemo::ProcFields> before = mpdemo::ProcFields::status_of(::getpid());
  ASSERT_TRUE(before);
  EXPECT_EQ(before->number("Pid"), static_cast<std::uint64_t>(::getpid()));
  EXPECT_EQ(before->number("Uid"), static_cast<std::uint64_t>(::getuid()));
  EXPECT_EQ(before->number("PPid"), static_cast<std::uint64_t>(::getppid()));

  // 64 MiB of address space, never touched: VmSize counts it, in bytes, at once.
  constexpr std::size_t kReserved = std::size_t{64} << 20;
  void* reserved = ::mmap(nullptr, kReserved, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  ASSERT_NE(reserved, MAP_FAILED);
  const std::optional<mpdemo::ProcFields> after = mpdemo::ProcFields::read("/proc/self/status");
  ::munmap(reserved, kReserved);
  ASSERT_TRUE(after);
  ASSERT_TRUE(before->bytes("VmSize") && after->bytes("VmSize"));
  EXPECT_GE(*after->bytes("VmSize"), *before->bytes("VmSize") + kReserved);
}

TEST(ProcStat, CountsThisProcesssPageFaultsAsGetrusageDoes) {
  constexpr std::size_t kPages = 256;
  const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  auto* memory = static_cast<volatile char*>(
      ::mmap(nullptr, kPages * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(memory, MAP_FAILED);
  ::madvise(const_cast<char*>(memory), kPages * page, MADV_NOHUGEPAGE);  // one fault per page, not per 2 MiB

  const std::optional<mpdemo::ProcStat> before = mpdemo::ProcStat::of(::getpid());
  for (std::size_t i = 0; i < kPages; ++i) memory[i * page] = 1;
  rusage earlier{};
  ::getrusage(RUSAGE_SELF, &earlier);
  const std::optional<mpdemo::ProcStat> after = mpdemo::ProcStat::read("/proc/self/stat");
  rusage later{};
  ::getrusage(RUSAGE_SELF, &later);
  ::munmap(const_cast<char*>(memory), kPages * page);

  ASSERT_TRUE(before && after);
  EXPECT_GE(after->minor_faults, before->minor_faults + kPages);
  // Both count this process's faults; reading the file may fault too, between the two getrusage calls.
  EXPECT_GE(after->minor_faults, static_cast<std::uint64_t>(earlier.ru_minflt));
  EXPECT_LE(after->minor_faults, static_cast<std::uint64_t>(later.ru_minflt));
  EXPECT_EQ(after->parent, ::getppid());
  EXPECT_EQ(after->state, 'R') << "this process is running while it reads its own stat";
}

TEST(ProcStat, ASleepingChildWithAConfusingNameIsReadRight) {
  mpdemo::Pipe ready = mpdemo::Pipe::create();
  mpdemo::Pipe release = mpdemo::Pipe::create();
  mpdemo::SpawnOptions options;
  options.keep_descriptors = {ready.write_end.get(), release.read_end.get()};
  const int ready_fd = ready.write_end.get();
  const int release_fd = release.read_end.get();
  mpdemo::ChildProcess child = mpdemo::spawn("a child named to confuse", options, [=]() noexcept {
    ::prctl(PR_SET_NAME, "x) R 1 2 (y", 0, 0, 0);  // a parser that stops at the first ')' reads 'R', 1
    // A fifth of a second of CPU time by its own clock, then asleep in read() until the parent closes the pipe.
    timespec used{};
    do {
      ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &used);
    } while (used.tv_sec == 0 && used.tv_nsec < 200'000'000);
    if (!mpdemo::write_whole(ready_fd, &used, sizeof used)) return 1;
    char ignored = 0;
    return ::read(release_fd, &ignored, 1) == 0 ? 0 : 2;
  });
  ready.write_end.reset();
  release.read_end.reset();
  timespec used{};
  ASSERT_EQ(mpdemo::read_whole(ready.read_end.get(), &used, sizeof used), mpdemo::ReadOutcome::complete);
  ASSERT_TRUE(mpdemo::testing::eventually(
      [&] {
        const std::optional<mpdemo::ProcStat> stat = mpdemo::ProcStat::of(child.pid());
        return stat && stat->state == 'S';
      },
      10s))
      << "the child never slept in read()";
  const std::optional<mpdemo::ProcStat> asleep = mpdemo::ProcStat::of(child.pid());
  ASSERT_TRUE(asleep);
  EXPECT_EQ(asleep->parent, ::getpid());
  const std::optional<mpdemo::ProcFields> status = mpdemo::ProcFields::status_of(child.pid());
  ASSERT_TRUE(status);
  EXPECT_EQ(status->text("Name"), "x) R 1 2 (y");
  // The child's CPU time by its own clock before it slept, and by the kernel's ticks while it sleeps.
  const double own_clock = static_cast<double>(used.tv_sec) + static_cast<double>(used.tv_nsec) * 1e-9;
  const double tick = 1.0 / static_cast<double>(::sysconf(_SC_CLK_TCK));
  EXPECT_NEAR(asleep->cpu_seconds(), own_clock, 2 * tick + 0.01);

  release.write_end.reset();
  EXPECT_TRUE(child.wait().success());
}

TEST(ProcStat, ADeadUnreapedChildIsAZombieAndAReapedOneIsGone) {
  mpdemo::ChildProcess child = mpdemo::spawn("a child that leaves at once", {}, []() noexcept { return 0; });
  const pid_t pid = child.pid();
  EXPECT_TRUE(mpdemo::testing::eventually(
      [pid] {
        const std::optional<mpdemo::ProcStat> stat = mpdemo::ProcStat::of(pid);
        return stat && stat->state == 'Z';
      },
      10s))
      << "the child never became a zombie";
  EXPECT_TRUE(child.wait().success());
  EXPECT_EQ(mpdemo::ProcStat::of(pid), std::nullopt);
  EXPECT_EQ(mpdemo::ProcFields::status_of(pid), std::nullopt);
}

TEST(ProcStat, ReadsTheFieldsByTheirNumbersInProc5) {
  const std::filesystem::path file = std::filesystem::path(::testing::TempDir()) / "proc_stat_line";
  // pid (comm) state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime stime ...
  std::ofstream(file) << "42 (a) b (c) S 7 42 42 0 -1 4194560 123 5 6 8 11 22 0 0 20 0 1 0 99\n";
  const std::optional<mpdemo::ProcStat> stat = mpdemo::ProcStat::read(file);
  std::filesystem::remove(file);
  ASSERT_TRUE(stat);
  EXPECT_EQ(stat->state, 'S');
  EXPECT_EQ(stat->parent, 7);
  EXPECT_EQ(stat->minor_faults, 123u);
  EXPECT_EQ(stat->user_ticks, 11u);
  EXPECT_EQ(stat->system_ticks, 22u);
}

TEST(ProcStat, AFileThatIsNotAStatLineIsNone) {
  const std::filesystem::path file = std::filesystem::path(::testing::TempDir()) / "proc_stat_sample";
  std::ofstream(file) << "12 (name) S 1\n";  // cut short before the CPU times
  EXPECT_EQ(mpdemo::ProcStat::read(file), std::nullopt);
  std::ofstream(file) << "no name here\n";
  EXPECT_EQ(mpdemo::ProcStat::read(file), std::nullopt);
  std::filesystem::remove(file);
}

}  // namespace
