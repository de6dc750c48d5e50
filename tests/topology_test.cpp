// Topology: hwloc's answer, checked against an independent reading of the kernel's own files, which
// is how psutil.cpu_count(logical=False) counts physical cores.
#include "mpdemo/sys/topology.hpp"

#include "mpdemo/sys/interrupt.hpp"
#include "support/mappings.hpp"
#include "support/run_program.hpp"

#include <gtest/gtest.h>

#include <sched.h>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

namespace {

std::string read_line(const std::filesystem::path& path) {
  std::ifstream file(path);
  std::string line;
  std::getline(file, line);
  return line;
}

struct SysfsTopology {
  std::size_t logical = 0;
  std::set<std::string> cores;     // distinct sibling lists = distinct physical cores
  std::set<std::string> packages;  // distinct package ids
};

SysfsTopology read_sysfs() {
  SysfsTopology sysfs;
  const std::regex cpu_directory("cpu[0-9]+");
  for (const auto& entry : std::filesystem::directory_iterator("/sys/devices/system/cpu")) {
    const std::string name = entry.path().filename();
    if (!std::regex_match(name, cpu_directory)) continue;
    const auto topology = entry.path() / "topology";
    if (!std::filesystem::exists(topology)) continue;  // offline CPU
    ++sysfs.logical;
    const auto siblings = std::filesystem::exists(topology / "core_cpus_list") ? topology / "core_cpus_list"
                                                                               : topology / "thread_siblings_list";
    sysfs.cores.insert(read_line(siblings));
    sysfs.packages.insert(read_line(topology / "physical_package_id"));
  }
  return sysfs;
}

TEST(Topology, MatchesTheKernelsOwnAccount) {
  const mpdemo::Topology topology = mpdemo::discover_topology();
  const SysfsTopology sysfs = read_sysfs();
  ASSERT_GT(sysfs.logical, 0u) << "no CPUs under /sys/devices/system/cpu";
  EXPECT_EQ(topology.logical_cpus, sysfs.logical);
  EXPECT_EQ(topology.physical_cores, sysfs.cores.size());
  EXPECT_EQ(topology.sockets, sysfs.packages.size());
  EXPECT_LE(topology.physical_cores, topology.logical_cpus);
}

TEST(Topology, AllowedCpusAreTheAffinityMask) {
  const mpdemo::Topology topology = mpdemo::discover_topology();
  cpu_set_t mask;
  ASSERT_EQ(sched_getaffinity(0, sizeof(mask), &mask), 0);
  EXPECT_EQ(topology.allowed_cpus.size(), static_cast<std::size_t>(CPU_COUNT(&mask)));
  for (int cpu : topology.allowed_cpus) EXPECT_TRUE(CPU_ISSET(static_cast<std::size_t>(cpu), &mask)) << cpu;
}

TEST(Topology, OneWorkerCpuPerPhysicalCoreAndOnlyAllowedOnes) {
  const mpdemo::Topology topology = mpdemo::discover_topology();
  ASSERT_FALSE(topology.worker_cpus.empty());
  EXPECT_LE(topology.worker_cpus.size(), topology.physical_cores);
  const std::set<int> allowed(topology.allowed_cpus.begin(), topology.allowed_cpus.end());
  std::set<std::string> cores_used;
  for (int cpu : topology.worker_cpus) {
    EXPECT_TRUE(allowed.count(cpu) == 1) << cpu << " is outside the affinity mask";
    const auto path = "/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/thread_siblings_list";
    EXPECT_TRUE(cores_used.insert(read_line(path)).second) << "two workers on the core of CPU " << cpu;
  }
  EXPECT_EQ(topology.default_workers(), topology.worker_cpus.size());
}

TEST(Topology, FollowsARestrictedAffinityMask) {
  cpu_set_t original;
  ASSERT_EQ(sched_getaffinity(0, sizeof(original), &original), 0);
  const int first = mpdemo::discover_topology().allowed_cpus.front();
  cpu_set_t only_first;
  CPU_ZERO(&only_first);
  CPU_SET(static_cast<std::size_t>(first), &only_first);
  ASSERT_EQ(sched_setaffinity(0, sizeof(only_first), &only_first), 0);
  const mpdemo::Topology restricted = mpdemo::discover_topology();
  ASSERT_EQ(sched_setaffinity(0, sizeof(original), &original), 0);
  EXPECT_EQ(restricted.allowed_cpus, std::vector<int>{first});
  EXPECT_EQ(restricted.default_workers(), 1u);
}

TEST(Topology, FormatsCpuListsLikeTheKernel) {
  EXPECT_EQ(mpdemo::format_cpu_list(std::vector<int>{}), "");
  EXPECT_EQ(mpdemo::format_cpu_list(std::vector<int>{0}), "0");
  EXPECT_EQ(mpdemo::format_cpu_list(std::vector<int>{0, 1, 2, 3, 6, 8, 9}), "0-3,6,8-9");
}

// Machines the test machine is not, described in hwloc's XML (tests/data: hwloc's synthetic topologies
// "pack:2 core:2 pu:2" and "pack:1 core:4 pu:1", exported with hwloc_topology_export_xmlbuffer).
std::string fixture(const std::string& name) {
  std::ifstream file(std::string(MPDEMO_TEST_DATA) + "/" + name);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

TEST(Topology, WithSmtAndTwoSocketsWorkersGoOnePerPhysicalCoreNotPerHardwareThread) {
  const std::string xml = fixture("two-sockets-two-cores-smt2.xml");
  ASSERT_FALSE(xml.empty());
  const std::vector<int> all{0, 1, 2, 3, 4, 5, 6, 7};
  const mpdemo::Topology machine = mpdemo::topology_from_hwloc_xml(xml, all);
  EXPECT_EQ(machine.logical_cpus, 8u);    // psutil.cpu_count()
  EXPECT_EQ(machine.physical_cores, 4u);  // psutil.cpu_count(logical=False): what the lesson's pool uses
  EXPECT_EQ(machine.sockets, 2u);
  EXPECT_EQ(machine.worker_cpus, (std::vector<int>{0, 2, 4, 6})) << "one hardware thread of each core";
  EXPECT_EQ(machine.default_workers(), 4u);
  EXPECT_EQ(machine.worker_cpu(5), 2) << "worker 5 wraps around to core 1";
  // Only the second thread of core 0, and both of core 2, allowed: two workers, one per core.
  const mpdemo::Topology restricted = mpdemo::topology_from_hwloc_xml(xml, std::vector<int>{1, 4, 5});
  EXPECT_EQ(restricted.worker_cpus, (std::vector<int>{1, 4}));
  EXPECT_EQ(restricted.default_workers(), 2u);
  // The siblings `mpdemo cores` puts two tasks on to show what SMT shares.
  EXPECT_TRUE(machine.has_smt());
  EXPECT_EQ(machine.core_cpus, (std::vector<std::vector<int>>{{0, 1}, {2, 3}, {4, 5}, {6, 7}}));
  EXPECT_EQ(restricted.core_cpus, (std::vector<std::vector<int>>{{1}, {4, 5}}));
}

TEST(Topology, WithoutSmtEveryCpuIsACore) {
  const mpdemo::Topology machine =
      mpdemo::topology_from_hwloc_xml(fixture("one-socket-four-cores.xml"), std::vector<int>{0, 1, 2, 3});
  EXPECT_EQ(machine.logical_cpus, 4u);
  EXPECT_EQ(machine.physical_cores, 4u);
  EXPECT_EQ(machine.sockets, 1u);
  EXPECT_EQ(machine.worker_cpus, (std::vector<int>{0, 1, 2, 3}));
  EXPECT_FALSE(machine.has_smt());
}

TEST(Topology, TheLastLevelCacheIsTheLargestCacheAboveTheFirstAllowedCpu) {
  // One package, two L3s (32 MiB over CPUs 0-3, 16 MiB over CPUs 4-7), each over two cores with an L2
  // of 1 MiB and two hardware threads: the cache is the one above the first allowed CPU, not the
  // largest anywhere nor the first listed.
  const std::string xml = fixture("two-l3-of-32-and-16-mib-smt2.xml");
  EXPECT_EQ(mpdemo::topology_from_hwloc_xml(xml, std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7}).last_level_cache_bytes,
            std::size_t{32} << 20);
  EXPECT_EQ(mpdemo::topology_from_hwloc_xml(xml, std::vector<int>{5, 6}).last_level_cache_bytes, std::size_t{16} << 20);
  EXPECT_EQ(mpdemo::topology_from_hwloc_xml(xml, std::vector<int>{3}).last_level_cache_bytes, std::size_t{32} << 20);
  // A machine described without caches has none to report: the store rule then never streams.
  EXPECT_EQ(mpdemo::topology_from_hwloc_xml(fixture("one-socket-four-cores.xml"), std::vector<int>{0, 1, 2, 3})
                .last_level_cache_bytes,
            0u);
}

TEST(Topology, XmlHwlocCannotReadIsAnError) {
  EXPECT_THROW((void)mpdemo::topology_from_hwloc_xml("<not a topology", std::vector<int>{0}), std::runtime_error);
}

}  // namespace

