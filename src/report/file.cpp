#include "mpdemo/report/file.hpp"

#include "mpdemo/report/format.hpp"
#include "mpdemo/sys/detail/system_call.hpp"
#include "mpdemo/sys/errors.hpp"
#include "mpdemo/sys/fd.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

namespace mpdemo::report {

void write_file(const std::string& path, std::string_view bytes, std::string_view what) {
  FileDescriptor file = FileDescriptor::adopt(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666));
  if (file.get() < 0) throw_errno(fmt::format("open {} for {}", printable(path, 200), what));
  write_all(file.get(), bytes.data(), bytes.size(), fmt::format("write {} to {}", what, printable(path, 200)));
  // close() is where some file systems report a full disk.
  if (::close(file.release()) != 0) throw_errno(fmt::format("write {} to {}", what, printable(path, 200)));
}

}  // namespace mpdemo::report
