#include "mpdemo/report/verdict.hpp"

#include "mpdemo/report/format.hpp"

#include <fmt/format.h>
#include <algorithm>
#include <iterator>
#include <vector>

namespace mpdemo::report {

namespace {
double overhead(const PhaseTimes& phases) { return phases.total() - phases.compute; }
}  // namespace

std::string explain_fastest(std::span<const MethodTiming> methods) {
  std::vector<MethodTiming> by_total;
  std::copy_if(methods.begin(), methods.end(), std::back_inserter(by_total),
               [](const MethodTiming& m) { return !m.warm; });
  if (by_total.empty()) return {};
  std::sort(by_total.begin(), by_total.end(),
            [](const MethodTiming& a, const MethodTiming& b) { return a.phases.total() < b.phases.total(); });
  const MethodTiming fastest = by_total.front();
  const auto loop = std::find_if(methods.begin(), methods.end(), [](const MethodTiming& m) { return m.sequential; });

  std::string text = fmt::format("Fastest: {} ({})", fastest.name, format_duration(fastest.phases.total()));
  for (std::size_t i = 1; i < by_total.size(); ++i) {
    text += fmt::format("{} {:.3g}x faster than {}", i == 1 ? ":" : ",",
                        ratio(by_total[i].phases.total(), fastest.phases.total()), by_total[i].name);
  }
  text += ".\n";
  if (loop == methods.end()) return text;

  // Then every parallel method against the loop: what its workers gained in compute, and what
  // starting, feeding and stopping them cost.
  text += fmt::format("Why, against the loop ({} in all, {} of it computing):\n", format_duration(loop->phases.total()),
                      format_duration(loop->phases.compute));
  for (const MethodTiming& m : by_total) {
    if (m.sequential) continue;
    const PhaseTimes& p = m.phases;
    const double versus_loop = ratio(loop->phases.total(), p.total());
    text += fmt::format(
        "  {}: {} computed in {}{}; overhead {} (start {}, move in {}, collect {}, stop {}) = {:.0f}% of "
        "its time -> {}\n",
        m.name,
        fmt::format("{} worker{}{}", m.workers, m.workers == 1 ? "" : "s", m.caller_computes ? " and the caller" : ""),
        format_duration(p.compute),
        loop->phases.compute >= 1e-6
            ? fmt::format(" ({:.2f}x the loop's speed)", ratio(loop->phases.compute, p.compute))
            : std::string(),
        format_duration(overhead(p)), format_duration(p.start_workers), format_duration(p.move_in),
        format_duration(p.collect), format_duration(p.stop_workers), 100 * ratio(overhead(p), p.total()),
        versus_loop >= 1 ? fmt::format("{:.3g}x faster than the loop", versus_loop)
                         : fmt::format("{:.3g}x slower than the loop: the price of parallelism exceeds what it saves",
                                       ratio(p.total(), loop->phases.total())));
  }
  return text;
}

MethodTiming MethodTiming::of(Method method, std::string name, const PhaseTimes& phases, std::size_t workers) {
  const bool loop = machinery_of(method) == Machinery::loop;
  return {std::move(name),
          phases,
          loop,
          loop ? 1 : workers,
          is_warm(method),
          machinery_of(method) == Machinery::threads,
          machinery_of(method) == Machinery::mpi_ranks};
}

std::string explain_warm(std::span<const MethodTiming> methods) {
  const auto loop = std::find_if(methods.begin(), methods.end(), [](const MethodTiming& m) { return m.sequential; });
  if (loop == methods.end()) return {};
  std::string text;
  const MethodTiming* warm_processes = nullptr;
  const MethodTiming* warm_threads = nullptr;
  std::vector<const MethodTiming*> mpi;
  for (const MethodTiming& m : methods) {
    if (!m.warm) continue;
    if (m.mpi) {
      mpi.push_back(&m);
    } else {
      (m.threads ? warm_threads : warm_processes) = &m;
    }
    text +=
        fmt::format("{}{} {:.2f}x", text.empty() ? "" : ", ", m.name, ratio(loop->phases.compute, m.phases.total()));
  }
  if (text.empty()) return {};
  text = fmt::format(
      "Warm pools against the loop's compute alone ({}; all write into buffers that already exist): "
      "{}.\n",
      format_duration(loop->phases.compute), text);
  if (warm_processes != nullptr && warm_threads != nullptr) {
    text += fmt::format(
        "Processes vs threads, both warm: {:.2f}x (1.00x means separate address spaces cost nothing "
        "once the data lives in shared memory).\n",
        ratio(warm_threads->phases.total(), warm_processes->phases.total()));
  }
  if (warm_processes != nullptr && !mpi.empty()) {
    std::string versus;
    for (const MethodTiming* m : mpi) {
      versus += fmt::format("{}{} {:.2f}x", versus.empty() ? "" : ", ", m->name,
                            ratio(warm_processes->phases.total(), m->phases.total()));
    }
    text += fmt::format(
        "MPI ranks against the warm fork pool (above 1.00x: faster than it): {}; the gap is what MPI's copies and "
        "hand-offs cost beside forked workers that share the arrays.\n",
        versus);
  }
  return text;
}

}  // namespace mpdemo::report
