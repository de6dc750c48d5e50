#include "cores_command.hpp"

#include "mpdemo/lab/cores.hpp"
#include "mpdemo/report/cores.hpp"
#include "options.hpp"
#include "trace_options.hpp"

#include <fmt/format.h>
#include <memory>

namespace mpdemo::cli {

namespace {

// 64 tasks of at most 60 s: a long run, but one somebody may mean; more is a typo.
constexpr std::size_t kMaxTasks = 64;

struct CoresSettings {
  CoresOptions options;
  Format format = Format::table;
  TraceOutputs trace;
};

int run(std::ostream& out, CoresSettings& settings) {
  settings.options.trace = settings.trace.start(settings.format);
  const std::size_t cores = settings.options.cpus.value_or(2);
  const std::size_t tasks = settings.options.max_tasks != 0 ? settings.options.max_tasks : 2 * cores;
  require_process_resources(ProcessNeeds::for_pools(tasks, true, true), fmt::format("cores with {} tasks", tasks));
  const CoresResult result = run_cores(settings.options);
  switch (settings.format) {
    case Format::json:
      out << report::cores_json(result);
      break;
    case Format::csv:
      out << report::cores_csv(result);
      break;
    case Format::table:
      out << report::cores_table(result);
      break;
  }
  settings.trace.finish(out, "mpdemo cores: when each task ran, and on which CPU");
  return 0;
}

}  // namespace

Command add_cores_command(CLI::App& root) {
  CLI::App* app = root.add_subcommand(
      "cores",
      "The lesson's claims about cores, measured: two unequal tasks as threads and as processes on one core "
      "(they take turns), on two cores (side by side) and unpinned; SMT siblings against two cores; N tasks on M "
      "cores. Each claim next to its measurement and verdict");
  auto settings = std::make_shared<CoresSettings>();
  CoresOptions& options = settings->options;
  add_task_seconds_option(*app, options.task_seconds);
  app->add_option_function<std::string>(
         "--cpus", [&options](const std::string& text) { options.cpus = parse_count(text, "--cpus", 0, kMaxWorkers); },
         "use the first M physical cores this process may use (default: all); 1 shows what one core cannot "
         "do, 0 runs nothing and says why")
      ->type_name("M");
  add_count_option(*app, "--tasks", options.max_tasks, 1, kMaxTasks,
                   "run N tasks on the M cores for N = 1 .. this (default 2M)")
      ->type_name("N");
  add_format_option(*app, settings->format, true);
  settings->trace.add_options(*app);
  return {app, [settings](std::ostream& out) { return run(out, *settings); }};
}

}  // namespace mpdemo::cli