namespace {

cpu_set_t affinity_now() {
  cpu_set_t mask;
  CPU_ZERO(&mask);
  EXPECT_EQ(sched_getaffinity(0, sizeof(mask), &mask), 0);
  return mask;
}

// A caller that computes a share is moved off its workers' cores for the map only, and only when it
// is found on one of them (PoolOptions::caller_computes).
TEST(Topology, ScopedMoveOffMovesTheThreadOffBusyCpusForItsScopeOnly) {
  const cpu_set_t original = affinity_now();
  if (CPU_COUNT(&original) < 2) GTEST_SKIP() << "needs two CPUs this thread may use; it has one";
  struct Restore {
    cpu_set_t mask;
    ~Restore() { sched_setaffinity(0, sizeof(mask), &mask); }
  } restore{original};
  int busy = -1;
  for (int cpu = 0; cpu < CPU_SETSIZE && busy < 0; ++cpu) {
    if (CPU_ISSET(static_cast<std::size_t>(cpu), &original)) busy = cpu;
  }
  const int busy_cpus[] = {-1, busy};
  // Pinned to `busy`, then allowed everywhere again: the scheduler may move the thread before
  // ScopedMoveOff looks, so try until it is found still on `busy`.
  bool moved_once = false;
  for (int attempt = 0; attempt < 100 && !moved_once; ++attempt) {
    ASSERT_TRUE(mpdemo::pin_calling_thread(busy));
    cpu_set_t everything = original;
    ASSERT_EQ(sched_setaffinity(0, sizeof(everything), &everything), 0);
    const mpdemo::ScopedMoveOff moved(busy_cpus);
    if (!moved.moved()) {
      EXPECT_NE(sched_getcpu(), busy) << "on a busy CPU and not moved";
      continue;
    }
    moved_once = true;
    EXPECT_NE(sched_getcpu(), busy);
    const cpu_set_t narrowed = affinity_now();
    EXPECT_FALSE(CPU_ISSET(static_cast<std::size_t>(busy), &narrowed));
    EXPECT_EQ(CPU_COUNT(&narrowed), CPU_COUNT(&original) - 1);
    const mpdemo::ScopedMoveOff again(busy_cpus);  // already off: nothing to do
    EXPECT_FALSE(again.moved());
  }
  EXPECT_TRUE(moved_once) << "never found on the busy CPU in 100 tries";
  const cpu_set_t restored = affinity_now();
  EXPECT_TRUE(CPU_EQUAL(&restored, &original)) << "the thread's affinity was not given back";

  const int every_cpu_busy[] = {busy};
  ASSERT_TRUE(mpdemo::pin_calling_thread(busy));
  const mpdemo::ScopedMoveOff nowhere_to_go(every_cpu_busy);  // its one allowed CPU is busy: it stays
  EXPECT_FALSE(nowhere_to_go.moved());
  EXPECT_EQ(sched_getcpu(), busy);
}

}  // namespace

