// Serialization: how values that are not trivially copyable (std::string, std::vector<T>, maps, your
// own structs) travel between a master and its forked workers, as Python's Pool pickles them.
//
// mpdemo uses cereal (Debian's libcereal-dev): header-only, so a program using the pool links nothing
// more; its binary archive writes a std::string as its length and bytes, with no type tags or
// registration for ordinary types; and a struct opts in with one member, the same shape as
// Boost.Serialization's:
//
//   struct Order {
//     std::string customer;
//     std::vector<double> amounts;
//     template <class Archive> void serialize(Archive& archive) { archive(customer, amounts); }
//   };
//
// Trivially copyable values (double, int, plain structs of them) never come here: they are shared in
// place, zero copy (see ProcessPool). The standard types below are serializable out of the box.
#pragma once

#include <cereal/archives/binary.hpp>
#include <cereal/types/array.hpp>
#include <cereal/types/deque.hpp>
#include <cereal/types/list.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/optional.hpp>
#include <cereal/types/set.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/tuple.hpp>
#include <cereal/types/unordered_map.hpp>
#include <cereal/types/unordered_set.hpp>
#include <cereal/types/utility.hpp>
#include <cereal/types/vector.hpp>

#include <concepts>
#include <cstddef>
#include <cstring>
#include <istream>
#include <ostream>
#include <span>
#include <streambuf>
#include <type_traits>
#include <vector>

namespace mpdemo {

/// A value cereal can write and read back with its binary archive, and that can be made empty first.
template <class T>
concept Serializable =
    std::default_initializable<T> && cereal::traits::is_output_serializable<T, cereal::BinaryOutputArchive>::value &&
    cereal::traits::is_input_serializable<T, cereal::BinaryInputArchive>::value;

/// What can cross between master and workers: shared in place when trivially copyable, serialized
/// otherwise.
template <class T>
concept Transferable = std::is_trivially_copyable_v<T> || Serializable<T>;

namespace detail {

/// A streambuf that appends to a byte vector: what cereal writes, with no intermediate string.
class ByteSink : public std::streambuf {
 public:
  explicit ByteSink(std::vector<std::byte>& bytes) : bytes_(bytes) {}

 protected:
  std::streamsize xsputn(const char* data, std::streamsize count) override {
    const auto* first = reinterpret_cast<const std::byte*>(data);
    bytes_.insert(bytes_.end(), first, first + count);
    return count;
  }
  int_type overflow(int_type c) override {
    if (!traits_type::eq_int_type(c, traits_type::eof())) bytes_.push_back(static_cast<std::byte>(c));
    return traits_type::not_eof(c);
  }

 private:
  std::vector<std::byte>& bytes_;
};

/// A streambuf that reads bytes in place (in shared memory, say), with no copy.
class ByteSource : public std::streambuf {
 public:
  explicit ByteSource(std::span<const std::byte> bytes) {
    char* first = const_cast<char*>(reinterpret_cast<const char*>(bytes.data()));  // only ever read
    setg(first, first, first + bytes.size());
  }
};

/// Appends a count and then `values`, one by one, to `bytes`.
template <class Range>
void serialize_elements(const Range& values, std::vector<std::byte>& bytes) {
  ByteSink sink(bytes);
  std::ostream stream(&sink);
  cereal::BinaryOutputArchive archive(stream);
  archive(static_cast<std::uint64_t>(std::size(values)));
  for (const auto& value : values) archive(value);
}

/// Reads what serialize_elements wrote: the count, then each element handed to `each` as it is read.
/// Throws cereal::Exception when the bytes end early.
template <class T, class Each>
std::size_t deserialize_elements(std::span<const std::byte> bytes, Each&& each) {
  ByteSource source(bytes);
  std::istream stream(&source);
  cereal::BinaryInputArchive archive(stream);
  std::uint64_t count = 0;
  archive(count);
  for (std::uint64_t i = 0; i < count; ++i) {
    T value{};
    archive(value);
    each(std::move(value));
  }
  return static_cast<std::size_t>(count);
}

}  // namespace detail

}  // namespace mpdemo
