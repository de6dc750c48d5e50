// SharedMapping and mpdemo's own tmpfs: shared memory a child forked later sees, in 2 MiB pages where
// only that tmpfs gives them, and the system's anonymous shared memory where it cannot be made.
#include "mpdemo/sys/shared_memory.hpp"
#include "mpdemo/sys/fd.hpp"
#include "mpdemo/sys/huge_pages.hpp"
#include "mpdemo/sys/spawn.hpp"
#include "support/mappings.hpp"
#include "support/run_program.hpp"
#include "support/seccomp.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <linux/seccomp.h>
#include <sys/syscall.h>
#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <vector>

namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr std::size_t kBytes = std::size_t{16} << 20;

std::string mount_table() {
  std::ifstream mounts("/proc/self/mountinfo");
  std::stringstream text;
  text << mounts.rdbuf();
  return text.str();
}

// shmem_enabled's selected word, read without huge_pages(), which would make own_tmpfs() here.
std::string shared_setting() {
  std::ifstream file(mpdemo::HugePages::kSharedSettingFile);
  std::string line;
  std::getline(file, line);
  return mpdemo::selected_setting(line);
}

TEST(OwnTmpfs, GivesSharedMemoryInHugePagesAndLeavesNothingMountedOrRunning) {
  if (shared_setting().empty()) GTEST_SKIP() << "this kernel has no transparent huge pages: tmpfs refuses huge=";
  const std::string mounts_before = mount_table();
  const mpdemo::OwnTmpfs tmpfs = mpdemo::own_tmpfs();
  EXPECT_TRUE(mpdemo::testing::children_of(::getpid()).empty()) << "the helper was left running or unreaped";
  EXPECT_EQ(mount_table(), mounts_before) << "the tmpfs is attached nowhere, in no namespace this process sees";
  if (tmpfs.root < 0) {
    // Only the machine may refuse: namespaces (a container's seccomp filter, user.max_user_namespaces),
    // the id maps (AppArmor's restriction of unprivileged user namespaces, as on Ubuntu from 23.10) or
    // the new mount API (a kernel before 5.2). Any later step failing is mpdemo's bug.
    EXPECT_THAT(tmpfs.failure,
                ::testing::AnyOf(HasSubstr("unshare("), HasSubstr("map this user's ids"), HasSubstr("fsopen(")));
    GTEST_SKIP() << "no tmpfs of mpdemo's own on this machine: " << tmpfs.failure;
  }
  EXPECT_TRUE(tmpfs.failure.empty()) << tmpfs.failure;
  const int root = tmpfs.root;
  EXPECT_EQ(mpdemo::own_tmpfs().root, root) << "made once per process";
  // Where the system's shared memory has no huge pages, every arena takes this tmpfs's.
  if (const mpdemo::HugePages pages = mpdemo::huge_pages(); !pages.shared_offered() && pages.shared_setting != "deny") {
    EXPECT_TRUE(pages.own_tmpfs) << pages.own_tmpfs_failure;
    EXPECT_EQ(mpdemo::SharedMapping(kBytes).source(), mpdemo::SharedMemorySource::own_tmpfs);
  }

  mpdemo::SharedMapping mapping(kBytes, mpdemo::SharedMemorySource::own_tmpfs);
  ASSERT_EQ(mapping.size(), kBytes);
  const std::span<std::byte> bytes(static_cast<std::byte*>(mapping.address()), kBytes);
  EXPECT_TRUE(std::all_of(bytes.begin(), bytes.end(), [](std::byte b) { return b == std::byte{0}; }));
  std::fill(bytes.begin(), bytes.end(), std::byte{1});

  // What a child forked afterwards reads is the parent's, and what it writes the parent reads.
  mpdemo::ChildProcess child = mpdemo::spawn("a child of the mapping", {}, [&]() noexcept {
    if (!std::all_of(bytes.begin(), bytes.end(), [](std::byte b) { return b == std::byte{1}; })) return 1;
    std::fill(bytes.begin() + kBytes / 2, bytes.end(), std::byte{2});
    return 0;
  });
  ASSERT_TRUE(child.wait().success());
  EXPECT_EQ(std::count(bytes.begin(), bytes.end(), std::byte{2}), static_cast<std::ptrdiff_t>(kBytes / 2));

  // spawn closes every descriptor in its children, the tmpfs's root too: a child that maps shared
  // memory of its own gets a tmpfs of its own.
  mpdemo::ChildProcess mapper = mpdemo::spawn("a child with an arena of its own", {}, [&]() noexcept {
    try {
      const mpdemo::SharedMapping own(kBytes, mpdemo::SharedMemorySource::own_tmpfs);
      static_cast<std::byte*>(own.address())[0] = std::byte{3};
      return 0;
    } catch (const std::exception&) {
      return 1;
    }
  });
  EXPECT_TRUE(mapper.wait().success()) << "a child could not map from its own tmpfs";

  const mpdemo::testing::MappingFacts facts = mpdemo::testing::mapping_holding(mapping.address());
  EXPECT_THAT(facts.name, HasSubstr("(deleted)")) << "an unnamed file";
  EXPECT_THAT(facts.name, Not(HasSubstr("/dev/zero"))) << "not anonymous shared memory";
  // huge=always, whatever shmem_enabled says. The kernel may fall back to small pages where it finds
  // no free 2 MiB of memory, so one huge page of the eight is what can be demanded.
  EXPECT_GE(facts.shmem_pmd_mapped_kb, 2048u) << "shmem_enabled: " << mpdemo::huge_pages().shared_setting;
}

