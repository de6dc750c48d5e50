#include "mpdemo/sys/huge_pages.hpp"

#include "mpdemo/sys/topology.hpp"

#include <sys/mman.h>
#include <cstdint>
#include <fstream>

namespace mpdemo {

std::string selected_setting(std::string_view text) {
  const std::size_t open = text.find('[');
  const std::size_t close = open == std::string_view::npos ? open : text.find(']', open);
  if (close == std::string_view::npos) return {};
  return std::string(text.substr(open + 1, close - open - 1));
}

bool HugePages::private_offered() const noexcept { return private_setting == "always" || private_setting == "madvise"; }

bool HugePages::shared_offered() const noexcept {
  // "within_size" counts: an anonymous shared mapping's size is its whole length. "deny" and "never"
  // refuse; "force" gives them even unasked.
  return shared_setting == "always" || shared_setting == "within_size" || shared_setting == "advise" ||
         shared_setting == "force";
}

namespace {
std::string setting_in(const char* path) {
  std::ifstream file(path);
  std::string line;
  std::getline(file, line);
  return selected_setting(line);
}
}  // namespace

HugePages huge_pages() {
  return HugePages{setting_in(HugePages::kPrivateSettingFile), setting_in(HugePages::kSharedSettingFile)};
}

void ask_for_huge_pages(void* begin, std::size_t bytes) noexcept {
  constexpr std::size_t kHugePage = std::size_t{2} << 20;
  if (bytes < kHugePage) return;
  // madvise wants a page-aligned start: the whole pages inside the range.
  const std::size_t page = page_size();
  const auto first = (reinterpret_cast<std::uintptr_t>(begin) + page - 1) / page * page;
  const auto last = (reinterpret_cast<std::uintptr_t>(begin) + bytes) / page * page;
  if (last > first) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
}

}  // namespace mpdemo
