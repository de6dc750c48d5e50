// MpiPool: the pool's map over MPI ranks, for when one machine's cores are not enough.
//
//   mpdemo::MpiSession mpi;                                  // MPI_Init ... MPI_Finalize
//   mpdemo::MpiPool pool({.path = mpdemo::MpiPath::hybrid});
//   std::vector<double> out = pool.map(square, in);          // every rank calls it; the root gets out
//
// MPI ranks are separate programs that mpirun started, possibly on other hosts: there is no fork,
// and a function pointer means nothing in another rank. So, like MPI's own calls, every call here is
// collective: every rank of the job calls it, in the same order, with the same function; the input
// and the output count on the root (rank 0) only, and other ranks may pass empty ones. That is the
// difference from ProcessPool, where only the master calls; the kernel (ChunkKernel) is the same.
//
// The paths the data can take (MpiPath):
//   scatter        MPI_Scatterv out and MPI_Gatherv back: two copies, through whatever network joins
//                  the ranks; what works across hosts
//   shared_window  an MPI-3 shared window (MPI_Win_allocate_shared on the ranks that share memory),
//                  every rank squaring its slice in place, for ranks on one host only. From the
//                  root's vectors the input is copied in and the results out (as hybrid does on one
//                  node); map_into on two MpiSharedArrays is the fork pool's zero-copy path: nothing
//                  is copied at all
//   hybrid         scatter to one leader per node, a shared window within each node, gather back
//                  from the leaders: as many network copies as there are nodes, not ranks
//
// Waiting: MPI progresses a nonblocking call only inside MPI calls, so a rank that waits tests its
// request in a loop; it spins for 2 ms (a map's partner answers within microseconds), then sleeps
// 100 us between tests, so ranks that wait while the root works alone give their cores back. Every
// wait checks for SIGINT/SIGTERM (mpdemo::Interrupted): mpirun stops a job whose rank died by sending
// the others SIGTERM, and the root then says so instead of vanishing mid-call.
#pragma once

#include "mpdemo/mpi/mpi_session.hpp"
#include "mpdemo/pool/chunk_kernel.hpp"
#include "mpdemo/pool/map_stats.hpp"
#include "mpdemo/sys/interrupt.hpp"
#include "mpdemo/sys/timing.hpp"

#include <mpi.h>

#include <cstddef>
#include <memory>
#include <ranges>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace mpdemo {

enum class MpiPath { scatter, shared_window, hybrid };

/// "scatter", "shared-window", "hybrid".
std::string_view mpi_path_name(MpiPath path) noexcept;

struct MpiPoolOptions {
  MpiPath path = MpiPath::scatter;
  /// 0: a node is the ranks that share memory (MPI_COMM_TYPE_SHARED), the hosts of a real cluster.
  /// K > 0: nodes of K consecutive ranks of a host (ranks placed host by host, mpirun's default;
  /// with --map-by node each would be alone), to rehearse a multi-host run on one machine (with
  /// `mpirun --mca btl self,tcp`, ranks of different "nodes" then talk over TCP as hosts would). A
  /// simulated node never spans two real ones: they are split further.
  int ranks_per_node = 0;
};

namespace detail {

/// One MPI-3 shared window of `bytes` on a node's communicator, allocated by the node's first rank
/// and seen by all of them at the same address range of their own (MPI_Win_shared_query). Held in a
/// passive-target epoch (MPI_Win_lock_all) for life, so that sync() (MPI_Win_sync) may order the
/// ranks' plain loads and stores around a barrier, as MPI's unified memory model asks.
class SharedWindow {
 public:
  SharedWindow() = default;
  SharedWindow(MPI_Comm node, std::size_t bytes);  ///< collective on `node`
  ~SharedWindow();                                 ///< MPI_Win_free, collective (skipped while unwinding)
  SharedWindow(SharedWindow&& other) noexcept;
  SharedWindow& operator=(SharedWindow&& other) noexcept;

