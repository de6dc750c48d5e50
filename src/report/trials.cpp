#include "mpdemo/report/trials.hpp"

#include "mpdemo/report/format.hpp"
#include "mpdemo/report/phases.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace mpdemo::report {

std::vector<MethodTiming> method_timings(const TrialResults& results, bool lesson_names) {
  std::vector<MethodTiming> timings;
  for (const MethodResult& m : results.methods) {
    const std::string name(lesson_names ? lesson_function_name(m.method) : method_name(m.method));
    const bool over_mpi = machinery_of(m.method) == Machinery::mpi_ranks;
    timings.push_back(
        MethodTiming::of(m.method, name, m.summary.median_run, over_mpi ? results.ranks : results.plan.workers));
    const Machinery machinery = machinery_of(m.method);
    timings.back().caller_computes =
        results.plan.caller_computes && (machinery == Machinery::processes || machinery == Machinery::threads);
  }
  return timings;
}

std::string run_json(const TrialResults& results) {
  const TrialPlan& plan = results.plan;
  nlohmann::json json{{"size", plan.size},
                      {"workers", plan.workers},
                      {"caller_computes", plan.caller_computes},
                      {"start_method", start_method_name(plan.fork_server != nullptr)},
                      {"chunksize", plan.chunksize},
                      {"seed", plan.seed},
                      {"unit", "seconds"},
                      {"modes", nlohmann::json::array()},
                      {"warm_pool_startup", results.warm_pool_startup},
                      {"backend", results.ranks > 0 ? "mpi" : "local"}};
  if (results.ranks > 0) {
    json["mpi"] = {{"ranks", results.ranks}, {"nodes", results.nodes}, {"startup", results.mpi_startup}};
  }
  for (const MethodResult& m : results.methods) {
    json["modes"].push_back(
        {{"name", method_name(m.method)},
         {"function", lesson_function_name(m.method)},
         {"repeats", m.summary.repeats},
         {"total", {{"median", m.summary.total.median}, {"min", m.summary.total.min}, {"max", m.summary.total.max}}},
         {"phases", phases_json(m.summary.median_run)},
         {"verified", m.summary.verified}});
  }
  return json.dump(2) + '\n';
}

std::string run_table(const TrialResults& results) {
  const TrialPlan& plan = results.plan;
  std::string text =
      fmt::format("mpdemo run: {} doubles, {} worker{}{}{}, chunksize {}, seed {}; median [min - max] of {} runs\n",
                  plan.size, plan.workers, plan.workers == 1 ? "" : "s",
                  plan.caller_computes ? " and the caller computing (--caller-computes)" : "",
                  plan.fork_server ? " forked by a fork server (--start-method forkserver)" : "", plan.chunksize,
                  plan.seed, plan.repeat);
  text += fmt::format("{:<12} {:>34}{}  {}\n", "mode", "total", phase_headings(), "verified");
  for (const MethodResult& m : results.methods) {
    const Summary& t = m.summary.total;
    text += fmt::format(
        "{:<12} {:>34}{}  {}\n", method_name(m.method),
        fmt::format("{} [{} - {}]", format_duration(t.median), format_duration(t.min), format_duration(t.max)),
        phase_cells(m.summary.median_run), m.summary.verified ? "yes" : "NO");
  }
  if (results.warm_pool_startup > 0) {
    text += fmt::format("warm-proc started its workers once, before timing: {}\n",
                        format_duration(results.warm_pool_startup));
  }
  if (results.ranks > 0) {
    text += fmt::format(
        "mpi-*: {} MPI ranks on {} node(s), started by mpirun before mpdemo ran; rank 0's MPI_Init and the pools' "
        "set-up took {} (mpirun's own start is outside: time it around the command)\n",
        results.ranks, results.nodes, format_duration(results.mpi_startup));
  }
  const std::vector<MethodTiming> timings = method_timings(results, false);
  return text + explain_fastest(timings) + explain_warm(timings);
}

std::string lesson_introduction(const Topology& topology, std::size_t workers, std::size_t repeats, bool fork_server) {
  return fmt::format(
      "mpdemo: the lesson. Square an array of random numbers (uniform in [0, 1)) with a plain loop, with a pool of\n"
      "processes and with threads, and time each.\n"
      "This machine: {} logical CPUs, {} physical cores, {} socket(s); this process may run on CPUs {}.\n"
      "Workers: {} (one per physical core, as psutil.cpu_count(logical=False)), pinned to CPUs {}{}.\n"
      "Each box shows the median of {} calls; a pool in the lesson's functions is created and stopped inside the "
      "call.\n\n",
      topology.logical_cpus, topology.physical_cores, topology.sockets, format_cpu_list(topology.allowed_cpus), workers,
      format_cpu_list(topology.worker_cpus),
      fork_server ? "; the process pools' workers forked by a fork server started before the arrays "
                    "(--start-method forkserver)"
                  : "",
      repeats);
}

std::string lesson_size_heading(std::size_t size) { return fmt::format("=== {} numbers ===\n", with_commas(size)); }

std::string lesson_warm_note(double warm_pool_startup_seconds) {
  return fmt::format(
      "Now the same map on warm pools: workers started beforehand ({} for the processes, paid "
      "once), data already in shared memory, results written in place.\n",
      format_duration(warm_pool_startup_seconds));
}

std::string lesson_summary(std::span<const MethodTiming> methods, bool verified) {
  std::string text = fmt::format("  {:<28}{}   (where the time went)\n", "", phase_headings());
  for (const MethodTiming& m : methods) text += fmt::format("  {:<28}{}\n", m.name, phase_cells(m.phases));
  text +=
      "  (A new result's pages are faulted in by whoever first writes them: the loop and threads pay that in\n"
      "  collect, zeroing the new vector; a process pool's workers pay it in compute, in parallel.)\n";
  text += verified ? "All results match the sequential answer exactly.\n"
                   : "MISMATCH: a result differs from the sequential answer.\n";
  return text + explain_fastest(methods) + explain_warm(methods) + '\n';
}

}  // namespace mpdemo::report
