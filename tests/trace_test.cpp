// Timelines: what the pools record into a Trace (every chunk of a map exactly once, on the worker
// that ran it, with its CPU), the trace-event JSON Perfetto reads (its required fields, checked on
// every event), and --trace / --timeline on the commands, with and without gnuplot.
#include "mpdemo/report/trace.hpp"

#include "mpdemo/lab/experiment.hpp"
#include "mpdemo/lab/kernels.hpp"
#include "mpdemo/pool/process_pool.hpp"
#include "mpdemo/pool/thread_pool.hpp"
#include "mpdemo/sys/topology.hpp"
#include "mpdemo/sys/trace.hpp"
#include "support/flags.hpp"
#include "support/run_program.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

namespace {

using mpdemo::testing::run_mpdemo;
using ::testing::HasSubstr;

double square(double x) { return x * x; }

// How many spans of each name in `category`.
std::map<std::string, int> count_spans(const mpdemo::Trace& trace, const std::string& category) {
  std::map<std::string, int> counts;
  for (const auto& span : trace.spans()) {
    if (span.category == category) ++counts[span.label()];
  }
  return counts;
}

void expect_every_chunk_once(const std::map<std::string, int>& chunks, std::size_t count) {
  ASSERT_EQ(chunks.size(), count);
  for (std::size_t k = 0; k < count; ++k) {
    const auto found = chunks.find("chunk " + std::to_string(k));
    ASSERT_NE(found, chunks.end()) << "chunk " << k << " missing";
    EXPECT_EQ(found->second, 1) << "chunk " << k;
  }
}

TEST(Trace, AProcessPoolRecordsEveryChunkOnceOnTheWorkerThatRanIt) {
  mpdemo::Trace trace;
  std::set<pid_t> workers;
  {
    mpdemo::ProcessPool pool(mpdemo::pool_options<mpdemo::ProcessPoolOptions>(2, &trace));
    for (const auto& pid : pool.worker_pids()) workers.insert(pid.value());
    std::vector<double> input(1000, 3.0);
    const auto output = pool.map(square, input, 100);  // 10 chunks
    ASSERT_EQ(output, std::vector<double>(1000, 9.0));
  }
  const auto tracks = trace.tracks();
  expect_every_chunk_once(count_spans(trace, "chunk"), 10);
  const std::vector<int>& pinned = mpdemo::system_topology().worker_cpus;
  for (const auto& span : trace.spans()) {
    EXPECT_LE(span.begin_ns, span.end_ns) << span.name;
    EXPECT_GE(span.begin_ns, trace.origin_ns()) << span.name;
    if (span.category != "chunk") continue;
    EXPECT_TRUE(workers.contains(tracks.at(span.track).pid)) << "a chunk on a track that is no worker's";
    EXPECT_TRUE(std::find(pinned.begin(), pinned.end(), span.cpu) != pinned.end())
        << "chunk ran on CPU " << span.cpu << ", which no worker is pinned to";
  }
  // Each worker's start and stop, on its own track; the pool's own on the master's (track 0).
  std::map<pid_t, std::set<std::string>> per_worker;
  for (const auto& span : trace.spans()) {
    if (span.category == "pool") per_worker[tracks.at(span.track).pid].insert(span.name);
  }
  for (pid_t pid : workers) EXPECT_EQ(per_worker[pid], (std::set<std::string>{"start", "stop"})) << pid;
  EXPECT_EQ(per_worker[::getpid()], (std::set<std::string>{"start ProcessPool", "stop ProcessPool"}));
  const auto phases = count_spans(trace, "phase");
  EXPECT_EQ(phases.at("move in"), 1);
  EXPECT_EQ(phases.at("compute"), 1);
  EXPECT_EQ(phases.at("collect"), 1);
  EXPECT_GT(trace.recording_cost(), 0.0);
}

// A worker that sleeps is woken by a doorbell, which costs the master a wake-up of its own (tens of
// microseconds on a VM): the timeline shows each ring on the master's track.
TEST(Trace, TheMasterRingingASleepingWorkersDoorbellIsOnItsOwnTrack) {
  mpdemo::Trace trace;
  const auto doorbells = [&trace] {
    std::vector<mpdemo::TraceSpan> rung;
    for (const auto& span : trace.spans()) {
      if (span.category == "doorbell") rung.push_back(span);
    }
    return rung;
  };
  {
    auto options = mpdemo::pool_options<mpdemo::ProcessPoolOptions>(1, &trace);
    options.spin = std::chrono::microseconds(0);  // a worker with no task sleeps at once
    mpdemo::ProcessPool pool(options);
    const std::vector<double> input(100, 3.0);
    // A task to a worker asleep rings. A busy machine may not have let it fall asleep yet after 20 ms:
    // then the map rings nothing, and another is tried.
    for (int map = 0; map < 100 && doorbells().size() < 2; ++map) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      ASSERT_EQ(pool.map(square, input, 100), std::vector<double>(100, 9.0));
    }
  }
  const auto tracks = trace.tracks();
  const std::vector<mpdemo::TraceSpan> rung = doorbells();
  EXPECT_GE(rung.size(), 2U);
  for (const auto& span : rung) {
    EXPECT_EQ(tracks.at(span.track).pid, ::getpid()) << "a doorbell rung elsewhere than in the master";
    EXPECT_LE(span.begin_ns, span.end_ns);
  }
}

