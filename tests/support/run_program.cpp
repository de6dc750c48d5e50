#include "run_program.hpp"

#include "mpdemo/sys/detail/system_call.hpp"
#include "mpdemo/sys/errors.hpp"
#include "mpdemo/sys/fd.hpp"
#include "mpdemo/sys/proc_files.hpp"
#include "mpdemo/sys/spawn.hpp"

#include <poll.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>
#include <array>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string_view>
#include <system_error>
#include <thread>

namespace mpdemo::testing {

std::string mpdemo_executable() { return MPDEMO_EXECUTABLE; }

ProgramResult run_mpdemo(const std::vector<std::string>& arguments, std::chrono::milliseconds timeout,
                         const std::function<void(pid_t)>& on_started, bool own_process_group) {
  std::vector<std::string> command{MPDEMO_EXECUTABLE};
  command.insert(command.end(), arguments.begin(), arguments.end());
  return run_program(command, timeout, on_started, own_process_group);
}

ProgramResult run_program(std::vector<std::string> argv_strings, std::chrono::milliseconds timeout,
                          const std::function<void(pid_t)>& on_started, bool own_process_group) {
  const auto started = std::chrono::steady_clock::now();
  Pipe out = Pipe::create();
  Pipe err = Pipe::create();
  std::vector<char*> argv;
  for (std::string& s : argv_strings) argv.push_back(s.data());
  argv.push_back(nullptr);

  SpawnOptions options;
  options.stdout_to = out.write_end.get();
  options.stderr_to = err.write_end.get();
  // die_with_parent (the default): a test killed by ctest's TIMEOUT takes the program with it.
  ChildProcess child = spawn(argv[0], options, [&argv, own_process_group]() noexcept {
    if (own_process_group) ::setpgid(0, 0);
    ::execvp(argv[0], argv.data());
    return 127;
  });
  const pid_t pid = child.pid();
  if (own_process_group) ::setpgid(pid, pid);  // also here, so it holds before on_started signals the group
  out.write_end.reset();
  err.write_end.reset();
  if (on_started) on_started(pid);

  ProgramResult result;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::array<pollfd, 2> fds{{{out.read_end.get(), POLLIN, 0}, {err.read_end.get(), POLLIN, 0}}};
  std::array<std::string*, 2> sinks{&result.out, &result.err};
  int open_streams = 2;
  while (open_streams > 0) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      result.err += "\n[test harness: timed out, killed]";
      break;
    }
    if (::poll(fds.data(), fds.size(), static_cast<int>(left.count())) < 0 && errno != EINTR) throw_errno("poll");
    for (std::size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buffer[65536];
      const ssize_t got = ::read(fds[i].fd, buffer, sizeof(buffer));
      if (got > 0) {
        sinks[i]->append(buffer, static_cast<std::size_t>(got));
      } else {
        fds[i].fd = -1;
        --open_streams;
      }
    }
  }
  result.status = child.wait_or_kill(std::chrono::milliseconds(open_streams > 0 ? 0 : 5000));
  result.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return result;
}

std::vector<pid_t> children_of(pid_t pid) {
  std::vector<pid_t> children;
  std::error_code ignored;
  for (const auto& task : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ignored)) {
    std::ifstream list(task.path() / "children");
    pid_t child = 0;
    while (list >> child) children.push_back(child);
  }
  return children;
}

std::size_t shared_mappings() {
  std::ifstream maps("/proc/self/maps");
  std::size_t count = 0;
  for (std::string line; std::getline(maps, line);) {
    // "7f...-7f... rw-s 00000000 00:01 1234  /dev/zero (deleted)": the fourth permission letter.
    const auto space = line.find(' ');
    if (space != std::string::npos && space + 4 < line.size() && line[space + 4] == 's') ++count;
  }
  return count;
}

ChildVerdict run_in_child(std::string_view role, const std::function<int(int report)>& check,
                          std::chrono::milliseconds timeout) {
  Pipe said = Pipe::create();
  const int out = said.write_end.get();
  SpawnOptions options;
  options.keep_descriptors = {out};
  ChildProcess child = spawn(role, options, [&check, out]() noexcept { return check(out); });
  said.write_end.reset();
  ChildVerdict verdict{child.wait_or_kill(timeout), {}};
  std::array<char, 4096> chunk{};
  for (ssize_t got; (got = ::read(said.read_end.get(), chunk.data(), chunk.size())) > 0;)
    verdict.said.append(chunk.data(), static_cast<std::size_t>(got));
  return verdict;
}

namespace {
std::atomic<bool> g_stop_new_children{false};
void stop_if_asked() {
  if (g_stop_new_children) ::raise(SIGSTOP);
}
}  // namespace

StopNewChildren::StopNewChildren() {
  static const int registered = ::pthread_atfork(nullptr, nullptr, &stop_if_asked);
  if (registered != 0) throw std::system_error(registered, std::generic_category(), "pthread_atfork");
  g_stop_new_children = true;
}

StopNewChildren::~StopNewChildren() { g_stop_new_children = false; }

bool no_child_left() noexcept {
  errno = 0;
  return ::waitpid(-1, nullptr, WNOHANG) == -1 && errno == ECHILD;
}

bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

bool catches_signal(pid_t pid, int signal_number) {
  const std::optional<ProcFields> status = ProcFields::status_of(pid);
  const std::optional<std::string_view> caught = status ? status->text("SigCgt") : std::nullopt;
  if (!caught) return false;
  const unsigned long long mask = std::stoull(std::string(*caught), nullptr, 16);
  return (mask >> (signal_number - 1) & 1ULL) != 0;
}

}  // namespace mpdemo::testing
