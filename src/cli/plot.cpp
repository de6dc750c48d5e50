#include "plot.hpp"

#include "command.hpp"
#include "mpdemo/child_process.hpp"
#include "mpdemo/errors.hpp"
#include "mpdemo/fd.hpp"
#include "mpdemo/interrupt.hpp"

#include <cstdlib>
#include <cstring>
#include <fmt/format.h>
#include <filesystem>
#include <sstream>
#include <unistd.h>

namespace mpdemo::cli {

namespace {

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string quoted(const std::string& text) {
  std::string escaped;
  for (char c : text) {
    if (c == '"' || c == '\\') escaped += '\\';
    escaped += c;
  }
  return '"' + escaped + '"';
}

std::string script_for(const Chart& chart, const std::string& path) {
  std::ostringstream script;
  if (path == "-") {
    script << "set terminal dumb size 100,30\nset output\n";
  } else if (ends_with(path, ".svg")) {
    script << "set terminal svg size 900,560 dynamic background rgb 'white'\nset output " << quoted(path) << '\n';
  } else {
    script << "set terminal pngcairo size 900,560\nset output " << quoted(path) << '\n';
  }
  script << "set title " << quoted(chart.title) << "\nset xlabel " << quoted(chart.x_label) << "\nset ylabel "
         << quoted(chart.y_label) << "\nset logscale xy 10\nset format x '10^{%L}'\nset format y '%g'\nset key bottom right\nset grid\n";
  // A text chart has no room inside its frame for the key: put it underneath.
  if (path == "-") script << "set format x '1e%L'\nset key below\n";
  if (chart.marker_x) {
    script << fmt::format("set arrow from {0},graph 0 to {0},graph 1 nohead dashtype 2 linecolor rgb 'black'\n"
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
  script << "plot " << chart.reference_y << " title 'as fast as the loop' dashtype 2 linewidth 2 linecolor rgb 'black'";
  for (std::size_t s = 0; s < chart.series.size(); ++s) {
    script << ", $series" << s << " using 1:2 with linespoints title " << quoted(chart.series[s].title);
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

void check_plot_path(const std::string& path) {
  if (path == "-") return;
  if (!ends_with(path, ".png") && !ends_with(path, ".svg")) {
    throw UsageError(fmt::format("--plot: '{}' must end in .png or .svg (or be - for the terminal)", path));
  }
  // Checked without creating anything, so a run that fails later leaves no empty file behind.
  const std::filesystem::path file(path);
  const std::filesystem::path directory = file.has_parent_path() ? file.parent_path() : ".";
  const bool writable = std::filesystem::exists(file) ? ::access(path.c_str(), W_OK) == 0
                                                      : ::access(directory.c_str(), W_OK | X_OK) == 0;
  if (!writable) throw UsageError(fmt::format("--plot: cannot write '{}': {}", path, std::strerror(errno)));
}

void draw(const Chart& chart, const std::string& path) {
  const std::string program = gnuplot_program();
  Pipe script_pipe = Pipe::create();
  Pipe exec_failure = Pipe::create();  // close-on-exec: stays silent if exec works, carries errno if not
  const pid_t pid = ::fork();
  if (pid < 0) throw_errno("fork gnuplot");
  if (pid == 0) {
    ::dup2(script_pipe.read_end.get(), STDIN_FILENO);
    ::execlp(program.c_str(), program.c_str(), static_cast<char*>(nullptr));
    const int error = errno;
    [[maybe_unused]] const auto ignored = ::write(exec_failure.write_end.get(), &error, sizeof(error));
    ::_exit(127);
  }
  ChildProcess gnuplot(pid);
  script_pipe.read_end.reset();
  exec_failure.write_end.reset();
  int exec_error = 0;
  if (read_exact(exec_failure.read_end.get(), &exec_error, sizeof(exec_error))) {
    gnuplot.wait();
    throw UsageError(fmt::format("--plot needs gnuplot, and '{}' could not be run ({}). Install it with: "
                                 "sudo apt-get install gnuplot-nox (or run bash cmake/install-deps.sh)",
                                 program, std::strerror(exec_error)));
  }
  const std::string script = script_for(chart, path);
  {
    const ScopedSigpipeBlock no_sigpipe;
    write_all(script_pipe.write_end.get(), script.data(), script.size());
  }
  script_pipe.write_end.reset();
  const ExitStatus status = gnuplot.wait();
  throw_if_interrupted();  // Ctrl-C reached gnuplot too: report the interrupt, not gnuplot's death
  if (!status.success()) throw std::runtime_error(fmt::format("gnuplot {} while drawing {}", status.str(), path));
}

}  // namespace mpdemo::cli
