#include "mpdemo/errors.hpp"

#include <fmt/format.h>

namespace mpdemo {

void throw_errno(std::string_view doing) {
  throw std::system_error(errno, std::system_category(), std::string(doing));
}

void check_error_number(int error_number, std::string_view doing) {
  if (error_number != 0) throw std::system_error(error_number, std::system_category(), std::string(doing));
}

WorkerError::WorkerError(std::size_t worker, pid_t pid, std::size_t chunk_begin, std::size_t chunk_end,
                         std::string cause)
    : std::runtime_error(fmt::format("worker {} (pid {}) failed on elements [{}, {}): {}", worker, pid,
                                     chunk_begin, chunk_end, cause)),
      worker_(worker),
      pid_(pid),
      chunk_begin_(chunk_begin),
      chunk_end_(chunk_end),
      cause_(std::move(cause)) {}

}  // namespace mpdemo