  std::byte* data() const noexcept { return base_; }
  std::size_t bytes() const noexcept { return bytes_; }
  void sync() const;  ///< MPI_Win_sync: this rank's stores visible, others' loadable (with a barrier between)

 private:
  void release() noexcept;
  MPI_Win window_ = MPI_WIN_NULL;
  std::byte* base_ = nullptr;
  std::size_t bytes_ = 0;
};

}  // namespace detail

/// An array in a shared window that every rank of one node sees: made by MpiPool::make_shared_array,
/// filled by any rank (then MpiPool::barrier()), mapped in place by map_into.
template <class T>
class MpiSharedArray {
 public:
  MpiSharedArray() = default;
  T* data() const noexcept { return reinterpret_cast<T*>(window_.data()); }
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  std::span<T> span() const noexcept { return {data(), size_}; }

 private:
  friend class MpiPool;
  MpiSharedArray(detail::SharedWindow window, std::size_t size) : window_(std::move(window)), size_(size) {}
  detail::SharedWindow window_;
  std::size_t size_ = 0;
};

class MpiPool {
 public:
  /// Collective over every rank of the job (a live MpiSession). Throws BadArgument on every rank
  /// alike when the path cannot run on this job (shared_window across nodes).
  explicit MpiPool(MpiPoolOptions options = {});
  ~MpiPool();  ///< frees its communicators and windows: collective, skipped while unwinding
  MpiPool(const MpiPool&) = delete;
  MpiPool& operator=(const MpiPool&) = delete;

  MpiPath path() const noexcept { return options_.path; }
  int rank() const noexcept { return rank_; }
  int ranks() const noexcept { return ranks_; }
  bool is_root() const noexcept { return rank_ == 0; }
  int nodes() const noexcept { return nodes_; }
  int node() const noexcept { return node_; }            ///< this rank's node, 0 .. nodes()-1 (the root's is 0)
  int node_rank() const noexcept { return node_rank_; }  ///< this rank's place on its node, 0 .. node_size()-1
  int node_size() const noexcept { return node_size_; }
  /// This rank's place among the ranks that share its host's memory, whatever the simulated nodes:
  /// what a rank pins by.
  int host_rank() const noexcept { return host_rank_; }

  /// Collective: fn over every element of the root's input, into a new vector on the root (an empty
  /// one on the other ranks).
  template <class F, std::ranges::contiguous_range Input, class T = std::ranges::range_value_t<Input>>
  requires ElementFunction<F, T> std::vector<map_result_t<F, T>> map(F fn, const Input& input,
                                                                     MapStats* stats = nullptr) {
    // Made as the loop's results are: in blocks between interrupt checks, asking for 2 MiB pages.
    std::vector<map_result_t<F, T>> output =
        interruptible_vector<map_result_t<F, T>>(is_root() ? std::ranges::size(input) : 0);
    const MapStats cost = map_into(fn, input, output);
    if (stats != nullptr) *stats = cost;
    return output;
  }

  /// Collective: output[i] = fn(input[i]) on the root, whose sizes must agree (BadArgument); the
  /// other ranks' input and output are not read. Returns the phases as this rank saw them (the
  /// root's are the map's: each phase ends when every rank has finished it).
  template <class F, std::ranges::contiguous_range Input, std::ranges::contiguous_range Output,
            class T = std::ranges::range_value_t<Input>, class R = std::ranges::range_value_t<Output>>
  requires ElementFunction<F, T> && std::same_as<R, map_result_t<F, T>> MapStats map_into(F fn, const Input& input,
                                                                                          Output&& output) {
    // Sizes that differ are refused on every rank alike, after the root has announced them: a throw
    // on the root alone would leave the others waiting for its map forever.
    return execute({ChunkKernel::of<T>(fn), std::ranges::data(input), std::ranges::data(output),
                    is_root() ? std::ranges::size(input) : 0, is_root() ? std::ranges::size(output) : 0, sizeof(T),
                    sizeof(R), false});
  }

