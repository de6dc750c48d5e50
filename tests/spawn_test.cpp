// spawn(), the one place mpdemo forks, and the child-safe pipe primitives every child uses: a child
// runs where it was asked to, keeps only the descriptors it was given, leaves with its body's status,
// and a message is read whole, or its absence or tearing is told apart.
#include "mpdemo/sys/spawn.hpp"
#include "mpdemo/sys/fd.hpp"
#include "mpdemo/sys/topology.hpp"

#include <gtest/gtest.h>

#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <sched.h>
#include <unistd.h>
#include <algorithm>
#include <array>
#include <string>
#include <system_error>

namespace {

TEST(Spawn, TheBodysReturnValueIsTheExitStatus) {
  mpdemo::ChildProcess child = mpdemo::spawn("a child", {}, []() noexcept { return 7; });
  const mpdemo::ExitStatus status = child.wait();
  ASSERT_TRUE(status.exited()) << status.str();
  EXPECT_EQ(status.exit_code(), 7);
}

TEST(Spawn, PinsTheChildToTheCpuAskedForAndItRunsThere) {
  for (const int cpu : mpdemo::system_topology().allowed_cpus) {
    mpdemo::Pipe report = mpdemo::Pipe::create();
    mpdemo::SpawnOptions options;
    options.cpu = cpu;
    options.cpu_required = true;
    options.keep_descriptors = {report.write_end.get()};
    const int out = report.write_end.get();
    mpdemo::ChildProcess child = mpdemo::spawn("a pinned child", options, [out]() noexcept {
      const int ran_on = ::sched_getcpu();
      return mpdemo::write_whole(out, &ran_on, sizeof ran_on) ? 0 : 1;
    });
    report.write_end.reset();
    int ran_on = -1;
    ASSERT_EQ(mpdemo::read_whole(report.read_end.get(), &ran_on, sizeof ran_on), mpdemo::ReadOutcome::complete);
    EXPECT_EQ(ran_on, cpu);
    EXPECT_TRUE(child.wait().success());
  }
}

TEST(Spawn, ARequiredPinTheKernelRefusesEndsTheChildWithItsOwnStatus) {
  mpdemo::SpawnOptions options;
  options.cpu = CPU_SETSIZE - 1;  // not a CPU this machine has
  options.cpu_required = true;
  mpdemo::ChildProcess child = mpdemo::spawn("a child pinned nowhere", options, []() noexcept { return 0; });
  const mpdemo::ExitStatus status = child.wait();
  ASSERT_TRUE(status.exited()) << status.str();
  EXPECT_EQ(status.exit_code(), mpdemo::kSpawnPinFailed);
  // Not required: the child runs anyway, wherever it may.
  options.cpu_required = false;
  EXPECT_TRUE(mpdemo::spawn("a child", options, []() noexcept { return 0; }).wait().success());
}

TEST(Spawn, TheChildKeepsOnlyTheDescriptorsItWasGiven) {
  mpdemo::Pipe kept = mpdemo::Pipe::create();
  mpdemo::Pipe other = mpdemo::Pipe::create();
  mpdemo::SpawnOptions options;
  options.keep_descriptors = {kept.write_end.get()};
  const int kept_fd = kept.write_end.get();
  const int other_fd = other.write_end.get();
  mpdemo::ChildProcess child = mpdemo::spawn("a child", options, [kept_fd, other_fd]() noexcept {
    const std::array<int, 2> open{::fcntl(kept_fd, F_GETFD) != -1, ::fcntl(other_fd, F_GETFD) != -1};
    return mpdemo::write_whole(kept_fd, open.data(), sizeof open) ? 0 : 1;
  });
  kept.write_end.reset();
  std::array<int, 2> open{};
  ASSERT_EQ(mpdemo::read_whole(kept.read_end.get(), open.data(), sizeof open), mpdemo::ReadOutcome::complete);
  EXPECT_EQ(open[0], 1) << "the kept descriptor was closed";
  EXPECT_EQ(open[1], 0) << "a descriptor the child was not given stayed open";
  EXPECT_TRUE(child.wait().success());
}

TEST(Spawn, TheChildKeepsDescriptorsGivenInAnyOrderAndClosesThoseBetweenThem) {
  std::array<mpdemo::Pipe, 4> pipes{mpdemo::Pipe::create(), mpdemo::Pipe::create(), mpdemo::Pipe::create(),
                                    mpdemo::Pipe::create()};
  std::array<int, 8> fds{};
  for (std::size_t i = 0; i < pipes.size(); ++i) {
    fds[2 * i] = pipes[i].read_end.get();
    fds[2 * i + 1] = pipes[i].write_end.get();
  }
  std::sort(fds.begin(), fds.end());
  // Every other descriptor kept, highest first: those between the kept ones must still be closed.
  mpdemo::SpawnOptions options;
  for (std::size_t i = fds.size(); i >= 2; i -= 2) options.keep_descriptors.push_back(fds[i - 1]);
  mpdemo::Pipe report = mpdemo::Pipe::create();
  options.keep_descriptors.push_back(report.write_end.get());
  const int out = report.write_end.get();
  mpdemo::ChildProcess child = mpdemo::spawn("a child", options, [fds, out]() noexcept {
    std::array<int, 8> open{};
    for (std::size_t i = 0; i < fds.size(); ++i) open[i] = ::fcntl(fds[i], F_GETFD) != -1;
    return mpdemo::write_whole(out, open.data(), sizeof open) ? 0 : 1;
  });
  report.write_end.reset();
  std::array<int, 8> open{};
  ASSERT_EQ(mpdemo::read_whole(report.read_end.get(), open.data(), sizeof open), mpdemo::ReadOutcome::complete);
  for (std::size_t i = 0; i < fds.size(); ++i) {
    EXPECT_EQ(open[i], i % 2 == 1 ? 1 : 0) << "descriptor " << fds[i] << (i % 2 == 1 ? " was kept" : " was not kept");
  }
  EXPECT_TRUE(child.wait().success());
}

// A child that calls a function its parent never called would have the dynamic linker resolve it,
// walking symbol tables the child has not mapped: page faults, in every worker of every fresh pool.
// This build links its programs with -z now (a link option of the sys layer, for this build only):
// the program's own calls are bound when it starts, before any fork.
TEST(Spawn, AProgramLinkingTheLibraryBindsItsSymbolsBeforeItForks) {
  bool bound_now = false;
  bool found_main_program = false;
  struct Result {
    bool* bound_now;
    bool* found;
  } result{&bound_now, &found_main_program};
  ::dl_iterate_phdr(
      [](dl_phdr_info* info, std::size_t, void* data) {
        auto* out = static_cast<Result*>(data);
        *out->found = true;  // the first object listed is the program itself
        for (ElfW(Half) i = 0; i < info->dlpi_phnum; ++i) {
          if (info->dlpi_phdr[i].p_type != PT_DYNAMIC) continue;
          const auto* entry = reinterpret_cast<const ElfW(Dyn)*>(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
          for (; entry->d_tag != DT_NULL; ++entry) {
            if ((entry->d_tag == DT_FLAGS && (entry->d_un.d_val & DF_BIND_NOW) != 0) ||
                (entry->d_tag == DT_FLAGS_1 && (entry->d_un.d_val & DF_1_NOW) != 0) || entry->d_tag == DT_BIND_NOW) {
              *out->bound_now = true;
            }
          }
        }
        return 1;  // only the program
      },
      &result);
  ASSERT_TRUE(found_main_program);
  EXPECT_TRUE(bound_now) << "this test program was linked for lazy binding (no -z now)";
}

TEST(ReadWhole, TellsACompleteMessageFromNoneAndFromATornOne) {
  std::array<char, 8> buffer{};
  {
    mpdemo::Pipe pipe = mpdemo::Pipe::create();
    ASSERT_TRUE(mpdemo::write_whole(pipe.write_end.get(), "12345678", 8));
    pipe.write_end.reset();
    EXPECT_EQ(mpdemo::read_whole(pipe.read_end.get(), buffer.data(), 8), mpdemo::ReadOutcome::complete);
    EXPECT_EQ(std::string(buffer.data(), 8), "12345678");
    EXPECT_EQ(mpdemo::read_whole(pipe.read_end.get(), buffer.data(), 8), mpdemo::ReadOutcome::end_of_file);
  }
  {
    mpdemo::Pipe pipe = mpdemo::Pipe::create();
    ASSERT_TRUE(mpdemo::write_whole(pipe.write_end.get(), "123", 3));
    pipe.write_end.reset();  // the writer "died" three bytes into an eight-byte message
    EXPECT_EQ(mpdemo::read_whole(pipe.read_end.get(), buffer.data(), 8), mpdemo::ReadOutcome::torn);
  }
  {  // The throwing form says the same: false for no message, an error for a torn one.
    mpdemo::Pipe pipe = mpdemo::Pipe::create();
    ASSERT_TRUE(mpdemo::write_whole(pipe.write_end.get(), "123", 3));
    pipe.write_end.reset();
    EXPECT_THROW(static_cast<void>(mpdemo::read_exact(pipe.read_end.get(), buffer.data(), 8)), std::system_error);
    EXPECT_FALSE(mpdemo::read_exact(pipe.read_end.get(), buffer.data(), 8));
  }
}

}  // namespace
