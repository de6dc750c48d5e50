#include "costs_command.hpp"

#include "mpdemo/lab/costs.hpp"
#include "mpdemo/report/costs.hpp"
#include "options.hpp"

#include <fmt/format.h>
#include <memory>

namespace mpdemo::cli {

namespace {

// Each repeat adds about 0.25 s with the defaults: 100 keeps the command under half a minute.
constexpr std::size_t kMaxRepeat = 100;
constexpr std::size_t kMaxLargeParentMib = std::size_t{1} << 20;  // 1 TiB: a typo, not a plan

struct CostsSettings {
  CostOptions options;
  Format format = Format::table;
};

}  // namespace

Command add_costs_command(CLI::App& root) {
  CLI::App* app = root.add_subcommand(
      "costs",
      "Measure what parallel work is built from on this machine: starting a process or a thread, "
      "handing a message between them, a context switch, moving 100 MB, copy-on-write; one sentence "
      "per figure says what it teaches");
  auto settings = std::make_shared<CostsSettings>();
  CostOptions& options = settings->options;
  add_repeat_option(*app, options.repeat, kMaxRepeat);
  app->add_option_function<std::string>(
         "--large-parent-mib",
         [&options](const std::string& text) {
           options.large_parent_bytes = parse_count(text, "--large-parent-mib", 1, kMaxLargeParentMib) << 20;
         },
         fmt::format("touched memory the parent holds while it forks, in MiB, to show fork's cost grow with it "
                     "(default {})",
                     options.large_parent_bytes >> 20))
      ->type_name("M");
  add_format_option(*app, settings->format, true);

  return {app, [settings](std::ostream& out) {
            const CostOptions& chosen = settings->options;
            require_available_memory(chosen.large_parent_bytes,
                                     fmt::format("--large-parent-mib {}", chosen.large_parent_bytes >> 20));
            const std::vector<CostMeasurement> costs = measure_costs(chosen);
            switch (settings->format) {
              case Format::json:
                out << report::costs_json(costs);
                break;
              case Format::csv:
                out << report::costs_csv(costs);
                break;
              case Format::table:
                out << report::costs_table(costs);
                break;
            }
            return 0;
          }};
}

}  // namespace mpdemo::cli