// A worker woken on the master's own CPU takes that CPU, and the master may wait milliseconds to get
// it back: rung first, it would hold up the other doorbells. So the master, pinned in turn to each
// worker's CPU, rings that worker last.
TEST(Trace, ASleepingTeamIsRungWithTheWorkerOnTheMastersCpuLast) {
  const mpdemo::Topology& topology = mpdemo::system_topology();
  if (topology.worker_cpus.size() < 2) GTEST_SKIP() << "needs two CPUs for two pinned workers";
  struct Unpin {
    ~Unpin() { mpdemo::pin_calling_thread(mpdemo::system_topology().allowed_cpus); }
  } unpin;
  mpdemo::Trace trace;
  auto options = mpdemo::pool_options<mpdemo::ProcessPoolOptions>(2, &trace);
  options.spin = std::chrono::microseconds(0);  // a worker with no task sleeps at once
  mpdemo::ProcessPool pool(options);
  const std::vector<double> input{2.0, 3.0};
  std::array<int, 2> judged{};  // maps that rang both workers, by the worker on the master's CPU
  for (int map = 0; map < 200 && (judged[0] < 3 || judged[1] < 3); ++map) {
    const std::size_t here = static_cast<std::size_t>(map % 2);
    ASSERT_TRUE(mpdemo::pin_calling_thread(topology.worker_cpu(here)));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // both workers asleep, most likely
    const std::size_t before = trace.spans().size();
    ASSERT_EQ(pool.map(square, input, 1), (std::vector<double>{4.0, 9.0}));
    std::vector<mpdemo::TraceSpan> rung;
    const std::vector<mpdemo::TraceSpan> spans = trace.spans();
    for (std::size_t i = before; i < spans.size(); ++i) {
      if (spans[i].category == "doorbell") rung.push_back(spans[i]);
    }
    if (rung.size() != 2) continue;  // one was still awake (a busy machine): this map says nothing
    ++judged[here];
    EXPECT_EQ(rung[0].number, static_cast<std::int64_t>(1 - here)) << "map " << map;
    EXPECT_EQ(rung[1].number, static_cast<std::int64_t>(here)) << "map " << map << ": not rung last";
    EXPECT_EQ(rung[1].cpu, topology.worker_cpu(here));
  }
  EXPECT_GE(judged[0], 3);
  EXPECT_GE(judged[1], 3);
}

