#include "mpdemo/report/chart.hpp"

#include "mpdemo/report/file.hpp"
#include "mpdemo/report/format.hpp"
#include "mpdemo/sys/child_process.hpp"
#include "mpdemo/sys/detail/system_call.hpp"
#include "mpdemo/sys/errors.hpp"
#include "mpdemo/sys/fd.hpp"
#include "mpdemo/sys/interrupt.hpp"
#include "mpdemo/sys/spawn.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <unistd.h>
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <tuple>

namespace mpdemo::report {

namespace {

// A gnuplot string literal that gnuplot reads as text and nothing else. Single quotes, because
// gnuplot runs `backquoted` shell commands inside double-quoted strings but not inside single-quoted
// ones, where the only special sequence is '' for a quote. Control characters (a newline would end
// the command and start another) become spaces; paths never reach gnuplot at all (see draw).
std::string quoted(const std::string& text) {
  std::string literal = "'";
  for (char c : text) {
    if (c == '\'') {
      literal += "''";
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      literal += ' ';
    } else {
      literal += c;
    }
  }
  return literal + "'";
}

// The first lines of every script: the canvas, and the picture written to gnuplot's standard output,
// which run_gnuplot() reads (the user's path is opened by mpdemo, never named to gnuplot).
std::string canvas_for(const std::string& path, int width, int height) {
  if (path == "-") return fmt::format("set terminal dumb size {},{}\nset output\n", width / 9, height / 18);
  if (path.ends_with(".svg")) {
    return fmt::format("set terminal svg size {},{} dynamic background rgb 'white'\nset output\n", width, height);
  }
  return fmt::format("set terminal pngcairo size {},{}\nset output\n", width, height);
}

std::string script_for(const Chart& chart, const std::string& path) {
  std::ostringstream script;
  script << canvas_for(path, 900, 560);
  script << "set title " << quoted(chart.title) << "\nset xlabel " << quoted(chart.x_label) << "\nset ylabel "
         << quoted(chart.y_label) << "\nset format y '%g'\nset key bottom right\nset grid\n";
  if (chart.log_scale) {
    script << "set logscale xy 10\nset format x '10^{%L}'\n";
    if (path == "-") script << "set format x '1e%L'\n";
  } else {
    script << "set xtics 1\nset yrange [0:*]\nset key top left\n";
  }
  // A text chart has no room inside its frame for the key: put it underneath.
  if (path == "-") script << "set key below\n";
  if (chart.marker_x) {
    script << fmt::format(
        "set arrow from {0},graph 0 to {0},graph 1 nohead dashtype 2 linecolor rgb 'black'\n"
        "set label {1} at {0},graph 0.95 left offset 1,0\n",
        *chart.marker_x, quoted(chart.marker_label));
  }
  // Inline data blocks: one per series, so no temporary file is needed.
  for (std::size_t s = 0; s < chart.series.size(); ++s) {
    script << "$series" << s << " << EOD\n";
    for (std::size_t i = 0; i < chart.series[s].x.size(); ++i) {
      script << fmt::format("{} {}\n", chart.series[s].x[i], chart.series[s].y[i]);
    }
    script << "EOD\n";
  }
  script << "plot ";
  const char* separator = "";
  if (chart.reference_y) {
    script << *chart.reference_y << " title " << quoted(chart.reference_title)
           << " dashtype 2 linewidth 2 linecolor rgb 'black'";
    separator = ", ";
  }
  for (std::size_t s = 0; s < chart.series.size(); ++s, separator = ", ") {
    script << separator << "$series" << s << " using 1:2 with linespoints title " << quoted(chart.series[s].title);
  }
  script << '\n';
  return script.str();
}

// A Gantt chart: a row per track, a box per span, a colour (and a key entry) per category.
std::string script_for(const Timeline& timeline, const std::string& path) {
  std::ostringstream script;
  const int rows = static_cast<int>(timeline.rows.size());
  std::size_t longest_label = 0;
  for (const std::string& row : timeline.rows) longest_label = std::max(longest_label, row.size());
  // Room on the left for the longest row label (gnuplot's margins count characters).
  const int margin = static_cast<int>(std::clamp<std::size_t>(longest_label + 2, 10, 64));
  script << canvas_for(path, 700 + 8 * margin, std::clamp(140 + 30 * rows, 300, 1600));
  script << "set title " << quoted(timeline.title) << "\nset xlabel " << quoted(timeline.x_label)
         << "\nset grid xtics\nset key below\nset style fill solid 0.85 noborder\n";
  script << fmt::format("set yrange [-0.6:{}]\nset ytics (", rows - 0.4);
  for (int r = 0; r < rows; ++r) {
    script << (r == 0 ? "" : ", ") << quoted(timeline.rows[static_cast<std::size_t>(r)]) << ' ' << r;
  }
  script << ")\nset ytics nomirror\n";
  if (path != "-") script << "set lmargin " << margin << "\n";
  std::vector<std::string> categories;
  for (const TimelineBar& bar : timeline.bars) {
    if (std::find(categories.begin(), categories.end(), bar.category) == categories.end()) {
      categories.push_back(bar.category);
    }
  }
  for (std::size_t c = 0; c < categories.size(); ++c) {
    script << "$category" << c << " << EOD\n";
    for (const TimelineBar& bar : timeline.bars) {
      if (bar.category != categories[c]) continue;
      script << fmt::format("{} {} {}\n", (bar.begin + bar.end) / 2, bar.row, std::max(bar.end - bar.begin, 0.0) / 2);
    }
    script << "EOD\n";
  }
  if (categories.empty()) {
    script << "set label 'nothing was recorded' at graph 0.5, graph 0.5 center\nplot [0:1] NaN notitle\n";
    return script.str();
  }
  script << "plot ";
  for (std::size_t c = 0; c < categories.size(); ++c) {
    script << (c == 0 ? "" : ", ") << "$category" << c << " using 1:2:3:(0.35) with boxxyerror title "
           << quoted(categories[c]);
  }
  script << '\n';
  return script.str();
}

}  // namespace

std::string gnuplot_program() {
  const char* configured = std::getenv("MPDEMO_GNUPLOT");
  return configured != nullptr && *configured != '\0' ? configured : "gnuplot";
}

bool gnuplot_available() {
  const std::string program = gnuplot_program();
  if (program.find('/') != std::string::npos) return ::access(program.c_str(), X_OK) == 0;
  const char* path = std::getenv("PATH");
  std::istringstream directories(path != nullptr ? path : "/usr/bin:/bin");
  for (std::string directory; std::getline(directories, directory, ':');) {
    if (::access((directory.empty() ? program : directory + "/" + program).c_str(), X_OK) == 0) return true;
  }
  return false;
}

namespace {

// gnuplot's output and errors, read while its script is written, so that no pipe fills up and stops
// both sides; an interrupt kills it and throws.
struct GnuplotOutput {
  std::string picture;
  std::string errors;
};

GnuplotOutput exchange_with(ChildProcess& gnuplot, FileDescriptor script_in, FileDescriptor picture_out,
                            FileDescriptor errors_out, const std::string& script) {
  GnuplotOutput output;
  std::size_t written = 0;
  const ScopedSigpipeBlock no_sigpipe;  // gnuplot dying early must be an error, not our death
  while (picture_out.get() >= 0 || errors_out.get() >= 0) {
    pollfd fds[4] = {{picture_out.get(), POLLIN, 0},
                     {errors_out.get(), POLLIN, 0},
                     {script_in.get(), POLLOUT, 0},
                     {interrupt_wake_fd(), POLLIN, 0}};
    if (::poll(fds, 4, -1) < 0 && errno != EINTR) throw_errno("wait for gnuplot");
    if (pending_interrupt() != 0) {
      gnuplot.kill_and_wait();
      throw_if_interrupted();
    }
    if (fds[2].revents != 0) {
      const ssize_t n = ::write(script_in.get(), script.data() + written, script.size() - written);
      if (n > 0) written += static_cast<std::size_t>(n);
      if (n < 0 && errno != EINTR && errno != EAGAIN) script_in.reset();  // gnuplot stopped reading
      if (written == script.size()) script_in.reset();                    // end-of-file: gnuplot draws and leaves
    }
    for (auto [index, descriptor, into] :
         {std::tuple{0, &picture_out, &output.picture}, std::tuple{1, &errors_out, &output.errors}}) {
      if (fds[index].revents == 0) continue;
      char buffer[1 << 16];
      const ssize_t n = ::read(descriptor->get(), buffer, sizeof(buffer));
      if (n > 0) into->append(buffer, static_cast<std::size_t>(n));
      if (n == 0 || (n < 0 && errno != EINTR)) descriptor->reset();
    }
  }
  return output;
}

// Runs gnuplot on `script`, and returns the picture it wrote to its standard output.
std::string run_gnuplot(const std::string& script, const std::string& drawing) {
  const std::string program = gnuplot_program();
  Pipe script_pipe = Pipe::create();
  Pipe picture_pipe = Pipe::create();
  Pipe errors_pipe = Pipe::create();
  Pipe exec_failure = Pipe::create();  // close-on-exec: stays silent if exec works, carries errno if not
  SpawnOptions options;
  options.stdin_from = script_pipe.read_end.get();
  options.stdout_to = picture_pipe.write_end.get();
  options.stderr_to = errors_pipe.write_end.get();
  options.keep_descriptors = {exec_failure.write_end.get()};
  const int exec_failure_fd = exec_failure.write_end.get();
  ChildProcess gnuplot = spawn("gnuplot", options, [&program, exec_failure_fd]() noexcept {
    ::execlp(program.c_str(), program.c_str(), static_cast<char*>(nullptr));
    const int error = errno;
    [[maybe_unused]] const auto ignored = ::write(exec_failure_fd, &error, sizeof(error));
    return 127;
  });
  script_pipe.read_end.reset();
  picture_pipe.write_end.reset();
  errors_pipe.write_end.reset();
  exec_failure.write_end.reset();
  int exec_error = 0;
  if (read_exact(exec_failure.read_end.get(), &exec_error, sizeof(exec_error))) {
    gnuplot.wait();
    throw ToolMissing(
        fmt::format("drawing a chart needs gnuplot, and '{}' could not be run ({}). Install it with: "
                    "sudo apt-get install gnuplot-nox (or run bash cmake/install-deps.sh)",
                    program, std::strerror(exec_error)));
  }
  ::fcntl(script_pipe.write_end.get(), F_SETFL, O_NONBLOCK);
  GnuplotOutput output = exchange_with(gnuplot, std::move(script_pipe.write_end), std::move(picture_pipe.read_end),
                                       std::move(errors_pipe.read_end), script);
  const ExitStatus status = gnuplot.wait();
  throw_if_interrupted();  // Ctrl-C reached gnuplot too: report the interrupt, not gnuplot's death
  if (!status.success() || output.picture.empty()) {
    const std::string first_error =
        output.errors.substr(0, output.errors.find_first_of('\n', output.errors.find_first_not_of(" \n")));
    throw std::runtime_error(fmt::format("gnuplot {} while drawing {}{}",
                                         status.success() ? "drew nothing" : status.str(), drawing,
                                         first_error.empty() ? "" : ": " + printable(first_error, 200)));
  }
  return std::move(output.picture);
}

void deliver(const std::string& picture, const std::string& path, std::ostream& terminal) {
  if (path == "-") {
    terminal << picture;
    terminal.flush();
  } else {
    write_file(path, picture, "the chart");
  }
}

}  // namespace

void draw(const Chart& chart, const std::string& path, std::ostream& terminal) {
  deliver(run_gnuplot(script_for(chart, path), printable(path, 200)), path, terminal);
}

void draw(const Timeline& timeline, const std::string& path, std::ostream& terminal) {
  deliver(run_gnuplot(script_for(timeline, path), printable(path, 200)), path, terminal);
}

std::string svg_of(const Chart& chart) { return run_gnuplot(script_for(chart, "chart.svg"), "an SVG chart"); }

std::string svg_of(const Timeline& timeline) {
  return run_gnuplot(script_for(timeline, "timeline.svg"), "an SVG timeline");
}

}  // namespace mpdemo::report
