#include "report_command.hpp"

#include "mpdemo/lab/cores.hpp"
#include "mpdemo/lab/costs.hpp"
#include "mpdemo/lab/sweep.hpp"
#include "mpdemo/lab/trials.hpp"
#include "mpdemo/pool/process_pool.hpp"
#include "mpdemo/report/file.hpp"
#include "mpdemo/report/format.hpp"
#include "mpdemo/report/handout.hpp"
#include "mpdemo/report/sweep.hpp"
#include "mpdemo/sys/interrupt.hpp"
#include "mpdemo/sys/topology.hpp"
#include "options.hpp"

#include <fmt/format.h>
#include <unistd.h>
#include <ctime>
#include <iostream>
#include <memory>

namespace mpdemo::cli {

namespace {

struct ReportSettings {
  std::string output;
  std::size_t large_size = 10'000'000;
  std::size_t repeat = 3;
  double task_seconds = 0.05;
  double sweep_seconds = 30;
  bool fork_server = false;  ///< --start-method forkserver: the lesson's process pools
};

std::string now_as_text() {
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  ::localtime_r(&now, &local);
  char text[64];
  return std::strftime(text, sizeof(text), "%Y-%m-%d %H:%M %Z", &local) > 0 ? text : "";
}

// Progress on a terminal only: a redirected stderr gets no carriage returns.
class Progress {
 public:
  Progress() : shown_(::isatty(STDERR_FILENO) == 1) {}
  void step(std::size_t number, const std::string& what) const {
    if (shown_) std::cerr << fmt::format("\rreport: {}/5 {}{}", number, what, std::string(30, ' ')) << std::flush;
  }
  void sweep(std::size_t i, std::size_t count, std::size_t n, double seconds) const {
    if (shown_)
      std::cerr << fmt::format("\rreport: 4/5 a sweep: size {} ({}/{}), {:.1f} s   ", n, i + 1, count, seconds);
  }
  void done() const {
    if (shown_) std::cerr << "\r" << std::string(72, ' ') << "\r";
  }

 private:
  bool shown_;
};

int run(const ReportSettings& settings) {
  check_output_path(settings.output, "--output", {".html"});
  if (settings.output == "-") throw UsageError("--output: name an .html file; the page is not for a terminal");
  const Topology& topology = system_topology();
  const std::size_t workers = topology.default_workers();
  const std::string what = fmt::format("the report at {} numbers", report::with_commas(settings.large_size));
  require_fork_server_support(settings.fork_server);
  require_process_resources(
      ProcessNeeds::for_pools(std::max<std::size_t>(workers, 4), true, true, settings.fork_server), what);
  require_available_memory(8 * settings.large_size * sizeof(double), what);
  require_arena_capacity(4 * settings.large_size * sizeof(double), what);

  report::Handout handout;
  handout.command = fmt::format("mpdemo report -o {} --large-size {} --repeat {} --task-seconds {} --max-seconds {}{}",
                                settings.output, settings.large_size, settings.repeat, settings.task_seconds,
                                settings.sweep_seconds, settings.fork_server ? " --start-method forkserver" : "");
  handout.made_at = now_as_text();
  handout.machine = machine_facts();
  handout.topology = topology;
  const Progress progress;

  progress.step(1, "the lesson");
  // Before any array: the server stays small, and so do the forks it makes. The lesson's alone: the
  // other sections measure what this process's own forks cost.
  const std::shared_ptr<ForkServer> server = settings.fork_server ? ProcessPool::start_fork_server() : nullptr;
  Trace lesson_trace;
  const std::vector<Method> methods{Method::sequential,    Method::fresh_processes, Method::fresh_processes_copy,
                                    Method::fresh_threads, Method::warm_processes,  Method::warm_threads};
  for (const std::size_t size : {std::size_t{10}, settings.large_size}) {
    TrialPlan plan;
    plan.size = size;
    plan.repeat = settings.repeat;
    plan.methods = methods;
    plan.fork_server = server;
    if (size == settings.large_size) plan.trace = &lesson_trace;
    handout.lesson.push_back(run_trials(plan));
  }
  handout.lesson_trace = &lesson_trace;

  progress.step(2, "the claims about cores");
  CoresOptions cores;
  cores.task_seconds = settings.task_seconds;
  handout.cores = run_cores(cores);

  progress.step(3, "the costs of processes and threads");
  CostOptions costs;
  costs.repeat = std::max<std::size_t>(settings.repeat, 3);
  handout.costs = measure_costs(costs);

  progress.step(4, "a sweep");
  SweepOptions sweep;
  for (std::size_t n = 10; n <= settings.large_size; n *= 10) sweep.sizes.push_back(n);
  sweep.max_seconds = settings.sweep_seconds;
  sweep.repeat = settings.repeat;
  handout.sweep = run_sweep(sweep, [&](std::size_t i, std::size_t count, std::size_t n, double seconds) {
    progress.sweep(i, count, n, seconds);
  });

  progress.step(5, "drawing");
  const std::string page = report::handout_html(handout);
  progress.done();
  throw_if_interrupted();
  report::write_file(settings.output, page, "the report");
  std::cerr << fmt::format("report: written to {} ({}); open it in any browser, offline\n",
                           report::printable(settings.output, 200),
                           report::human_bytes(static_cast<double>(page.size())));
  bool verified = report::sweep_verified(handout.sweep);
  for (const TrialResults& results : handout.lesson) verified = verified && results.verified();
  return verified ? 0 : 1;
}

}  // namespace

Command add_report_command(CLI::App& root) {
  CLI::App* app = root.add_subcommand(
      "report",
      "Run the lesson, the claims about cores, the costs and a short sweep, and write one self-contained HTML page "
      "to hand out: each claim next to its measurement and chart, the timelines, the machine it ran on");
  auto settings = std::make_shared<ReportSettings>();
  app->add_option("-o,--output", settings->output, "the page to write (FILE.html)")->required()->type_name("FILE.html");
  add_count_option(*app, "--large-size", settings->large_size, 11, kMaxElements,
                   "the lesson's large array, and the sweep's largest size (default 10,000,000)");
  add_repeat_option(*app, settings->repeat, 100);
  add_task_seconds_option(*app, settings->task_seconds);
  add_sweep_budget_option(*app, settings->sweep_seconds);
  add_start_method_option(*app, settings->fork_server);
  return {app, [settings](std::ostream&) { return run(*settings); }};
}

}  // namespace mpdemo::cli
