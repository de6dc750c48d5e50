// `mpdemo report`: the page, generated for real and opened in a real browser (headless Chromium):
// it loads with no console errors and fetches nothing, every section and chart is in the rendered
// DOM, the layout holds at a phone's and a laptop's width, and screenshots of both are written under
// the build folder. Without Chromium these tests skip and say how to get it; without gnuplot the page
// is still whole and says how to get the charts.
#include "mpdemo/report/handout.hpp"
#include "mpdemo/report/topology.hpp"
#include "mpdemo/sys/huge_pages.hpp"
#include "mpdemo/sys/spawn.hpp"
#include "support/run_program.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

namespace {

using mpdemo::testing::run_mpdemo;
using mpdemo::testing::run_program;
using ::testing::HasSubstr;

namespace fs = std::filesystem;

const fs::path kOutputs = fs::path(MPDEMO_TEST_OUTPUTS) / "report-page";

std::string read(const fs::path& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

// The quickest page that still runs everything: a small lesson, short tasks, a short sweep.
const std::vector<std::string> kQuickReport{"--large-size",   "1e5",  "--repeat",      "1",
                                            "--task-seconds", "0.01", "--max-seconds", "3"};

mpdemo::testing::ProgramResult make_report(const fs::path& page, const std::vector<std::string>& extra = {}) {
  std::vector<std::string> args{"report", "-o", page.string()};
  args.insert(args.end(), kQuickReport.begin(), kQuickReport.end());
  args.insert(args.end(), extra.begin(), extra.end());
  return run_mpdemo(args, std::chrono::seconds(150));
}

// The test's own name: ctest runs test cases side by side, and each writes files of its own.
std::string test_name() { return ::testing::UnitTest::GetInstance()->current_test_info()->name(); }

// Made once per test process (ctest runs each case in its own): it takes a few seconds.
const fs::path& report_page() {
  static const fs::path page = [] {
    fs::create_directories(kOutputs);
    const fs::path path = kOutputs / (test_name() + ".html");
    fs::remove(path);
    const auto result = make_report(path);
    EXPECT_EQ(result.exit_code(), 0) << result.err;
    return path;
  }();
  return page;
}

std::string chromium() {
  const char* configured = std::getenv("MPDEMO_CHROMIUM");
  if (configured != nullptr && *configured != '\0') return configured;
  for (const char* name : {"chromium", "chromium-browser"}) {
    const auto found = run_program({"/bin/sh", "-c", std::string("command -v ") + name});
    if (found.exit_code() == 0) return name;
  }
  return "";
}

#define REQUIRE_CHROMIUM(browser)                                                                     \
  const std::string browser = chromium();                                                             \
  if (browser.empty()) {                                                                              \
    GTEST_SKIP() << "Chromium is not installed, so the page cannot be checked in a browser: "         \
                    "bash cmake/install-deps.sh --for-tests installs it (Debian's chromium package)"; \
  }

mpdemo::testing::ProgramResult headless(const std::string& browser, std::vector<std::string> extra) {
  std::vector<std::string> argv{browser,
                                "--headless=new",
                                "--no-sandbox",
                                "--disable-gpu",
                                "--hide-scrollbars",
                                "--no-first-run",
                                "--disable-extensions",
                                "--virtual-time-budget=5000"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return run_program(argv, std::chrono::seconds(60));
}

// What the page looks like to the browser once it has loaded: written into the DOM by a probe put
// first in a copy of the page (the page itself has no scripts), then read from --dump-dom. Being
// first, the probe hears every error after it: a script's, a resource that failed to load (error
// events, caught on the way down), anything written to the console as an error or a warning.
constexpr const char* kProbe = R"(<script>
const heard = [];
window.addEventListener('error', (event) => {
  heard.push(event.message || ('could not load ' + (event.target.src || event.target.href || event.target.tagName)));
}, true);
window.addEventListener('securitypolicyviolation', (event) => heard.push('blocked ' + event.blockedURI));
for (const level of ['error', 'warn']) {
  const original = console[level];
  console[level] = (...args) => { heard.push(level + ': ' + args.join(' ')); original.apply(console, args); };
}
window.addEventListener('load', () => {
  const charts = [...document.querySelectorAll('figure.chart')].map((figure) => {
    const svg = figure.querySelector('svg');
    const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
    return {id: figure.id, svg: !!svg, width: box.width, height: box.height};
  });
  const result = {
    overflow: document.documentElement.scrollWidth - window.innerWidth,
    inner_width: window.innerWidth,
    sections: [...document.querySelectorAll('section[id]')].map((section) => section.id),
    charts: charts,
    errors: heard,
    resources: performance.getEntriesByType('resource').map((entry) => entry.name),
  };
  const out = document.createElement('pre');
  out.id = 'probe';
  out.textContent = btoa(JSON.stringify(result));
  document.body.appendChild(out);
});
</script>)";

nlohmann::json probe(const std::string& browser, const fs::path& page, int width) {
  const fs::path copy = kOutputs / (test_name() + "-probed-" + std::to_string(width) + ".html");
  std::string html = read(page);
  const std::size_t head = html.find("<head>");
  if (head == std::string::npos) {
    ADD_FAILURE() << "the page has no <head>";
    return {};
  }
  html.insert(head + 6, kProbe);
  std::ofstream(copy) << html;
  const auto result = headless(browser, {"--window-size=" + std::to_string(width) + ",900", "--dump-dom",
                                         "file://" + fs::absolute(copy).string()});
  EXPECT_EQ(result.exit_code(), 0) << result.err;
  const std::smatch found = [&] {
    std::smatch match;
    std::regex_search(result.out, match, std::regex("<pre id=\"probe\">([A-Za-z0-9+/=]+)</pre>"));
    return match;
  }();
  if (found.empty()) {
    ADD_FAILURE() << "the probe did not run: " << result.out.substr(0, 300);
    return {};
  }
  const auto decoded = run_program({"/bin/sh", "-c", "printf %s '" + found[1].str() + "' | base64 -d"});
  return nlohmann::json::parse(decoded.out);
}

TEST(ReportPage, IsSelfContained) {
  const std::string html = read(report_page());
  ASSERT_FALSE(html.empty());
  EXPECT_EQ(html.find("<script"), std::string::npos) << "the page needs no scripts";
  EXPECT_EQ(html.find("<link"), std::string::npos) << "no stylesheet or font from elsewhere";
  EXPECT_FALSE(std::regex_search(html, std::regex(R"((src|href)\s*=\s*["']?(https?:|//))")))
      << "nothing is fetched from the network";
  EXPECT_FALSE(std::regex_search(html, std::regex(R"(url\(\s*['"]?(https?:|//))")));
  for (const std::string& section : mpdemo::report::handout_sections()) {
    EXPECT_THAT(html, HasSubstr("<section id=\"" + section + "\"")) << section;
  }
  // The machine's page sizes, as the machine reports them to any process of it (sys/huge_pages).
  const mpdemo::HugePages pages = mpdemo::huge_pages();
  using mpdemo::report::html_escaped;
  EXPECT_THAT(html, HasSubstr("<dt>Private memory</dt><dd>" + html_escaped(mpdemo::report::private_pages_text(pages)) +
                              "</dd>"));
  EXPECT_THAT(
      html, HasSubstr("<dt>Shared memory</dt><dd>" + html_escaped(mpdemo::report::shared_pages_text(pages)) + "</dd>"));
}

TEST(ReportPage, LoadsInChromiumWithNoConsoleErrorsAndFetchesNothing) {
  REQUIRE_CHROMIUM(browser);
  const auto loaded = headless(browser, {"--dump-dom", "file://" + fs::absolute(report_page()).string()});
  ASSERT_EQ(loaded.exit_code(), 0) << loaded.err;
  EXPECT_THAT(loaded.out, HasSubstr("Processes, threads and cores, measured"));
  const nlohmann::json seen = probe(browser, report_page(), 1366);
  ASSERT_FALSE(seen.is_null());
  EXPECT_TRUE(seen.at("errors").empty()) << "the page said: " << seen.at("errors").dump();
  EXPECT_TRUE(seen.at("resources").empty()) << "the page fetched: " << seen.at("resources").dump();
}

TEST(ReportPage, EverySectionAndChartIsRenderedAndTheLayoutHoldsOnAPhoneAndALaptop) {
  REQUIRE_CHROMIUM(browser);
  for (const int width : {390, 1366}) {
    const nlohmann::json seen = probe(browser, report_page(), width);
    ASSERT_FALSE(seen.is_null()) << width;
    EXPECT_EQ(seen.at("sections").get<std::vector<std::string>>(), mpdemo::report::handout_sections()) << width;
    EXPECT_LE(seen.at("overflow").get<double>(), 0.0) << "the page is wider than a " << width << " px window";
    std::vector<std::string> chart_ids;
    for (const auto& chart : seen.at("charts")) {
      chart_ids.push_back(chart.at("id"));
      EXPECT_TRUE(chart.at("svg").get<bool>()) << chart.at("id") << " has no picture";
      EXPECT_GT(chart.at("width").get<double>(), 100.0) << chart.at("id") << " at " << width;
      EXPECT_GT(chart.at("height").get<double>(), 50.0) << chart.at("id") << " at " << width;
      EXPECT_LE(chart.at("width").get<double>(), seen.at("inner_width").get<double>()) << chart.at("id");
    }
    EXPECT_THAT(chart_ids, ::testing::IsSupersetOf({"chart-many-tasks", "chart-timeline-processes",
                                                    "chart-timeline-threads", "chart-timeline-lesson", "chart-sweep"}));
  }
  for (const auto& [name, size] : {std::pair{"phone", "390,2400"}, std::pair{"laptop", "1366,2400"}}) {
    const fs::path shot = kOutputs / (std::string("lesson-") + name + ".png");
    fs::remove(shot);
    const auto taken = headless(browser, {std::string("--window-size=") + size, "--screenshot=" + shot.string(),
                                          "file://" + fs::absolute(report_page()).string()});
    ASSERT_EQ(taken.exit_code(), 0) << taken.err;
    ASSERT_TRUE(fs::exists(shot)) << name;
    EXPECT_GT(fs::file_size(shot), 20'000u) << name << ": a blank screenshot";
  }
}

TEST(ReportPage, WithoutGnuplotThePageIsWholeAndSaysHowToGetTheCharts) {
  const fs::path page = kOutputs / "no-gnuplot.html";
  fs::create_directories(kOutputs);
  fs::remove(page);
  ASSERT_EQ(::setenv("MPDEMO_GNUPLOT", "/nonexistent/gnuplot", 1), 0);  // inherited by the child
  const auto result = make_report(page);
  ::unsetenv("MPDEMO_GNUPLOT");
  ASSERT_EQ(result.exit_code(), 0) << result.err;
  const std::string html = read(page);
  EXPECT_THAT(html, HasSubstr("Chart not drawn"));
  EXPECT_THAT(html, HasSubstr("apt-get install gnuplot-nox"));
  EXPECT_EQ(html.find("<svg"), std::string::npos);
  for (const std::string& section : mpdemo::report::handout_sections()) {
    EXPECT_THAT(html, HasSubstr("<section id=\"" + section + "\"")) << section;
  }
}

// --start-method forkserver: the lesson's process pools are forked by a fork server, the page says so
// in the lesson's section and in each size's phase table, and its command to reproduce it asks for it.
TEST(ReportPage, WithAForkServerTheLessonSaysSoAndItsCommandAsksForIt) {
  if (!mpdemo::ForkServer::supported()) GTEST_SKIP() << "no fork server on this machine (ForkServer::supported)";
  fs::create_directories(kOutputs);
  const fs::path page = kOutputs / (test_name() + ".html");
  fs::remove(page);
  const auto result = make_report(page, {"--start-method", "forkserver"});
  ASSERT_EQ(result.exit_code(), 0) << result.err;
  const std::string html = read(page);
  const std::size_t lesson = html.find("<section id=\"lesson\"");
  const std::size_t after = html.find("</section>", lesson);
  ASSERT_NE(lesson, std::string::npos);
  const std::string section = html.substr(lesson, after - lesson);
  EXPECT_THAT(section, HasSubstr("forked by a fork server started before the arrays"));
  std::size_t tables = 0;
  for (std::size_t at = section.find("forked by a fork server (--start-method forkserver)"); at != std::string::npos;
       at = section.find("forked by a fork server (--start-method forkserver)", at + 1)) {
    ++tables;
  }
  EXPECT_EQ(tables, 2U) << "each size's phase table names the start method";
  EXPECT_THAT(html, HasSubstr("--max-seconds 3 --start-method forkserver"));
}

TEST(ReportPage, BadInputExitsWith2) {
  for (const std::vector<std::string>& args : {std::vector<std::string>{"report"},
                                               {"report", "-o", "page.txt"},
                                               {"report", "-o", "/nonexistent-dir/p.html"},
                                               {"report", "-o", "-"},
                                               {"report", "-o", "p.html", "--max-seconds", "0"},
                                               {"report", "-o", "p.html", "--large-size", "5"},
                                               {"report", "-o", "p.html", "--task-seconds", "nan"},
                                               {"report", "-o", "p.html", "--start-method", "spawn"}}) {
    const auto result = run_mpdemo(args);
    EXPECT_EQ(result.exit_code(), 2) << args.size() << ": " << result.err;
    EXPECT_FALSE(result.err.empty());
  }
}

}  // namespace
