#include "mpdemo/report/handout.hpp"

#include "mpdemo/report/chart.hpp"
#include "mpdemo/report/cores.hpp"
#include "mpdemo/report/costs.hpp"
#include "mpdemo/report/format.hpp"
#include "mpdemo/report/sweep.hpp"
#include "mpdemo/report/topology.hpp"
#include "mpdemo/report/trace.hpp"
#include "mpdemo/report/trials.hpp"

#include <fmt/format.h>
#include <algorithm>
#include <sstream>

namespace mpdemo::report {

namespace {

// Readable at 360 px and at 1400 px, and on paper: one column, wide content scrolls inside its own box
// instead of widening the page, pictures shrink to fit.
constexpr std::string_view kStyle = R"(
:root { color-scheme: light; --ink: #1d232a; --muted: #5b6570; --line: #d8dde3; --good: #1a7f37; --bad: #b42318; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: var(--ink); background: #fff; }
main { max-width: 62rem; margin: 0 auto; padding: 1rem; }
h1 { font-size: 1.7rem; line-height: 1.2; margin: 0.5rem 0 0.25rem; }
h2 { font-size: 1.3rem; margin: 2rem 0 0.5rem; border-bottom: 1px solid var(--line); padding-bottom: 0.25rem; }
h3 { font-size: 1.05rem; margin: 1.25rem 0 0.25rem; }
p, li { max-width: 48rem; }
.muted { color: var(--muted); }
.scroll { overflow-x: auto; max-width: 100%; }
pre { font: 13px/1.35 ui-monospace, "DejaVu Sans Mono", monospace; background: #f6f8fa; padding: 0.75rem;
      border-radius: 6px; margin: 0; white-space: pre; }
table { border-collapse: collapse; font-size: 0.92rem; }
th, td { text-align: left; padding: 0.3rem 0.6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
figure { margin: 1rem 0; }
figure svg { display: block; width: 100%; height: auto; max-width: 100%; }
figcaption { font-size: 0.9rem; color: var(--muted); }
.claim { border: 1px solid var(--line); border-radius: 8px; padding: 0.75rem 1rem; margin: 0.75rem 0; }
.claim h3 { margin-top: 0; }
.verdict { font-weight: 600; }
.verdict.holds { color: var(--good); }
.verdict.does-not-hold { color: var(--bad); }
.verdict.not-measured { color: var(--muted); }
.missing { border: 1px dashed var(--line); padding: 0.75rem; color: var(--muted); }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 0.2rem 1rem; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
@media (max-width: 480px) { body { font-size: 15px; } dl.facts { grid-template-columns: 1fr; } dl.facts dd { margin-bottom: 0.4rem; } }
@media print { main { max-width: none; } .claim, figure { break-inside: avoid; } pre { white-space: pre-wrap; } }
)";

const std::vector<std::string> kSections{"machine", "lesson", "claims", "timelines", "costs", "sweep", "reproduce"};

// gnuplot's SVG is a document of its own: its XML declaration and doctype cannot stand inside HTML.
std::string inline_svg(const std::string& document) {
  const std::size_t start = document.find("<svg");
  return start == std::string::npos ? std::string() : document.substr(start);
}

template <class Drawing>
std::string figure(const Drawing& drawing, std::string_view id, std::string_view caption) {
  std::string picture;
  try {
    picture = inline_svg(svg_of(drawing));
  } catch (const ToolMissing& missing) {
    picture = fmt::format("<p class=\"missing\">Chart not drawn: {}</p>", html_escaped(missing.what()));
  } catch (const std::runtime_error& failure) {
    picture = fmt::format("<p class=\"missing\">Chart not drawn: {}</p>", html_escaped(failure.what()));
  }
  return fmt::format("<figure class=\"chart\" id=\"{}\">{}<figcaption>{}</figcaption></figure>\n", id, picture,
                     html_escaped(caption));
}

std::string preformatted(std::string_view text) {
  return fmt::format("<div class=\"scroll\"><pre>{}</pre></div>\n", html_escaped(text));
}

const char* verdict_class(ClaimFinding::Verdict verdict) {
  switch (verdict) {
    case ClaimFinding::Verdict::holds:
      return "holds";
    case ClaimFinding::Verdict::does_not_hold:
      return "does-not-hold";
    case ClaimFinding::Verdict::not_measured:
      return "not-measured";
  }
  return "";
}

std::string machine_section(const Handout& handout) {
  const Topology& t = handout.topology;
  std::ostringstream out;
  out << "<section id=\"machine\"><h2>The machine</h2><dl class=\"facts\">\n";
  auto fact = [&](std::string_view name, const std::string& value) {
    out << fmt::format("<dt>{}</dt><dd>{}</dd>\n", name, html_escaped(value));
  };
  fact("CPU", handout.machine.cpu_model.empty() ? "(not reported by the kernel)" : handout.machine.cpu_model);
  fact("CPUs",
       fmt::format("{} logical (psutil.cpu_count()), {} physical cores (cpu_count(logical=False)), {} socket(s)",
                   t.logical_cpus, t.physical_cores, t.sockets));
  fact("This run may use",
       fmt::format("CPUs {}; workers pinned to {}", format_cpu_list(t.allowed_cpus), format_cpu_list(t.worker_cpus)));
  fact("Memory", human_bytes(static_cast<double>(handout.machine.memory_bytes)));
  fact("Kernel", handout.machine.kernel);
  fact("Private memory", private_pages_text(handout.machine.huge_pages));
  fact("Shared memory", shared_pages_text(handout.machine.huge_pages));
  fact("Host", handout.machine.host);
  fact("Made", handout.made_at);
  out << "</dl></section>\n";
  return out.str();
}

std::string lesson_section(const Handout& handout) {
  std::ostringstream out;
  out << "<section id=\"lesson\"><h2>The lesson: square an array, with a loop, processes and threads</h2>\n"
         "<p>Each function squares the same random numbers and is checked against a plain loop's answer. A pool "
         "in the lesson's functions (<code>array_squared_mp</code>, <code>array_squared_threads</code>) is created "
         "and stopped inside the call, as in Python's lesson; the warm rows use workers started beforehand.";
  if (!handout.lesson.empty() && handout.lesson.front().plan.fork_server) {
    out << " The process pools' workers were forked by a fork server started before the arrays "
           "(<code>--start-method forkserver</code>, Python's start method of that name), not by this process.";
  }
  out << "</p>\n";
  for (const TrialResults& results : handout.lesson) {
    out << fmt::format("<h3>{} numbers</h3>\n", with_commas(results.plan.size));
    double loop = 0;
    for (const MethodResult& m : results.methods) {
      if (m.method == Method::sequential) loop = m.summary.median_run.total();
    }
    out << "<div class=\"scroll\"><table><thead><tr><th>function</th><th>median time</th><th>against the loop</th>"
           "<th>verified</th></tr></thead><tbody>\n";
    for (const MethodResult& m : results.methods) {
      const double seconds = m.summary.median_run.total();
      out << fmt::format(
          "<tr><td><code>{}</code></td><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>\n",
          lesson_function_name(m.method), format_duration(seconds),
          m.method == Method::sequential ? "-" : html_escaped(compared_with(seconds, loop) + " the loop"),
          m.summary.verified ? "yes" : "<strong>NO</strong>");
    }
    out << "</tbody></table></div>\n";
    out << "<details><summary>Phase by phase</summary>" << preformatted(run_table(results)) << "</details>\n";
  }
  out << "</section>\n";
  return out.str();
}

std::string claims_section(const Handout& handout) {
  std::ostringstream out;
  out << "<section id=\"claims\"><h2>The lesson's claims about cores, measured</h2>\n"
      << fmt::format(
             "<p>Two tasks of pure arithmetic, A (1x, {} alone) and B (2x), run as threads and as processes: pinned "
             "to one core, to two cores, and unpinned. Each notes the time and its CPU every ~{} of work.</p>\n",
             format_duration(handout.cores.options.task_seconds), format_duration(handout.cores.unit_seconds));
  for (const ClaimFinding& finding : cores_findings(handout.cores)) {
    out << "<div class=\"claim\">" << fmt::format("<h3>{}</h3>", html_escaped(finding.claim));
    if (!finding.measurement.empty()) out << fmt::format("<p>{}</p>", html_escaped(finding.measurement));
    out << fmt::format("<p><span class=\"verdict {}\">{}</span>{}</p></div>\n", verdict_class(finding.verdict),
                       verdict_word(finding.verdict),
                       finding.why.empty() ? "" : " &mdash; " + html_escaped(finding.why));
  }
  if (!handout.cores.many.empty()) {
    out << figure(many_tasks_chart(handout.cores), "chart-many-tasks",
                  "N equal tasks on M cores: measured, against ceil(N/M) rounds and a fair share.");
  }
  out << "<details><summary>Every run</summary>" << preformatted(cores_table(handout.cores)) << "</details>\n";
  out << "</section>\n";
  return out.str();
}

std::string timelines_section(const Handout& handout) {
  std::ostringstream out;
  out << "<section id=\"timelines\"><h2>Timelines: who ran when, and where</h2>\n"
         "<p>Each bar is a stretch a task ran without being taken off its CPU. On one core the bars of A and B "
         "alternate in slices of a few milliseconds; on two cores they run side by side.</p>\n";
  for (const Runner runner : {Runner::processes, Runner::threads}) {
    bool ran = false;
    for (const PairExperiment& pair : handout.cores.pairs) ran = ran || (pair.runner == runner && !pair.runs.empty());
    if (!ran) continue;
    out << figure(cores_timeline(handout.cores, runner), std::string("chart-timeline-") + runner_name(runner),
                  fmt::format("Two tasks as {}: one core against two cores.", runner_name(runner)));
  }
  if (handout.lesson_trace != nullptr && !handout.lesson.empty()) {
    out << figure(
        timeline_of(*handout.lesson_trace, "The lesson's largest size: every pool's workers"), "chart-timeline-lesson",
        fmt::format("Every call at {} numbers: each worker's start (fork), its chunks, its stop; the "
                    "master's phases. {}.",
                    with_commas(handout.lesson.back().plan.size), recording_cost_sentence(*handout.lesson_trace)));
  }
  out << "</section>\n";
  return out.str();
}

std::string costs_section(const Handout& handout) {
  std::ostringstream out;
  out << "<section id=\"costs\"><h2>What parallel work is built from, on this machine</h2>\n<ul>\n";
  for (const CostMeasurement& cost : handout.costs) {
    out << fmt::format("<li>{}</li>\n", html_escaped(cost_lesson(cost, handout.costs)));
  }
  out << "</ul>\n<details><summary>The figures</summary>" << preformatted(costs_table(handout.costs))
      << "</details></section>\n";
  return out.str();
}

std::string sweep_section(const Handout& handout) {
  std::ostringstream out;
  out << "<section id=\"sweep\"><h2>When does a pool pay off? A sweep over sizes</h2>\n";
  if (handout.sweep.points.empty()) {
    out << "<p class=\"missing\">Nothing was measured within the sweep's time budget.</p>\n";
  } else {
    out << figure(sweep_chart(handout.sweep), "chart-sweep",
                  "Speedup over the loop against the array's size; the crossover is where a pool starts to win.");
    out << preformatted(sweep_table(handout.sweep));
  }
  out << "</section>\n";
  return out.str();
}

}  // namespace

std::string html_escaped(std::string_view text) {
  std::string escaped;
  escaped.reserve(text.size());
  for (const char c : text) {
    switch (c) {
      case '&':
        escaped += "&amp;";
        break;
      case '<':
        escaped += "&lt;";
        break;
      case '>':
        escaped += "&gt;";
        break;
      case '"':
        escaped += "&quot;";
        break;
      case '\'':
        escaped += "&#39;";
        break;
      default:
        escaped += c;
    }
  }
  return escaped;
}

const std::vector<std::string>& handout_sections() { return kSections; }

std::string handout_html(const Handout& handout) {
  std::ostringstream out;
  out << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
         "<title>mpdemo: processes, threads and cores, measured</title>\n"
      << "<style>" << kStyle << "</style></head>\n<body><main>\n"
      << "<h1>Processes, threads and cores, measured</h1>\n"
      << fmt::format(
             "<p class=\"muted\">Made by mpdemo on {} ({}). Every figure on this page was measured in this "
             "one run, on the machine below.</p>\n",
             html_escaped(handout.machine.host), html_escaped(handout.made_at))
      << machine_section(handout) << lesson_section(handout) << claims_section(handout) << timelines_section(handout)
      << costs_section(handout) << sweep_section(handout)
      << "<section id=\"reproduce\"><h2>Reproduce it</h2>\n<p>On a Debian 12 machine with mpdemo built "
         "(see its README), this page came from:</p>\n"
      << preformatted(handout.command)
      << "<p>Open a trace of any run (<code>--trace run.json</code>) at ui.perfetto.dev to zoom into it.</p>"
         "</section>\n</main></body></html>\n";
  return out.str();
}

}  // namespace mpdemo::report
