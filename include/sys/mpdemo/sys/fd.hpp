// FileDescriptor and Pipe: RAII owners of POSIX file descriptors, and whole-message read/write on them.
#pragma once

#include <chrono>
#include <cstddef>
#include <string_view>
#include <utility>

namespace mpdemo {

/// Owns one file descriptor; closes it on destruction. Move-only; -1 means empty.
class FileDescriptor {
 public:
  FileDescriptor() noexcept = default;
  /// Takes ownership of a descriptor returned by a system call (-1, a failed call, gives an empty one).
  /// The only way in from a raw descriptor: adopting one is a named, visible act.
  static FileDescriptor adopt(int fd) noexcept { return FileDescriptor(fd < 0 ? -1 : fd); }
  FileDescriptor(FileDescriptor&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  FileDescriptor& operator=(FileDescriptor&& other) noexcept;
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  ~FileDescriptor() { reset(); }

  int get() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }
  /// Closes the descriptor now (errors from close are ignored: the descriptor is gone either way).
  void reset() noexcept;
  int release() noexcept { return std::exchange(fd_, -1); }

 private:
  explicit FileDescriptor(int fd) noexcept : fd_(fd) {}
  int fd_ = -1;
};

/// A pipe made with pipe2(O_CLOEXEC), so no exec'd program inherits either end by accident.
struct Pipe {
  FileDescriptor read_end;
  FileDescriptor write_end;
  /// flags are added to O_CLOEXEC (for instance O_NONBLOCK).
  static Pipe create(int flags = 0);
};

/// Writes all of [data, data + size), retrying on EINTR and short writes; false (errno set) if a write
/// fails. No exceptions, no allocation, no locks: what a forked child may use (spawn.hpp).
bool write_whole(int fd, const void* data, std::size_t size) noexcept;

/// How reading one whole message ended.
enum class ReadOutcome {
  complete,     ///< every byte arrived
  end_of_file,  ///< end-of-file before the first byte: the writer closed its end between messages
  torn,         ///< end-of-file in the middle: the writer died mid-message
  failed,       ///< read() failed (errno set)
};
/// Reads exactly `size` bytes, retrying on EINTR. Like write_whole, safe in a forked child.
ReadOutcome read_whole(int fd, void* data, std::size_t size) noexcept;

/// How waiting for a descriptor to become readable ended.
enum class Readiness {
  readable,   ///< readable, or hung up: a read will not block
  timed_out,  ///< the deadline passed first
  failed,     ///< poll() failed (errno set)
};
/// Waits until `fd` is readable (or hung up) or `deadline` passes, never returning timed_out before
/// it. An interrupt (EINTR) does not end the wait.
Readiness wait_readable(int fd, std::chrono::steady_clock::time_point deadline) noexcept;

/// Writes all of [data, data + size), retrying on EINTR and short writes. Throws std::system_error
/// (EPIPE included: callers block SIGPIPE, see ScopedSigpipeBlock).
/// `doing` names the write in the error ("write the plot to x.png").
void write_all(int fd, const void* data, std::size_t size, std::string_view doing = "write to a pipe");

/// Reads exactly size bytes. Returns false on end-of-file before the first byte; throws
/// std::system_error on an error or on end-of-file in the middle (a torn message).
bool read_exact(int fd, void* data, std::size_t size);

/// Blocks SIGPIPE in the calling thread for its lifetime, so that a write to a pipe whose reader died
/// fails with EPIPE instead of killing the process; discards a SIGPIPE raised meanwhile.
class ScopedSigpipeBlock {
 public:
  ScopedSigpipeBlock();
  ~ScopedSigpipeBlock();
  ScopedSigpipeBlock(const ScopedSigpipeBlock&) = delete;
  ScopedSigpipeBlock& operator=(const ScopedSigpipeBlock&) = delete;

 private:
  bool was_blocked_ = false;
};

}  // namespace mpdemo