  /// Collective, zero copy: every rank squares its slice of `input` into `output`, both made by
  /// make_shared_array on this node; only the compute phase is paid.
  template <class F, class T, class R>
  requires ElementFunction<F, T> && std::same_as<R, map_result_t<F, T>> MapStats
  map_into(F fn, const MpiSharedArray<T>& input, MpiSharedArray<R>& output) {
    require_same_size(input.size(), output.size(), "MpiPool::map_into");
    return execute_in_place(
        {ChunkKernel::of<T>(fn), input.data(), output.data(), input.size(), output.size(), sizeof(T), sizeof(R), true},
        input.window_, output.window_);
  }

  /// Collective: an uninitialised array of `size` elements in a window every rank of the node maps.
  /// Throws BadArgument (on every rank) when the ranks span more than one node.
  template <class T>
  MpiSharedArray<T> make_shared_array(std::size_t size) {
    static_assert(std::is_trivially_copyable_v<T>);
    return MpiSharedArray<T>(make_window(size * sizeof(T), "MpiPool::make_shared_array"), size);
  }

  /// Collective: returns once every rank has called it; a rank that waits long sleeps between tests.
  /// Makes what every rank stored into `arrays` before it visible to every rank after it (MPI_Win_sync
  /// on both sides, as MPI's memory model asks): fill shared arrays, then call this.
  template <class... T>
  void barrier(const MpiSharedArray<T>&... arrays) {
    synchronized_barrier({&arrays.window_...});
  }

 private:
  struct Request {
    ChunkKernel kernel;
    const void* input;
    void* output;
    std::size_t size;         ///< meaningful on the root (and on every rank for in-place maps)
    std::size_t output_size;  ///< likewise
    std::size_t input_bytes;
    std::size_t output_bytes;
    bool in_place;  ///< shared arrays (execute_in_place), not the root's vectors
  };
  struct Header;  // what the root tells every rank at the start of a map

  MapStats execute(const Request& request);
  MapStats execute_in_place(const Request& request, const detail::SharedWindow& input,
                            const detail::SharedWindow& output);
  MapStats scatter_map(const Request& request, const Header& header, Stopwatch& phase);
  MapStats node_window_map(const Request& request, const Header& header, Stopwatch& phase);
  Header share_header(const Request& request);
  detail::SharedWindow make_window(std::size_t bytes, const char* caller);
  void synchronized_barrier(std::initializer_list<const detail::SharedWindow*> windows);
  [[noreturn]] void abort_job(const std::string& why);
  void free_communicators() noexcept;  ///< collective; nothing after MPI_Finalize

  MpiPoolOptions options_;
  int rank_ = 0;
  int ranks_ = 1;
  int node_ = 0;
  int nodes_ = 1;
  int node_rank_ = 0;
  int node_size_ = 1;
  int host_rank_ = 0;                      ///< this rank's place among the ranks of its host (the real node)
  std::vector<int> node_sizes_;            ///< ranks per node, in node order (the same on every rank)
  MPI_Comm world_ = MPI_COMM_NULL;         ///< a private copy of MPI_COMM_WORLD: the pool's traffic is its own
  MPI_Comm node_comm_ = MPI_COMM_NULL;     ///< the ranks of this node
  MPI_Comm leaders_comm_ = MPI_COMM_NULL;  ///< each node's first rank; MPI_COMM_NULL on the others
  std::vector<std::byte> scatter_input_;   ///< a rank's slice, received (scatter path, non-root ranks)
  std::vector<std::byte> scatter_output_;  ///< a rank's results, to be gathered
  detail::SharedWindow node_input_;        ///< the node's share of the input (shared_window and hybrid)
  detail::SharedWindow node_output_;       ///< the node's share of the results
};

}  // namespace mpdemo