/// Element 0 takes a while, so that the master, which never spins here, sleeps when its answer
/// comes. Element 1, which the worker already holds (a map hands it two tasks), waits until that
/// answer is in the master's timeline (20 s at most).
struct HeldUntilTheMasterHasElementZero {
  long* gate;
  double operator()(double x) const {
    if (x == 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (x == 1) mpdemo::testing::wait_for_flag(gate, std::chrono::seconds(20));
    return x;
  }
};

// A worker that has answered looks whether the master sleeps, and rings it, before it begins the
// task it already holds, not after: that task may be long. The master records a chunk in the
// timeline as it reads the answer, and a thread of the test opens the gate of element 1 once chunk 0
// is there: without that look the master would sleep through element 1, which waits 20 s.
TEST(Trace, AWorkersAnswerWakesASleepingMasterBeforeTheWorkerBeginsTheTaskItHolds) {
  mpdemo::Trace trace;
  auto options = mpdemo::pool_options<mpdemo::ProcessPoolOptions>(1, &trace);
  options.spin = std::chrono::microseconds(0);  // every wait sleeps at once, the master's too
  mpdemo::ProcessPool pool(options);
  mpdemo::SharedArray<long> gate(mpdemo::SharedArena::process_default(), 1);
  gate[0] = 0;
  const std::jthread opener([&trace, &gate] {
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < give_up) {
      const std::vector<mpdemo::TraceSpan> spans = trace.spans();
      if (std::any_of(spans.begin(), spans.end(),
                      [](const auto& span) { return span.category == "chunk" && span.number == 0; })) {
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    mpdemo::testing::raise_flag(gate.data());
  });
  const auto start = std::chrono::steady_clock::now();
  const std::vector<double> output =
      pool.map(HeldUntilTheMasterHasElementZero{gate.data()}, std::vector<double>{0, 1}, 1);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(output, (std::vector<double>{0, 1}));
  EXPECT_LT(took, std::chrono::seconds(10)) << "the master heard of element 0 only once element 1 was done";
}

// Squares, taking its time over negative numbers: a way to hold one worker up.
double square_slowly_if_negative(double x) {
  if (x < 0) std::this_thread::sleep_for(std::chrono::milliseconds(300));
  return x * x;
}

// A traced pool of two workers maps the same 800 elements in 8 chunks of 100 (worker 0's region is
// chunks 0-3, worker 1's 4-7) once per entry of `first_elements`: the input's first element, the
// others 3.0. Checks every result; returns the workers' pids.
std::vector<pid_t> map_in_eight_chunks(mpdemo::Trace& trace, const std::vector<double>& first_elements) {
  std::vector<pid_t> workers;
  mpdemo::ProcessPool pool(mpdemo::pool_options<mpdemo::ProcessPoolOptions>(2, &trace));
  for (const auto& pid : pool.worker_pids()) workers.push_back(pid.value());
  auto input = pool.make_shared_array<double>(800);
  auto output = pool.make_shared_array<double>(800);
  std::fill(input.begin(), input.end(), 3.0);
  for (double first : first_elements) {
    input[0] = first;
    pool.map_into(square_slowly_if_negative, input, output, 100);
    EXPECT_TRUE(std::all_of(output.begin(), output.end(), [](double v) { return v == 9.0; }));
  }
  return workers;
}

/// The chunk numbers each worker ran in each map, in the order run: [map][worker pid]. Maps of
/// `chunks_per_map` chunks each, one ending before the next begins.
std::vector<std::map<pid_t, std::vector<std::int64_t>>> chunks_by_map(const mpdemo::Trace& trace,
                                                                      std::size_t chunks_per_map) {
  const auto tracks = trace.tracks();
  std::vector<mpdemo::TraceSpan> chunks;
  for (const auto& span : trace.spans()) {
    if (span.category == "chunk") chunks.push_back(span);
  }
  std::sort(chunks.begin(), chunks.end(), [](const auto& a, const auto& b) { return a.begin_ns < b.begin_ns; });
  std::vector<std::map<pid_t, std::vector<std::int64_t>>> ran(chunks.size() / chunks_per_map);
  for (std::size_t i = 0; i < ran.size() * chunks_per_map; ++i)
    ran[i / chunks_per_map][tracks.at(chunks[i].track).pid].push_back(chunks[i].number);
  return ran;
}

TEST(Trace, AWarmProcessPoolStartsEveryMapOverTheSameArraysFromTheSameRegions) {
  // A worker's first touch of a shared page is a page fault in its own page tables: a pool that maps
  // the same arrays again must hand each worker the same chunks again, not whichever is next.
  mpdemo::Trace trace;
  const std::vector<pid_t> workers = map_in_eight_chunks(trace, {3.0, 3.0, 3.0});
  const auto ran = chunks_by_map(trace, 8);
  ASSERT_EQ(ran.size(), 3u);
  for (std::size_t m = 0; m < ran.size(); ++m) {
    // Each worker is handed the front of its own region at submission, whatever the timing.
    ASSERT_FALSE(ran[m].at(workers[0]).empty()) << "map " << m;
    ASSERT_FALSE(ran[m].at(workers[1]).empty()) << "map " << m;
    EXPECT_EQ(ran[m].at(workers[0]).front(), 0) << "map " << m;
    EXPECT_EQ(ran[m].at(workers[1]).front(), 4) << "map " << m;
  }
}

// Squares; takes 100 us over a value this process has not squared before, a stand-in, made certain,
// for the page faults of a chunk new to a process, and 300 ms over a negative one.
double square_slowly_the_first_time(double x) {
  static std::array<bool, 4096> seen{};  // per process: each worker's copy starts as the master's, all false
  const auto value = static_cast<std::size_t>(std::abs(x)) % seen.size();
  if (!seen[value]) {
    seen[value] = true;
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  if (x < 0) std::this_thread::sleep_for(std::chrono::milliseconds(300));
  return x * x;
}

/// Of two maps (`ran`, from chunks_by_map), that `thief`, whose own region is chunks [own_begin,
/// own_end), ran in the second map no chunk of another region that it had not run in the first.
void expect_no_steal_new_to(const std::vector<std::map<pid_t, std::vector<std::int64_t>>>& ran, pid_t thief,
                            std::int64_t own_begin, std::int64_t own_end) {
  ASSERT_EQ(ran.size(), 2u);
  const auto ran_in = [&](std::size_t map) {
    const auto found = ran[map].find(thief);
    return found == ran[map].end() ? std::vector<std::int64_t>{} : found->second;
  };
  const std::vector<std::int64_t> before = ran_in(0);
  for (const std::int64_t chunk : ran_in(1)) {
    if (chunk >= own_begin && chunk < own_end) continue;  // its own, new or not (another may have had it)
    EXPECT_NE(std::find(before.begin(), before.end(), chunk), before.end())
        << "pid " << thief << " stole chunk " << chunk << ", new to its process, from an owner that was still at work";
  }
}

/// Two maps of square_slowly_the_first_time over 1, 2, ... `elements` in chunks of 100 on two
/// workers, into `trace`: in the first every chunk is new to whoever runs it (10 ms each), and is
/// measured so; the second holds worker 0 up 300 ms on chunk 0. Checks both maps' results; returns the
/// workers' pids.
std::vector<pid_t> map_twice_holding_worker_zero(mpdemo::Trace& trace, std::size_t elements) {
  std::vector<pid_t> workers;
  mpdemo::ProcessPool pool(mpdemo::pool_options<mpdemo::ProcessPoolOptions>(2, &trace));
  for (const auto& pid : pool.worker_pids()) workers.push_back(pid.value());
  auto input = pool.make_shared_array<double>(elements);
  auto output = pool.make_shared_array<double>(elements);
  for (std::size_t i = 0; i < input.size(); ++i) input[i] = static_cast<double>(i + 1);
  for (const bool hold : {false, true}) {
    if (hold) input[0] = -1.0;
    pool.map_into(square_slowly_the_first_time, input, output, 100);
    std::size_t wrong = 0;
    for (std::size_t i = 0; i < input.size(); ++i) {
      if (output[i] != input[i] * input[i]) ++wrong;
    }
    EXPECT_EQ(wrong, 0u) << (hold ? "the second map" : "the first map");
  }
  return workers;
}

TEST(Trace, AWorkerStealsNoChunkNewToItsProcessThatCostsMoreThanWaitingForItsOwner) {
  // Eight chunks. In the second map worker 1 runs its own region (known: us) and may then steal what
  // it ran before, but not chunks 2-3 if they are new to it: 10 ms each, where worker 0 reaches them
  // in microseconds once it is free.
  mpdemo::Trace trace;
  const std::vector<pid_t> workers = map_twice_holding_worker_zero(trace, 800);
  expect_no_steal_new_to(chunks_by_map(trace, 8), workers[1], 4, 8);
}

TEST(Trace, AnIdleWorkerIsHandedNoHeldTaskNewToItsProcessThatCostsMoreThanWaitingForItsOwner) {
  // Four chunks over two workers, each handed both chunks of its region at once. In the second map
  // worker 0 is held up on chunk 0, with chunk 1 behind it, not begun; worker 1 ends its own region
  // (known to it: microseconds) and is idle with nothing left to hand out. Chunk 1, if new to it,
  // would take it 10 ms where its owner reaches it once free: it is not taken back for worker 1.
  mpdemo::Trace trace;
  const std::vector<pid_t> workers = map_twice_holding_worker_zero(trace, 400);
  expect_no_steal_new_to(chunks_by_map(trace, 4), workers[1], 2, 4);
}

TEST(Trace, AWorkerDoesNotStealFromACallerComputingItsShareWhatIsNewToItsProcess) {
  // One worker and the caller: the worker's region is chunks 0-15, the caller's 16-31. In the second
  // map the caller's values are new to its process (2.5 ms a chunk) and the worker's known to it
  // (microseconds): a steal from the caller's region would cost the worker more than the caller
  // takes. The map ends well, the caller finishing its own region (the pool must not fail a map for
  // "no worker is left to take the pool's work" while what is left is the caller's).
  mpdemo::Trace trace;
  mpdemo::ProcessPool pool(
      mpdemo::pool_options<mpdemo::ProcessPoolOptions>(1, &trace, {.caller_computes = true, .fork_server = nullptr}));
  const pid_t worker = pool.worker_pids().front().value();
  auto input = pool.make_shared_array<double>(800);
  auto output = pool.make_shared_array<double>(800);
  for (std::size_t i = 0; i < input.size(); ++i) input[i] = static_cast<double>(i + 1);
  pool.map_into(square_slowly_the_first_time, input, output, 25);
  for (std::size_t i = 400; i < input.size(); ++i) input[i] += 2000.0;
  ASSERT_NO_THROW(pool.map_into(square_slowly_the_first_time, input, output, 25));
  for (std::size_t i = 0; i < input.size(); ++i) ASSERT_EQ(output[i], input[i] * input[i]) << i;
  expect_no_steal_new_to(chunks_by_map(trace, 32), worker, 0, 16);
}

TEST(Trace, AThreadPoolRecordsEveryChunkOnceOnItsThreads) {
  mpdemo::Trace trace;
  {
    mpdemo::PoolOptions options;
    options.workers = 2;
    options.trace = &trace;
    mpdemo::ThreadPool pool(options);
    std::vector<double> input(700, 2.0);
    EXPECT_EQ(pool.map(square, input, 100), std::vector<double>(700, 4.0));  // 7 chunks
  }
  expect_every_chunk_once(count_spans(trace, "chunk"), 7);
  const auto tracks = trace.tracks();
  for (const auto& span : trace.spans()) {
    if (span.category != "chunk") continue;
    EXPECT_EQ(tracks.at(span.track).pid, ::getpid());
    EXPECT_NE(tracks.at(span.track).tid, tracks.at(0).tid) << "a chunk on the master's track";
    EXPECT_THAT(tracks.at(span.track).name, HasSubstr("ThreadPool thread"));
  }
}

TEST(Trace, APoolGivenNoTraceRecordsNothingInAnother) {
  // Two pools alive at once, one traced: the untraced pool's maps must not reach the trace.
  mpdemo::Trace trace;
  mpdemo::ProcessPoolOptions traced_options;
  traced_options.workers = 2;
  traced_options.trace = &trace;
  mpdemo::ProcessPool traced(traced_options);
  mpdemo::ProcessPool untraced(2);
  std::vector<double> input(100, 1.0);
  (void)untraced.map(square, input, 10);  // 10 chunks, none recorded
  (void)traced.map(square, input, 50);    // 2 chunks, recorded
  expect_every_chunk_once(count_spans(trace, "chunk"), 2);
  std::set<pid_t> untraced_pids;
  for (const auto& pid : untraced.worker_pids()) untraced_pids.insert(pid.value());
  for (const auto& track : trace.tracks()) EXPECT_FALSE(untraced_pids.contains(track.pid)) << track.name;
}

TEST(Trace, AThreadsOwnTrackIsLookedUpAgainInANewTraceMadeWhereAnOldOneWas) {
  std::optional<mpdemo::Trace> trace;
  trace.emplace();  // made by this thread: its track is the first
  EXPECT_EQ(trace->this_thread(), 0u);
  trace.reset();
  std::thread([&] { trace.emplace(); }).join();  // same address, made by another thread: its track is the first
  const std::size_t mine = trace->this_thread();
  EXPECT_EQ(trace->tracks().at(mine).tid, mpdemo::current_tid()) << "a track remembered from the old trace";
}

// The trace-event format's required fields (the "JSON Object Format" of Google's spec).
void expect_valid_trace_events(const nlohmann::json& json) {
  ASSERT_TRUE(json.contains("traceEvents"));
  ASSERT_TRUE(json.at("traceEvents").is_array());
  std::set<std::pair<int, int>> named_threads;
  for (const auto& event : json.at("traceEvents")) {
    ASSERT_TRUE(event.at("name").is_string());
    ASSERT_TRUE(event.at("ph").is_string());
    ASSERT_TRUE(event.at("pid").is_number_integer());
    ASSERT_TRUE(event.at("tid").is_number_integer());
    const std::string phase = event.at("ph");
    if (phase == "M") {
      EXPECT_TRUE(event.at("args").at("name").is_string());
      if (event.at("name") == "thread_name")
        named_threads.insert({event.at("pid").get<int>(), event.at("tid").get<int>()});
      continue;
    }
    ASSERT_EQ(phase, "X") << event.dump();
    EXPECT_TRUE(event.at("cat").is_string());
    EXPECT_GE(event.at("ts").get<double>(), 0.0);
    EXPECT_GE(event.at("dur").get<double>(), 0.0);
  }
  for (const auto& event : json.at("traceEvents")) {
    if (event.at("ph") == "X") {
      EXPECT_TRUE(named_threads.contains({event.at("pid").get<int>(), event.at("tid").get<int>()}))
          << "an unnamed track: " << event.dump();
    }
  }
}

TEST(Trace, JsonHasTheTraceEventFormatsRequiredFields) {
  mpdemo::Trace trace;
  {
    mpdemo::ProcessPool pool(mpdemo::pool_options<mpdemo::ProcessPoolOptions>(2, &trace));
    std::vector<double> input(50, 1.0);
    (void)pool.map(square, input, 10);
  }
  const nlohmann::json json = mpdemo::report::trace_json(trace);
  expect_valid_trace_events(json);
  EXPECT_EQ(json.at("otherData").at("spans").get<std::size_t>(), trace.spans().size());
  // Through a real file, as --trace writes it.
  const auto path = std::filesystem::temp_directory_path() / "mpdemo-trace-test.json";
  std::ostringstream unused;
  mpdemo::report::write_trace(trace, path.string(), unused);
  std::ifstream file(path);
  EXPECT_EQ(nlohmann::json::parse(file), json);
  std::filesystem::remove(path);
}

TEST(Trace, TimelineHasARowPerTrackWithSpans) {
  mpdemo::Trace trace;
  const std::size_t worker = trace.track(12345, 12345, "worker");
  trace.track(999, 999, "never used");
  trace.add(worker, "chunk 0", "chunk", trace.origin_ns() + 1'000'000, trace.origin_ns() + 3'000'000, 1);
  trace.add(0, "compute", "phase", trace.origin_ns(), trace.origin_ns() + 4'000'000, 0);
  const mpdemo::report::Timeline timeline = mpdemo::report::timeline_of(trace, "t");
  ASSERT_EQ(timeline.rows.size(), 2u) << "a track with nothing recorded gets no row";
  ASSERT_EQ(timeline.bars.size(), 2u);
  EXPECT_DOUBLE_EQ(timeline.bars[0].begin, 0.001);
  EXPECT_DOUBLE_EQ(timeline.bars[0].end, 0.003);
  EXPECT_EQ(timeline.rows[timeline.bars[0].row], "worker");
}

// ---- the commands ---------------------------------------------------------------------------------

nlohmann::json read_json(const std::filesystem::path& path) {
  std::ifstream file(path);
  return nlohmann::json::parse(file);
}

std::filesystem::path scratch(const std::string& name) {
  const auto path = std::filesystem::temp_directory_path() / name;
  std::filesystem::remove(path);
  return path;
}

TEST(TraceCommand, RunRecordsEveryChunkOfEveryMapExactlyOnce) {
  const auto path = scratch("mpdemo-run-trace.json");
  // A warm pool maps kWarmUpMaps times to warm up, then once timed.
  const auto result = run_mpdemo({"run", "--size", "1000", "--chunksize", "100", "--mode", "warm-proc", "--repeat", "1",
                                  "--workers", "2", "--trace", path.string()});
  ASSERT_EQ(result.exit_code(), 0) << result.err;
  EXPECT_THAT(result.err, HasSubstr("recording them took"));
  const nlohmann::json json = read_json(path);
  expect_valid_trace_events(json);
  std::map<std::string, int> chunks;
  std::set<int> worker_pids;
  for (const auto& event : json.at("traceEvents")) {
    if (event.at("ph") != "X" || event.at("cat") != "chunk") continue;
    ++chunks[event.at("name")];
    worker_pids.insert(event.at("pid").get<int>());
    EXPECT_TRUE(event.at("args").contains("cpu"));
  }
  ASSERT_EQ(chunks.size(), 10u);
  for (const auto& [name, count] : chunks) EXPECT_EQ(count, mpdemo::kWarmUpMaps + 1) << name;
  EXPECT_EQ(worker_pids.size(), 2u);
  std::filesystem::remove(path);
}

TEST(TraceCommand, TheCallersOwnChunksAreOnTheTraceToo) {
  // --caller-computes: one worker and the caller share each map; every chunk is still recorded exactly
  // once per map, and the caller's own chunks are on the caller's (the master's) process.
  const auto path = scratch("mpdemo-caller-trace.json");
  pid_t master = 0;
  const auto result = run_mpdemo({"run", "--size", "1000", "--chunksize", "100", "--mode", "warm-proc", "--repeat", "1",
                                  "--workers", "1", "--caller-computes", "--trace", path.string()},
                                 std::chrono::seconds(60), [&](pid_t pid) { master = pid; });
  ASSERT_EQ(result.exit_code(), 0) << result.err;
  const nlohmann::json json = read_json(path);
  expect_valid_trace_events(json);
  std::map<std::string, int> chunks;
  int callers = 0;
  for (const auto& event : json.at("traceEvents")) {
    if (event.at("ph") != "X" || event.at("cat") != "chunk") continue;
    ++chunks[event.at("name")];
    if (event.at("pid").get<pid_t>() == master) ++callers;
  }
  ASSERT_EQ(chunks.size(), 10u);
  for (const auto& [name, count] : chunks) EXPECT_EQ(count, mpdemo::kWarmUpMaps + 1) << name;
  EXPECT_GT(callers, 0) << "the caller computed none of " << 10 * (mpdemo::kWarmUpMaps + 1) << " chunks";
  std::filesystem::remove(path);
}

TEST(TraceCommand, LessonCoresAndSweepWriteValidTraces) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"--large-size", "1000"},
        {"cores", "--task-seconds", "0.005", "--tasks", "1"},
        {"sweep", "--sizes", "10,100", "--repeat", "1", "--workers", "2", "--data", "shared"}}) {
    const auto path = scratch("mpdemo-command-trace.json");
    std::vector<std::string> traced = args;
    traced.insert(traced.end(), {"--trace", path.string()});
    const auto result = run_mpdemo(traced);
    ASSERT_EQ(result.exit_code(), 0) << args.front() << ": " << result.err;
    const nlohmann::json json = read_json(path);
    expect_valid_trace_events(json);
    EXPECT_GT(json.at("otherData").at("spans").get<int>(), 4) << args.front();
    std::filesystem::remove(path);
  }
}