namespace {

TEST(HugePages, TheSelectedSettingIsTheWordInBrackets) {
  EXPECT_EQ(mpdemo::selected_setting("always within_size advise [never] deny force"), "never");
  EXPECT_EQ(mpdemo::selected_setting("[always] madvise never\n"), "always");
  EXPECT_EQ(mpdemo::selected_setting("always within_size [advise] never deny force"), "advise");
  EXPECT_EQ(mpdemo::selected_setting("always madvise never"), "");
  EXPECT_EQ(mpdemo::selected_setting(""), "");
}

// Against a brute-force count: a unit is inside when both its ends are, and the span covers exactly
// those units, from the first to the last.
TEST(HugePages, WholeUnitsInsideARangeAreTheAlignedUnitsItCovers) {
  constexpr std::size_t kUnit = 4096;
  for (const std::uintptr_t start :
       {std::uintptr_t{0x10000}, std::uintptr_t{0x10001}, std::uintptr_t{0x10fff}, std::uintptr_t{0x11000} - 16}) {
    for (const std::size_t bytes : {std::size_t{0}, std::size_t{1}, kUnit - 1, kUnit, kUnit + 1, 3 * kUnit + 17}) {
      SCOPED_TRACE(testing::Message() << "start " << start << ", bytes " << bytes);
      std::uintptr_t first = 0;
      std::size_t count = 0;
      for (std::uintptr_t unit = start / kUnit * kUnit; unit <= start + bytes; unit += kUnit) {
        if (unit >= start && unit + kUnit <= start + bytes) {
          if (count++ == 0) first = unit;
        }
      }
      const mpdemo::AlignedSpan span =
          mpdemo::whole_units_inside(reinterpret_cast<const void*>(start), bytes, kUnit);  // never dereferenced
      EXPECT_EQ(span.bytes, count * kUnit);
      if (count > 0) {
        EXPECT_EQ(reinterpret_cast<std::uintptr_t>(span.begin), first);
      }
    }
  }
}

TEST(HugePages, OfferedWhereMemoryThatAsksGetsThem) {
  const auto pages = [](const char* private_setting, const char* shared_setting) {
    return mpdemo::HugePages{.private_setting = private_setting, .shared_setting = shared_setting};
  };
  for (const char* yes : {"always", "madvise"}) EXPECT_TRUE(pages(yes, "").private_offered()) << yes;
  for (const char* no : {"never", ""}) EXPECT_FALSE(pages(no, "always").private_offered()) << no;
  for (const char* yes : {"always", "within_size", "advise", "force"}) {
    EXPECT_TRUE(pages("", yes).shared_offered()) << yes;
  }
  for (const char* no : {"never", "deny", ""}) EXPECT_FALSE(pages("always", no).shared_offered()) << no;
}

std::string bracketed_word_in(const char* path) {
  const std::string text = read_line(path);
  std::smatch match;
  return std::regex_search(text, match, std::regex(R"(\[([a-z_]+)\])")) ? match[1].str() : std::string();
}

TEST(HugePages, TheSizesOwnSettingDecidesUnlessItInherits) {
  EXPECT_TRUE(mpdemo::size_setting_decides("madvise", "never"));
  EXPECT_TRUE(mpdemo::size_setting_decides("never", "always"));
  EXPECT_TRUE(mpdemo::size_setting_decides("never", "advise"));
  EXPECT_FALSE(mpdemo::size_setting_decides("madvise", "inherit"));
  EXPECT_FALSE(mpdemo::size_setting_decides("advise", ""));      // an older kernel: no file for the size
  EXPECT_FALSE(mpdemo::size_setting_decides("deny", "always"));  // shmem_enabled's "deny" refuses every size
  EXPECT_TRUE(mpdemo::size_setting_decides("force", "always"));  // "force" reaches only the sizes that inherit
  EXPECT_FALSE(mpdemo::size_setting_decides("force", "inherit"));
  EXPECT_EQ(mpdemo::setting_file_name(mpdemo::HugePages::kPrivateSettingFile), "enabled");
  EXPECT_EQ(mpdemo::setting_file_name(mpdemo::HugePages::kSharedSizeSettingFile), "hugepages-2048kB/shmem_enabled");
}

// What the files say, read here with a regular expression, by the kernel's rule (transhuge.rst,
// mm/shmem.c): the 2 MiB size's own word where it is there and is not "inherit", unless shmem_enabled
// says "deny"; under its "force" such a size gets nothing.
TEST(HugePages, AreWhatTheKernelsSettingFilesSay) {
  const mpdemo::HugePages pages = mpdemo::huge_pages();
  const auto expected = [](const char* system_wide_file, const char* size_file) {
    const std::string system_wide = bracketed_word_in(system_wide_file);
    const std::string own = std::filesystem::exists(size_file) ? bracketed_word_in(size_file) : std::string();
    if (own.empty() || own == "inherit" || system_wide == "deny")
      return std::pair{system_wide, std::string(system_wide_file)};
    return std::pair{system_wide == "force" ? std::string("never") : own, std::string(size_file)};
  };
  const auto [private_word, private_file] =
      expected(mpdemo::HugePages::kPrivateSettingFile, mpdemo::HugePages::kPrivateSizeSettingFile);
  const auto [shared_word, shared_file] =
      expected(mpdemo::HugePages::kSharedSettingFile, mpdemo::HugePages::kSharedSizeSettingFile);
  EXPECT_EQ(pages.private_setting, private_word);
  EXPECT_EQ(pages.private_setting_file, private_file);
  EXPECT_EQ(pages.shared_setting, shared_word);
  EXPECT_EQ(pages.shared_setting_file, shared_file);
  EXPECT_EQ(mpdemo::machine_facts().huge_pages.shared_setting, pages.shared_setting);
}

TEST(MachineFacts, NameTheCpuAsCpuinfosFirstModelNameLineDoes) {
  // sed's reading: the first "model name" line's value; nothing on machines without one (most ARM).
  const auto sed = mpdemo::testing::run_program({"sed", "-n", "/^model name/{s/^[^:]*: *//p;q}", "/proc/cpuinfo"});
  ASSERT_TRUE(sed.status.success()) << sed.err;
  std::string model = sed.out;
  if (!model.empty() && model.back() == '\n') model.pop_back();
  EXPECT_EQ(mpdemo::machine_facts().cpu_model, model);
}

TEST(HugePages, ALargeFreshVectorAsksForThemAndGetsThemWhereTheKernelOffersThem) {
  const mpdemo::HugePages pages = mpdemo::huge_pages();
  if (pages.private_setting.empty()) {
    GTEST_SKIP() << "this kernel has no transparent huge pages: madvise(MADV_HUGEPAGE) fails, and nothing is marked";
  }
  constexpr std::size_t kElements = std::size_t{4} << 20;  // 32 MiB of doubles
  const std::vector<double> values = mpdemo::interruptible_vector<double>(kElements);
  // Its first page is malloc's header's too, and is left out: look in the middle.
  const double* middle = values.data() + kElements / 2;
  const mpdemo::testing::MappingFacts asked = mpdemo::testing::mapping_holding(middle);
  EXPECT_TRUE(asked.flags.contains("hg")) << "madvise(MADV_HUGEPAGE) marks the mapping 'hg' whatever the setting";

  constexpr std::size_t kSmall = std::size_t{1} << 17;  // 1 MiB
  const std::vector<double> small = mpdemo::interruptible_vector<double>(kSmall);
  EXPECT_FALSE(mpdemo::testing::mapping_holding(small.data() + kSmall / 2).flags.contains("hg"))
      << "1 MiB could not hold a huge page: its mapping is left as it is";

  if (!pages.private_offered()) {
    GTEST_SKIP() << "this kernel offers no huge pages for private memory (enabled: " << pages.private_setting
                 << "): the vector asked, and that is checked";
  }
  // The kernel may fall back to small pages when it finds no free 2 MiB of memory, so one huge page
  // of the fifteen whole ones the vector covers is what can be demanded.
  EXPECT_GE(mpdemo::testing::mapping_holding(middle).anon_huge_kb, 2048u) << "enabled: " << pages.private_setting;
}

}  // namespace