// A helper that hangs must not hang the program: it stops itself here (SIGSTOP, from a fork handler)
// before it can answer. In a child of the test, whose own_tmpfs() makes its tmpfs again (spawn
// closed the root it inherited), the call gives up, says so, and leaves no stopped helper behind.
TEST(OwnTmpfs, AHelperThatNeverAnswersIsGivenUpOnAndKilled) {
  if (mpdemo::own_tmpfs().root < 0) GTEST_SKIP() << "no tmpfs of mpdemo's own on this machine";
  const mpdemo::testing::ChildVerdict verdict =
      mpdemo::testing::run_in_child("a child whose tmpfs helper hangs", [](int report) noexcept {
        std::optional<mpdemo::testing::StopNewChildren> stopped(std::in_place);  // its helper, forked from here
        const auto start = std::chrono::steady_clock::now();
        const mpdemo::OwnTmpfs tmpfs = mpdemo::own_tmpfs();
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        stopped.reset();
        std::array<char, 256> text{};
        const std::string said = tmpfs.root < 0 ? tmpfs.failure : std::string("made");
        std::snprintf(text.data(), text.size(), "%s|%.2f|%zu", said.c_str(), seconds,
                      mpdemo::testing::children_of(::getpid()).size());
        return mpdemo::write_whole(report, text.data(), std::strlen(text.data())) ? 0 : 1;
      });
  ASSERT_TRUE(verdict.status.success()) << verdict.status.str();
  const std::string& said = verdict.said;
  SCOPED_TRACE(said);
  EXPECT_THAT(said, HasSubstr("the helper gave no answer within 2 s (killed by signal 9 (SIGKILL))"));
  const std::size_t bar = said.find('|');
  ASSERT_NE(bar, std::string::npos);
  EXPECT_LT(std::stod(said.substr(bar + 1)), 5.0) << "seconds it waited";
  EXPECT_EQ(said.substr(said.rfind('|') + 1), "0") << "helpers left behind";
}

TEST(OwnTmpfs, TurnedOffTheArenasTakeTheSystemsSharedMemory) {
  ASSERT_EQ(::setenv(mpdemo::kOwnTmpfsVariable, "0", 1), 0);
  const mpdemo::HugePages pages = mpdemo::huge_pages();
  const mpdemo::SharedMapping mapping(kBytes);
  ::unsetenv(mpdemo::kOwnTmpfsVariable);
  EXPECT_FALSE(pages.own_tmpfs);
  EXPECT_EQ(mapping.source(), mpdemo::SharedMemorySource::anonymous);
  EXPECT_THAT(mpdemo::testing::mapping_holding(mapping.address()).name, HasSubstr("/dev/zero"));
  if (!pages.shared_offered() && !pages.shared_setting.empty() && pages.shared_setting != "deny") {
    EXPECT_THAT(pages.own_tmpfs_failure, HasSubstr("MPDEMO_OWN_TMPFS=0"));
  }
}