TEST(TraceCommand, TimelineIsDrawnToAFileAndToTheTerminal) {
  const auto path = scratch("mpdemo-timeline.svg");
  const std::vector<std::string> run{"run", "--size", "1000", "--mode", "proc", "--repeat", "1", "--workers", "2"};
  std::vector<std::string> to_file = run;
  to_file.insert(to_file.end(), {"--timeline", path.string()});
  const auto drawn = run_mpdemo(to_file);
  ASSERT_EQ(drawn.exit_code(), 0) << drawn.err;
  std::ifstream file(path);
  std::stringstream svg;
  svg << file.rdbuf();
  EXPECT_THAT(svg.str(), HasSubstr("<svg"));
  EXPECT_THAT(svg.str(), HasSubstr("ProcessPool worker"));
  std::filesystem::remove(path);
  std::vector<std::string> to_terminal = run;
  to_terminal.insert(to_terminal.end(), {"--timeline", "-"});
  const auto shown = run_mpdemo(to_terminal);
  ASSERT_EQ(shown.exit_code(), 0) << shown.err;
  EXPECT_THAT(shown.out, HasSubstr("who ran what"));
  EXPECT_THAT(shown.out, HasSubstr("master"));
}

TEST(TraceCommand, WithoutGnuplotTheTraceIsStillWrittenAndTheTimelineSaysHowToGetIt) {
  const auto trace = scratch("mpdemo-no-gnuplot-trace.json");
  const auto picture = scratch("mpdemo-no-gnuplot-timeline.png");
  ASSERT_EQ(::setenv("MPDEMO_GNUPLOT", "/nonexistent/gnuplot", 1), 0);  // inherited by the child
  const auto result = run_mpdemo({"run", "--size", "1000", "--mode", "thread", "--repeat", "1", "--trace",
                                  trace.string(), "--timeline", picture.string()});
  ::unsetenv("MPDEMO_GNUPLOT");
  EXPECT_EQ(result.exit_code(), 2);
  EXPECT_THAT(result.err, HasSubstr("apt-get install gnuplot-nox"));
  EXPECT_THAT(result.out, HasSubstr("thread")) << "the results still print";
  EXPECT_TRUE(std::filesystem::exists(trace)) << "the trace needs no gnuplot";
  EXPECT_FALSE(std::filesystem::exists(picture));
  std::filesystem::remove(trace);
}

}  // namespace
