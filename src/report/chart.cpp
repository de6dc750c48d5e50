#include "mpdemo/report/chart.hpp"

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

// The script writes the picture to gnuplot's standard output, which draw() reads: the user's path
// is opened by mpdemo, never named to gnuplot.
std::string script_for(const Chart& chart, const std::string& path) {
  std::ostringstream script;
  if (path == "-") {
    script << "set terminal dumb size 100,30\n";
  } else if (path.ends_with(".svg")) {
    script << "set terminal svg size 900,560 dynamic background rgb 'white'\n";
  } else {
    script << "set terminal pngcairo size 900,560\n";
  }
  script << "set output\n";
  script << "set title " << quoted(chart.title) << "\nset xlabel " << quoted(chart.x_label) << "\nset ylabel "
         << quoted(chart.y_label)
         << "\nset logscale xy 10\nset format x '10^{%L}'\nset format y '%g'\nset key bottom right\nset grid\n";
  // A text chart has no room inside its frame for the key: put it underneath.
  if (path == "-") script << "set format x '1e%L'\nset key below\n";
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

void write_file(const std::string& path, const std::string& bytes) {
  FileDescriptor file = FileDescriptor::adopt(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666));
  if (file.get() < 0) throw_errno(fmt::format("open {} for the plot", printable(path, 200)));
  write_all(file.get(), bytes.data(), bytes.size(), fmt::format("write the plot to {}", printable(path, 200)));
  if (::close(file.release()) != 0) throw_errno(fmt::format("write the plot to {}", printable(path, 200)));
}

}  // namespace

void draw(const Chart& chart, const std::string& path, std::ostream& terminal) {
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
  const GnuplotOutput output =
      exchange_with(gnuplot, std::move(script_pipe.write_end), std::move(picture_pipe.read_end),
                    std::move(errors_pipe.read_end), script_for(chart, path));
  const ExitStatus status = gnuplot.wait();
  throw_if_interrupted();  // Ctrl-C reached gnuplot too: report the interrupt, not gnuplot's death
  if (!status.success() || output.picture.empty()) {
    const std::string first_error =
        output.errors.substr(0, output.errors.find_first_of('\n', output.errors.find_first_not_of(" \n")));
    throw std::runtime_error(fmt::format("gnuplot {} while drawing {}{}",
                                         status.success() ? "drew nothing" : status.str(), printable(path, 200),
                                         first_error.empty() ? "" : ": " + printable(first_error, 200)));
  }
  if (path == "-") {
    terminal << output.picture;
    terminal.flush();
  } else {
    write_file(path, output.picture);
  }
}

}  // namespace mpdemo::report