// A seccomp filter that fails unshare with EPERM, as a container's may: what the helper inherits.
bool refuse_unshare() noexcept {
  return mpdemo::testing::install_seccomp_filter({{SYS_unshare, SECCOMP_RET_ERRNO | EPERM}});
}

// Run in a program of its own: own_tmpfs() is made once per process, and a child forked here would
// inherit this process's.
mpdemo::testing::ProgramResult run_mpdemo_refused_unshare(const std::vector<std::string>& arguments) {
  mpdemo::Pipe out = mpdemo::Pipe::create();
  mpdemo::SpawnOptions options;
  options.stdout_to = out.write_end.get();
  std::vector<std::string> words{mpdemo::testing::mpdemo_executable()};
  words.insert(words.end(), arguments.begin(), arguments.end());
  std::vector<char*> argv;
  for (std::string& word : words) argv.push_back(word.data());
  argv.push_back(nullptr);
  mpdemo::ChildProcess child = mpdemo::spawn("mpdemo, refused unshare", options, [&]() noexcept {
    if (!refuse_unshare()) return 3;
    ::execv(argv[0], argv.data());
    return 4;
  });
  out.write_end.reset();
  mpdemo::testing::ProgramResult result;
  char buffer[4096];
  for (ssize_t n; (n = ::read(out.read_end.get(), buffer, sizeof(buffer))) > 0;) {
    result.out.append(buffer, static_cast<std::size_t>(n));
  }
  result.status = child.wait_or_kill(std::chrono::seconds(30));
  return result;
}

TEST(OwnTmpfs, WhereNamespacesAreRefusedTheReasonIsGivenAndTheSystemsSharedMemoryServes) {
  const std::string setting = shared_setting();
  if (setting.empty() || setting == "deny" ||
      mpdemo::HugePages{.private_setting = "", .shared_setting = setting}.shared_offered()) {
    GTEST_SKIP() << "mpdemo makes no tmpfs of its own where shmem_enabled is " << setting;
  }
  const mpdemo::testing::ProgramResult topology = run_mpdemo_refused_unshare({"topology", "--format", "json"});
  ASSERT_EQ(topology.exit_code(), 0) << topology.status.str() << topology.out;
  const auto arena = nlohmann::json::parse(topology.out).at("huge_pages_arena");
  EXPECT_EQ(arena.at("source"), "anonymous");
  EXPECT_EQ(arena.at("huge"), false);
  const std::string failure = arena.at("own_tmpfs_failure");
  EXPECT_THAT(failure, HasSubstr("mpdemo could not make its own tmpfs: unshare(CLONE_NEWUSER | CLONE_NEWNS)"));
  EXPECT_THAT(failure, HasSubstr("Operation not permitted"));

  // And a pool still works, in the system's shared memory.
  const mpdemo::testing::ProgramResult run =
      run_mpdemo_refused_unshare({"run", "--size", "100000", "--mode", "proc", "--format", "json"});
  ASSERT_EQ(run.exit_code(), 0) << run.status.str() << run.out;
  EXPECT_EQ(nlohmann::json::parse(run.out).at("modes").at(0).at("verified"), true);
}

TEST(OwnTmpfs, UnderAFileSizeLimitTheArenaTakesAnonymousMemoryInsteadOfDying) {
  // ftruncate past RLIMIT_FSIZE raises SIGXFSZ, whose default is to kill: the arena must not try.
  const mpdemo::testing::ProgramResult run =
      mpdemo::testing::run_program({"prlimit", "--fsize=1048576", mpdemo::testing::mpdemo_executable(), "run", "--size",
                                    "100000", "--mode", "proc", "--format", "json"});
  ASSERT_EQ(run.exit_code(), 0) << run.status.str() << run.err;
  EXPECT_EQ(nlohmann::json::parse(run.out).at("modes").at(0).at("verified"), true);
}

}  // namespace
