#include "mpdemo/mpi/mpi_pool.hpp"

#include "mpdemo/sys/errors.hpp"
#include "mpdemo/sys/interrupt.hpp"
#include "mpdemo/sys/timing.hpp"

#include <fmt/format.h>

#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <thread>
#include <utility>

namespace mpdemo {

std::string_view mpi_path_name(MpiPath path) noexcept {
  switch (path) {
    case MpiPath::scatter:
      return "scatter";
    case MpiPath::shared_window:
      return "shared-window";
    case MpiPath::hybrid:
      return "hybrid";
  }
  return "?";
}

namespace {

constexpr auto kSpinBeforeSleeping = std::chrono::milliseconds(2);
constexpr auto kSleepBetweenTests = std::chrono::microseconds(100);

// Tests `request` until it completes (see the header: spin, then sleep), checking for an interrupt.
void wait_for(MPI_Request& request, std::string_view doing) {
  const auto started = std::chrono::steady_clock::now();
  bool spinning = true;
  for (;;) {
    int done = 0;
    check_mpi(MPI_Test(&request, &done, MPI_STATUS_IGNORE), doing);
    if (done != 0) return;
    throw_if_interrupted();
    if (spinning) {
      spinning = std::chrono::steady_clock::now() - started < kSpinBeforeSleeping;
    } else {
      std::this_thread::sleep_for(kSleepBetweenTests);
    }
  }
}

// Elements [begin, end) of part `part` when `size` elements are cut into `parts` near-equal parts.
// floor(size * part / parts), without the product overflowing: size = q * parts + r, r < parts.
std::size_t part_begin(std::size_t size, std::size_t part, std::size_t parts) {
  return size / parts * part + size % parts * part / parts;
}

// MPI counts and displacements are ints.
int mpi_count(std::size_t count, const char* what) {
  if (count > static_cast<std::size_t>(INT_MAX)) {
    throw BadArgument(
        fmt::format("MpiPool: {} of {} elements is more than MPI's int counts hold ({}); use more ranks "
                    "or a smaller input",
                    what, count, INT_MAX));
  }
  return static_cast<int>(count);
}

// One element as MPI sees it: `bytes` contiguous bytes, so counts and displacements stay in elements.
class ElementType {
 public:
  explicit ElementType(std::size_t bytes) {
    check_mpi(MPI_Type_contiguous(static_cast<int>(bytes), MPI_BYTE, &type_), "describing an element");
    check_mpi(MPI_Type_commit(&type_), "describing an element");
  }
  ~ElementType() { MPI_Type_free(&type_); }
  ElementType(const ElementType&) = delete;
  ElementType& operator=(const ElementType&) = delete;
  MPI_Datatype get() const noexcept { return type_; }

