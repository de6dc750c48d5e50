#include "mpdemo/pool/chunk_kernel.hpp"

#include "mpdemo/sys/errors.hpp"
#include "mpdemo/sys/topology.hpp"

#include <fmt/format.h>

#include <cstdlib>
#include <limits>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace mpdemo {

namespace {

constexpr const char* kOverride = "MPDEMO_STREAM_ABOVE";

/// "33554432", "32M", "32MiB", "512k": bytes, the suffix a power of 1024. Throws BadArgument.
std::size_t parse_bytes(const std::string& text) {
  const auto refuse = [&] {
    return BadArgument(fmt::format("{}='{}': expected a size in bytes, such as 33554432, 32M or 1G", kOverride, text));
  };
  std::size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0 || digits > 18) throw refuse();
  std::size_t value = std::stoull(text.substr(0, digits));
  std::string suffix = text.substr(digits);
  if (suffix.size() == 3 && (suffix.substr(1) == "iB" || suffix.substr(1) == "ib")) suffix.resize(1);
  int shift = 0;
  if (suffix.empty()) {
    shift = 0;
  } else if (suffix == "K" || suffix == "k") {
    shift = 10;
  } else if (suffix == "M" || suffix == "m") {
    shift = 20;
  } else if (suffix == "G" || suffix == "g") {
    shift = 30;
  } else {
    throw refuse();
  }
  if (value > (std::numeric_limits<std::size_t>::max() >> shift)) throw refuse();
  return value << shift;
}

StoreRule read_store_rule() {
  StoreRule rule;
  if (const char* configured = std::getenv(kOverride); configured != nullptr) {
    rule.stream_above_bytes = parse_bytes(configured);
    rule.source = kOverride;
    return rule;
  }
  rule.stream_above_bytes = system_topology().last_level_cache_bytes;
  rule.never = rule.stream_above_bytes == 0;
  rule.source = rule.never ? "no cache size known" : "the last-level cache, from hwloc";
  return rule;
}

}  // namespace

const StoreRule& store_rule() {
  // A bad MPDEMO_STREAM_ABOVE throws at every map, not only the first: a static whose initialiser
  // threw is initialised again at the next call.
  static const StoreRule rule = read_store_rule();
  return rule;
}

Stores stores_for(std::size_t working_set_bytes) {
  const StoreRule& rule = store_rule();
  return !rule.never && working_set_bytes > rule.stream_above_bytes ? Stores::streaming : Stores::cached;
}

namespace detail {

StreamFence::~StreamFence() {
#if defined(__SSE2__)
  _mm_sfence();
#endif
}

}  // namespace detail

}  // namespace mpdemo
