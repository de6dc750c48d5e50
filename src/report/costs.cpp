#include "mpdemo/report/costs.hpp"

#include "mpdemo/report/format.hpp"

#include <fmt/format.h>
#include <algorithm>
#include <nlohmann/json.hpp>
#include <string_view>

namespace mpdemo::report {

namespace {

/// A row's detail by name; 0 when the row has none of that name.
double detail(const CostMeasurement& cost, std::string_view name) {
  for (const CostDetail& d : cost.details) {
    if (d.name == name) return d.value;
  }
  return 0;
}

/// The median of the row called `name` in `all`; 0 when there is none.
double median_of(std::span<const CostMeasurement> all, std::string_view name) {
  const auto found = std::find_if(all.begin(), all.end(), [name](const CostMeasurement& c) { return c.name == name; });
  return found != all.end() ? found->summary.median : 0.0;
}

int whole(double value) { return static_cast<int>(value); }

}  // namespace

std::string cost_lesson(const CostMeasurement& cost, std::span<const CostMeasurement> all) {
  const std::string median = format_duration(cost.summary.median);
  const std::string_view name = cost.name;
  if (!cost.measurable) {
    if (name == "context_switch_two_cores" || name == "spin_round_trip_processes" || name == "wake_sleeping_process") {
      return "Not measurable here: this process may use only one physical core, so two processes cannot run on "
             "two cores.";
    }
    return "Not measurable on this machine.";
  }
  if (name == "fork_small_parent") {
    return fmt::format(
        "Starting and reaping a process (fork, _exit, waitpid) costs {} with a small parent, {:.0f}x the {} of "
        "starting and joining a thread.",
        median, detail(cost, "times_thread_start"), format_duration(median_of(all, "thread_start")));
  }
  if (name == "fork_large_parent") {
    return fmt::format(
        "A parent holding {} of touched memory forks in {}, {:.0f}x slower: fork copies the page tables, so its "
        "price grows with the memory the parent holds.",
        human_bytes(detail(cost, "parent_bytes")), median, detail(cost, "times_small_parent"));
  }
  if (name == "thread_start") {
    return fmt::format(
        "Starting and joining a thread costs {}: it shares its parent's memory, so there is no address space to "
        "copy.",
        median);
  }
  if (name == "pipe_round_trip_processes") {
    return fmt::format(
        "One byte to another process and back through two pipes takes {}: a system call and a wake-up each way.",
        median);
  }
  if (name == "condvar_round_trip_threads") {
    return fmt::format(
        "Two threads hand a message there and back in {} with a mutex and a condition variable, {} two processes "
        "over pipes: either way the price is waking the other side, but between threads the message itself is "
        "never copied.",
        median, compared_with(cost.summary.median, median_of(all, "pipe_round_trip_processes")));
  }
  if (name == "futex_round_trip_processes") {
    return fmt::format(
        "Through a word of shared memory instead, each side asleep in futex_wait until the other's futex_wake, the "
        "round trip takes {}, {} the pipes: still a wake-up each way, which is most of the price.",
        median, compared_with(cost.summary.median, median_of(all, "pipe_round_trip_processes")));
  }
  if (name == "wake_sleeping_process") {
    return fmt::format(
        "Of a wake-up, the waker's own part: a futex_wake on CPU {} of a process asleep for {} on CPU {}, its "
        "core idle, returns after {}, {:.0f}% of the whole futex round trip above (two wake-ups, each side only just "
        "asleep). That is what an interrupt to an idle core costs its sender, paid before it can go on: a pool's "
        "master pays it for each worker it finds asleep.",
        whole(detail(cost, "first_cpu")), format_duration(std::chrono::duration<double>(kSleeperPause).count()),
        whole(detail(cost, "second_cpu")), median, 100 * detail(cost, "times_futex_round_trip"));
  }
  if (name == "spin_round_trip_processes") {
    return fmt::format(
        "Awake, each process polling the word on a core of its own (CPUs {} and {}), it takes {}, {} the pipes: only "
        "a cache line moves between cores, no system call, no wake-up. A pool's mailbox is this, while it spins.",
        whole(detail(cost, "first_cpu")), whole(detail(cost, "second_cpu")), median,
        compared_with(cost.summary.median, median_of(all, "pipe_round_trip_processes")));
  }
  if (name == "context_switch_same_core") {
    return fmt::format(
        "Two processes pinned to CPU {} take turns on it: each hand-off is a context switch and costs {}.",
        whole(detail(cost, "cpu")), median);
  }
  if (name == "context_switch_two_cores") {
    return fmt::format(
        "Pinned to CPUs {} and {} each process keeps a core, and a hand-off is a wake-up across cores: {}, {} "
        "taking turns on one core.",
        whole(detail(cost, "first_cpu")), whole(detail(cost, "second_cpu")), median,
        compared_with(cost.summary.median, median_of(all, "context_switch_same_core")));
  }
  if (name == "transfer_pipe") {
    return fmt::format(
        "Moving {} to another process through a pipe takes {} ({:.1f} GB/s): every byte is copied into the kernel "
        "and out again, one pipe buffer at a time, each a wake-up.",
        human_bytes(detail(cost, "bytes")), median, detail(cost, "bytes_per_second") / 1e9);
  }
  if (name == "transfer_shared_memory") {
    return fmt::format(
        "Through shared memory the same {} takes {} ({:.1f} GB/s), {} the pipe: one memcpy into pages both "
        "processes map, and nothing at all if the data is made there.",
        human_bytes(detail(cost, "bytes")), median, detail(cost, "bytes_per_second") / 1e9,
        compared_with(cost.summary.median, median_of(all, "transfer_pipe")));
  }
  if (name == "page_write_after_fork") {
    return fmt::format(
        "After fork a child wrote {} over the {} in an array and read {} back, yet the parent still read {} (but {} "
        "after a thread's write, and {} from a shared mapping the child wrote): the child wrote its own copy of the "
        "page, and each first write to a page after fork costs {}, a fault and a 4 KiB copy.",
        whole(detail(cost, "value_written")), whole(detail(cost, "value_before")), whole(detail(cost, "child_read")),
        whole(detail(cost, "parent_read_after_child")), whole(detail(cost, "parent_read_after_thread")),
        whole(detail(cost, "parent_read_after_child_shared")), median);
  }
  if (name == "page_write_owned") {
    const auto after_fork = std::find_if(all.begin(), all.end(),
                                         [](const CostMeasurement& c) { return c.name == "page_write_after_fork"; });
    return fmt::format(
        "A write to a page the process already owns costs {}, so copy-on-write makes the first write after fork "
        "{:.0f}x dearer.",
        median, after_fork != all.end() ? detail(*after_fork, "times_owned_page") : 0.0);
  }
  if (name == "page_read_after_fork") {
    return fmt::format(
        "A child just forked read one byte of each of {} pages its parent had written (they summed to {}, {} x {}) "
        "in {} a page, {:.0f}x the parent's own read, with {:.2f} page faults a page counted by the kernel: fork "
        "copied the page tables, so the kernel has nothing to do; where this costs microseconds, the likely payer is "
        "a hypervisor that keeps tables of its own for each new process (shadow paging, nested virtualization), a "
        "price every new worker pays for each page of its parent's it touches.",
        whole(detail(cost, "pages")), static_cast<long long>(detail(cost, "child_sum")), whole(detail(cost, "pages")),
        whole(detail(cost, "value_written")), median, detail(cost, "times_owned_read"),
        detail(cost, "child_faults_per_page"));
  }
  if (name == "page_read_owned") {
    return fmt::format("The parent reading the same pages, long present in its own tables, pays {} a page.", median);
  }
  return fmt::format("{}: {} ({}).", cost.name, median, cost.unit);
}

std::string costs_table(std::span<const CostMeasurement> costs) {
  std::size_t name_width = 4;
  for (const CostMeasurement& cost : costs) name_width = std::max(name_width, cost.name.size());

  std::string text = fmt::format("{:<{}}  {:>9}  {:>21}  {}\n", "cost", name_width, "median", "[min, max]", "unit");
  for (const CostMeasurement& cost : costs) {
    if (!cost.measurable) {
      text += fmt::format("{:<{}}  {:>9}  {:>21}  {}\n", cost.name, name_width, "-", "not measurable", cost.unit);
      continue;
    }
    const std::string spread =
        fmt::format("[{}, {}]", format_duration(cost.summary.min), format_duration(cost.summary.max));
    text += fmt::format("{:<{}}  {:>9}  {:>21}  {}\n", cost.name, name_width, format_duration(cost.summary.median),
                        spread, cost.unit);
  }
  if (!costs.empty()) {
    text += fmt::format("\nMedians of {} samples. What each one teaches:\n", costs.front().repeats);
    for (const CostMeasurement& cost : costs) text += fmt::format("- {}\n", cost_lesson(cost, costs));
  }
  return text;
}

std::string costs_json(std::span<const CostMeasurement> costs) {
  nlohmann::ordered_json rows = nlohmann::ordered_json::array();
  for (const CostMeasurement& cost : costs) {
    nlohmann::ordered_json details = nlohmann::ordered_json::object();
    for (const CostDetail& d : cost.details) details[d.name] = d.value;
    const auto seconds = [&cost](double value) {
      return cost.measurable ? nlohmann::ordered_json(value) : nlohmann::ordered_json();  // null
    };
    rows.push_back({{"name", cost.name},
                    {"unit", cost.unit},
                    {"measurable", cost.measurable},
                    {"median", seconds(cost.summary.median)},
                    {"min", seconds(cost.summary.min)},
                    {"max", seconds(cost.summary.max)},
                    {"repeats", cost.repeats},
                    {"lesson", cost_lesson(cost, costs)},
                    {"details", std::move(details)}});
  }
  return rows.dump(2) + '\n';
}

std::string costs_csv(std::span<const CostMeasurement> costs) {
  std::string text = "name,unit,measurable,median,min,max,repeats,lesson,details\n";
  for (const CostMeasurement& cost : costs) {
    std::string details;
    for (const CostDetail& d : cost.details)
      details += fmt::format("{}{}={}", details.empty() ? "" : ";", d.name, d.value);
    const auto seconds = [&cost](double value) { return cost.measurable ? fmt::format("{}", value) : std::string(); };
    text +=
        fmt::format("{},{},{},{},{},{},{},{},{}\n", csv_field(cost.name), csv_field(cost.unit),
                    cost.measurable ? "true" : "false", seconds(cost.summary.median), seconds(cost.summary.min),
                    seconds(cost.summary.max), cost.repeats, csv_field(cost_lesson(cost, costs)), csv_field(details));
  }
  return text;
}

}  // namespace mpdemo::report