 private:
  MPI_Datatype type_ = MPI_DATATYPE_NULL;
};

// Counts and displacements of `size` elements cut into `weights.size()` parts in proportion to the
// weights (1 each for ranks; ranks per node for nodes), for Scatterv/Gatherv.
struct Parts {
  std::vector<int> counts;
  std::vector<int> displacements;
};

Parts cut(std::size_t size, const std::vector<int>& weights, int total_weight) {
  Parts parts;
  std::size_t weight_before = 0;
  for (const int weight : weights) {
    const std::size_t begin = part_begin(size, weight_before, static_cast<std::size_t>(total_weight));
    weight_before += static_cast<std::size_t>(weight);
    const std::size_t end = part_begin(size, weight_before, static_cast<std::size_t>(total_weight));
    parts.counts.push_back(mpi_count(end - begin, "a part"));
    parts.displacements.push_back(mpi_count(begin, "the offset of a part"));
  }
  return parts;
}

void grow(std::vector<std::byte>& buffer, std::size_t bytes) {
  if (buffer.size() < bytes) buffer.resize(bytes);
}

}  // namespace

namespace detail {

SharedWindow::SharedWindow(MPI_Comm node, std::size_t bytes) : bytes_(bytes) {
  int node_rank = 0;
  MPI_Comm_rank(node, &node_rank);
  // The node's first rank holds the whole window (contiguous, one mapping); the others hold none
  // and find its address in their own address space through MPI_Win_shared_query.
  const MPI_Aint own = node_rank == 0 ? static_cast<MPI_Aint>(bytes > 0 ? bytes : 1) : 0;
  void* mine = nullptr;
  check_mpi(MPI_Win_allocate_shared(own, 1, MPI_INFO_NULL, node, &mine, &window_),
            fmt::format("allocating a shared window of {} bytes", bytes));
  MPI_Win_set_errhandler(window_, MPI_ERRORS_RETURN);
  MPI_Aint size = 0;
  int unit = 0;
  void* first = nullptr;
  check_mpi(MPI_Win_shared_query(window_, 0, &size, &unit, &first), "finding the shared window");
  base_ = static_cast<std::byte*>(first);
  check_mpi(MPI_Win_lock_all(MPI_MODE_NOCHECK, window_), "opening the shared window's epoch");
}

SharedWindow::~SharedWindow() { release(); }

SharedWindow::SharedWindow(SharedWindow&& other) noexcept
    : window_(std::exchange(other.window_, MPI_WIN_NULL)),
      base_(std::exchange(other.base_, nullptr)),
      bytes_(std::exchange(other.bytes_, 0)) {}

SharedWindow& SharedWindow::operator=(SharedWindow&& other) noexcept {
  if (this != &other) {
    release();
    window_ = std::exchange(other.window_, MPI_WIN_NULL);
    base_ = std::exchange(other.base_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

void SharedWindow::release() noexcept {
  if (window_ == MPI_WIN_NULL) return;
  // Freeing is collective: a rank that is unwinding an error would wait for ranks that may never come.
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (std::uncaught_exceptions() == 0 && finalized == 0) {
    MPI_Win_unlock_all(window_);
    MPI_Win_free(&window_);
  }
  window_ = MPI_WIN_NULL;
  base_ = nullptr;
  bytes_ = 0;
}

void SharedWindow::sync() const {
  if (window_ != MPI_WIN_NULL) check_mpi(MPI_Win_sync(window_), "synchronising a shared window");
}

}  // namespace detail

struct MpiPool::Header {
  std::uint64_t size;
  std::uint64_t output_size;
  std::uint64_t input_bytes;
  std::uint64_t output_bytes;
  std::uint64_t in_place;
  std::uint64_t stores;  ///< the root's choice (Stores), or kStoreRuleRefused
};

namespace {
// In Header::stores: the root's MPDEMO_STREAM_ABOVE is not a size, so every rank refuses the map.
constexpr std::uint64_t kStoreRuleRefused = 255;
}  // namespace

MpiPool::MpiPool(MpiPoolOptions options) : options_(options) {
  if (options_.ranks_per_node < 0) {
    throw BadArgument(
        fmt::format("MpiPool: ranks_per_node is {}; it must be 0 (the real nodes) or more", options_.ranks_per_node));
  }
  check_mpi(MPI_Comm_dup(MPI_COMM_WORLD, &world_), "copying the world communicator");
  MPI_Comm_set_errhandler(world_, MPI_ERRORS_RETURN);
  MPI_Comm_rank(world_, &rank_);
  MPI_Comm_size(world_, &ranks_);

  // Nodes: the ranks that share memory, cut further into simulated nodes when asked.
  MPI_Comm shared = MPI_COMM_NULL;
  check_mpi(MPI_Comm_split_type(world_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &shared),
            "finding the ranks that share memory");
  MPI_Comm_rank(shared, &host_rank_);
  if (options_.ranks_per_node > 0) {
    check_mpi(MPI_Comm_split(shared, rank_ / options_.ranks_per_node, rank_, &node_comm_),
              "cutting the job into simulated nodes");
    MPI_Comm_free(&shared);
  } else {
    node_comm_ = shared;
  }
  MPI_Comm_rank(node_comm_, &node_rank_);
  MPI_Comm_size(node_comm_, &node_size_);
  check_mpi(MPI_Comm_split(world_, node_rank_ == 0 ? 0 : MPI_UNDEFINED, rank_, &leaders_comm_),
            "joining the node leaders");
  if (leaders_comm_ != MPI_COMM_NULL) {
    MPI_Comm_rank(leaders_comm_, &node_);
    MPI_Comm_size(leaders_comm_, &nodes_);
    node_sizes_.resize(is_root() ? static_cast<std::size_t>(nodes_) : 0);
    check_mpi(MPI_Gather(&node_size_, 1, MPI_INT, node_sizes_.data(), 1, MPI_INT, 0, leaders_comm_),
              "counting the ranks of each node");
  }
  int facts[2] = {node_, nodes_};
  check_mpi(MPI_Bcast(facts, 2, MPI_INT, 0, node_comm_), "telling each rank its node");
  node_ = facts[0];
  nodes_ = facts[1];
  // Every rank knows every node's size, so every rank can cut a map into nodes (and refuse alike).
  node_sizes_.resize(static_cast<std::size_t>(nodes_));
  check_mpi(MPI_Bcast(node_sizes_.data(), nodes_, MPI_INT, 0, world_), "telling every rank the nodes' sizes");

  // Every rank holds the same facts, so every rank throws alike and none is left waiting.
  if (options_.path == MpiPath::shared_window && nodes_ > 1) {
    free_communicators();
    throw BadArgument(fmt::format(
        "the shared-window path needs every rank on one node, and this job spans {} nodes; use hybrid (a window "
        "per node) or scatter",
        nodes_));
  }
}

MpiPool::~MpiPool() {
  node_input_ = {};
  node_output_ = {};
  if (std::uncaught_exceptions() > 0) return;  // collective frees: see SharedWindow::release
  free_communicators();
}

void MpiPool::free_communicators() noexcept {
  int finalized = 0;
  MPI_Finalized(&finalized);
  for (MPI_Comm* comm : {&leaders_comm_, &node_comm_, &world_}) {
    if (*comm != MPI_COMM_NULL && finalized == 0) MPI_Comm_free(comm);
    *comm = MPI_COMM_NULL;
  }
}

void MpiPool::synchronized_barrier(std::initializer_list<const detail::SharedWindow*> windows) {
  // MPI's unified model: sync (this rank's stores out), barrier, sync (the others' stores in).
  for (const detail::SharedWindow* window : windows) window->sync();
  MPI_Request request = MPI_REQUEST_NULL;
  check_mpi(MPI_Ibarrier(world_, &request), "waiting for every rank");
  wait_for(request, "waiting for every rank");
  for (const detail::SharedWindow* window : windows) window->sync();
}

void MpiPool::abort_job(const std::string& why) {
  std::fprintf(stderr, "mpdemo: %s; aborting the job\n", why.c_str());
  std::fflush(stderr);
  MPI_Abort(world_, 70);  // EX_SOFTWARE: a bug in the program, not bad input
  std::abort();           // MPI_Abort does not return; should it, this rank must not go on
}

detail::SharedWindow MpiPool::make_window(std::size_t bytes, const char* caller) {
  if (nodes_ > 1) {
    throw BadArgument(
        fmt::format("{}: the ranks span {} nodes, and a shared window holds the ranks of one", caller, nodes_));
  }
  return detail::SharedWindow(node_comm_, bytes);
}

MpiPool::Header MpiPool::share_header(const Request& request) {
  // How every rank stores is the root's to decide, for the whole map, as every other mode's map
  // decides: ranks whose environments differ still store alike, and only the root reads the rule.
  std::uint64_t stores = 0;
  std::string refusal;
  if (is_root()) {
    try {
      stores = static_cast<std::uint64_t>(stores_for(request.size * (request.input_bytes + request.output_bytes)));
    } catch (const BadArgument& error) {
      stores = kStoreRuleRefused;
      refusal = error.what();
    }
  }
  Header header{request.size,         request.output_size,        request.input_bytes,
                request.output_bytes, request.in_place ? 1u : 0u, stores};
  MPI_Request sent = MPI_REQUEST_NULL;
  check_mpi(MPI_Ibcast(&header, 6, MPI_UINT64_T, 0, world_, &sent), "announcing a map");
  wait_for(sent, "announcing a map");
  if (header.stores == kStoreRuleRefused) {  // refused on every rank alike, after the announcement
    throw BadArgument(is_root() ? refusal : "MpiPool::map: the root's MPDEMO_STREAM_ABOVE is not a size");
  }
  // Ranks that disagree on what they map would exchange garbage, and no collective call between
  // them can complete any more: say why, and end the job (a throw here would leave the root waiting
  // for this rank forever, were the error caught).
  if (header.input_bytes != request.input_bytes || header.output_bytes != request.output_bytes) {
    abort_job(fmt::format(
        "MpiPool::map: rank {} maps {}-byte elements into {}-byte results, but the root maps {} into {}: every rank "
        "must call map with the same function and types",
        rank_, request.input_bytes, request.output_bytes, header.input_bytes, header.output_bytes));
  }
  if ((header.in_place != 0) != request.in_place) {
    abort_job(fmt::format(
        "MpiPool::map_into: rank {} maps {}, but the root maps {}: every rank must make the same call", rank_,
        request.in_place ? "shared arrays" : "vectors", request.in_place ? "vectors" : "shared arrays"));
  }
  return header;
}

MapStats MpiPool::execute(const Request& request) {
  Stopwatch phase;  // the announcement counts in move_in
  const Header header = share_header(request);
  // Every rank now knows the root's sizes, so every rank refuses them alike.
  require_same_size(header.size, header.output_size, "MpiPool::map_into");
  if (header.size == 0) return {};
  Request sized = request;
  sized.kernel = request.kernel.with_stores(static_cast<Stores>(header.stores));
  return options_.path == MpiPath::scatter ? scatter_map(sized, header, phase) : node_window_map(sized, header, phase);
}

MapStats MpiPool::scatter_map(const Request& request, const Header& header, Stopwatch& phase) {
  const ElementType in_type(header.input_bytes);
  const ElementType out_type(header.output_bytes);
  const Parts parts = cut(header.size, std::vector<int>(static_cast<std::size_t>(ranks_), 1), ranks_);
  const auto me = static_cast<std::size_t>(rank_);
  const int count = parts.counts[me];
  const auto elements = static_cast<std::size_t>(count);
  if (!is_root()) {
    grow(scatter_input_, elements * header.input_bytes);
    grow(scatter_output_, elements * header.output_bytes);
  }
  MapStats stats;
  MPI_Request request_handle = MPI_REQUEST_NULL;
  // The root keeps its own slice where it is (MPI_IN_PLACE) and squares it from the input straight
  // into the output, as an MPI program would.
  check_mpi(
      MPI_Iscatterv(request.input, parts.counts.data(), parts.displacements.data(), in_type.get(),
                    is_root() ? MPI_IN_PLACE : scatter_input_.data(), count, in_type.get(), 0, world_, &request_handle),
      "scattering the input");
  wait_for(request_handle, "scattering the input");
  barrier();  // a phase ends when every rank has finished it
  stats.phases.move_in = phase.lap();

  if (is_root()) {
    const auto begin = static_cast<std::size_t>(parts.displacements[me]);
    request.kernel(request.input, request.output, begin, begin + elements);
  } else {
    request.kernel(scatter_input_.data(), scatter_output_.data(), 0, elements);
  }
  barrier();
  stats.phases.compute = phase.lap();

  check_mpi(MPI_Igatherv(is_root() ? MPI_IN_PLACE : scatter_output_.data(), count, out_type.get(), request.output,
                         parts.counts.data(), parts.displacements.data(), out_type.get(), 0, world_, &request_handle),
            "gathering the results");
  wait_for(request_handle, "gathering the results");
  stats.phases.collect = phase.lap();
  const std::size_t moved = header.size - static_cast<std::size_t>(parts.counts[0]);
  stats.traffic.copied_in_bytes = moved * header.input_bytes;
  stats.traffic.copied_out_bytes = moved * header.output_bytes;
  return stats;
}

MapStats MpiPool::node_window_map(const Request& request, const Header& header, Stopwatch& phase) {
  const ElementType in_type(header.input_bytes);
  const ElementType out_type(header.output_bytes);
  // Each node's share of the elements, in proportion to its ranks, cut on every rank, so that a
  // count MPI cannot hold is refused by all of them alike (before any window grows); then this
  // rank's share of its node's.
  const Parts node_parts = cut(header.size, node_sizes_, ranks_);
  const auto node_elements = static_cast<std::size_t>(node_parts.counts[static_cast<std::size_t>(node_)]);
  // Every rank of the node computes the same sizes, so all of them grow the windows together.
  if (node_input_.bytes() < node_elements * header.input_bytes) {
    node_input_ = {};
    node_input_ = detail::SharedWindow(node_comm_, node_elements * header.input_bytes);
  }
  if (node_output_.bytes() < node_elements * header.output_bytes) {
    node_output_ = {};
    node_output_ = detail::SharedWindow(node_comm_, node_elements * header.output_bytes);
  }

  MapStats stats;
  const bool leader = leaders_comm_ != MPI_COMM_NULL;
  MPI_Request handle = MPI_REQUEST_NULL;
  if (leader) {
    check_mpi(
        MPI_Iscatterv(request.input, node_parts.counts.data(), node_parts.displacements.data(), in_type.get(),
                      node_input_.data(), static_cast<int>(node_elements), in_type.get(), 0, leaders_comm_, &handle),
        "scattering the input to the nodes");
    wait_for(handle, "scattering the input to the nodes");
  }
  synchronized_barrier({&node_input_});
  stats.phases.move_in = phase.lap();

  const std::size_t begin =
      part_begin(node_elements, static_cast<std::size_t>(node_rank_), static_cast<std::size_t>(node_size_));
  const std::size_t end =
      part_begin(node_elements, static_cast<std::size_t>(node_rank_ + 1), static_cast<std::size_t>(node_size_));
  request.kernel(node_input_.data(), node_output_.data(), begin, end);
  synchronized_barrier({&node_output_});
  stats.phases.compute = phase.lap();

  if (leader) {
    check_mpi(MPI_Igatherv(node_output_.data(), static_cast<int>(node_elements), out_type.get(), request.output,
                           node_parts.counts.data(), node_parts.displacements.data(), out_type.get(), 0, leaders_comm_,
                           &handle),
              "gathering the results from the nodes");
    wait_for(handle, "gathering the results from the nodes");
  }
  stats.phases.collect = phase.lap();
  // Everything is copied once each way: into the nodes' windows (the root's own node's share by a
  // local copy) and out of them.
  stats.traffic.copied_in_bytes = header.size * header.input_bytes;
  stats.traffic.copied_out_bytes = header.size * header.output_bytes;
  return stats;
}

MapStats MpiPool::execute_in_place(const Request& request, const detail::SharedWindow& input,
                                   const detail::SharedWindow& output) {
  const Stopwatch phase;
  // What every rank stored into the arrays before the call, every rank sees (MPI's memory model).
  synchronized_barrier({&input, &output});
  const Header header = share_header(request);
  if (header.size != request.size) {
    abort_job(fmt::format("MpiPool::map_into: rank {} maps a shared array of {} elements, the root one of {}", rank_,
                          request.size, header.size));
  }
  MapStats stats;
  const std::size_t begin = part_begin(header.size, static_cast<std::size_t>(rank_), static_cast<std::size_t>(ranks_));
  const std::size_t end =
      part_begin(header.size, static_cast<std::size_t>(rank_ + 1), static_cast<std::size_t>(ranks_));
  request.kernel.with_stores(static_cast<Stores>(header.stores))(request.input, request.output, begin, end);
  synchronized_barrier({&output});
  stats.phases.compute = phase.seconds();
  return stats;
}

}  // namespace mpdemo
