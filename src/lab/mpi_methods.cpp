// The MPI methods over MpiPool: one pool per path, set up once (that is what warm means here too:
// mpirun started the ranks before the program ran), and the outputs kept across runs.
#include "mpdemo/lab/mpi_methods.hpp"

#include "mpdemo/lab/kernels.hpp"
#include "mpdemo/mpi/mpi_pool.hpp"
#include "mpdemo/sys/errors.hpp"
#include "mpdemo/sys/interrupt.hpp"
#include "mpdemo/sys/timing.hpp"
#include "mpdemo/sys/topology.hpp"

#include <algorithm>
#include <optional>
#include <set>

namespace mpdemo {

namespace {

bool wants(const std::vector<Method>& methods, Method method) {
  return std::find(methods.begin(), methods.end(), method) != methods.end();
}

class MpiMethods final : public RankedMethods {
 public:
  explicit MpiMethods(const MpiSettings& settings) : size_(settings.size) {
    const Stopwatch setup;
    try {
      // The hybrid pool also answers for the job (its nodes, the barriers), so it is always made.
      hybrid_.emplace(options(MpiPath::hybrid, settings));
      if (wants(settings.methods, Method::mpi_scatter)) scatter_.emplace(options(MpiPath::scatter, settings));
      const bool window_fits = hybrid_->nodes() == 1 || !settings.window_only_on_one_node;
      if (wants(settings.methods, Method::mpi_shared_window) && window_fits) {
        window_.emplace(options(MpiPath::shared_window, settings));
      }
    } catch (const BadArgument&) {
      // Every rank found the same fact and is here: free together, finalize together, then report.
      window_.reset();
      hybrid_.reset();
      scatter_.reset();
      session_.finalize();
      throw;
    }
    // Each rank on the CPU the fork pool gives its worker of the same index among the ranks of its
    // host, whatever the simulated nodes (one per physical core,
    // within what this process may use), so that the two are compared placed alike. Under mpirun's
    // own binding (its default for -np 2) that is the core mpirun chose; under --bind-to none, the
    // rank would otherwise wander, and a map waits for its slowest rank.
    pin_calling_thread(system_topology().worker_cpu(static_cast<std::size_t>(hybrid_->host_rank())));
    startup_ = session_.init_seconds() + setup.seconds();
  }

  std::size_t rank() const noexcept override { return static_cast<std::size_t>(session_.rank()); }
  std::size_t ranks() const noexcept override { return static_cast<std::size_t>(session_.size()); }
  std::size_t nodes() const noexcept override { return static_cast<std::size_t>(hybrid_->nodes()); }
  double startup_seconds() const noexcept override { return startup_; }
  bool can_run(Method method) const noexcept override {
    return method == Method::mpi_shared_window ? window_.has_value() : method != Method::mpi_scatter || scatter_;
  }

  Ran run(Method method, std::span<const double> input) override {
    switch (method) {
      case Method::mpi_scatter:
        return through_root_vectors(pool(scatter_, method), scatter_output_, input);
      case Method::mpi_hybrid:
        return through_root_vectors(pool(hybrid_, method), hybrid_output_, input);
      case Method::mpi_shared_window:
        return in_shared_window(pool(window_, method), input);
      default:
        throw std::logic_error("MpiMethods::run: not an MPI method");
    }
  }

 private:
  static MpiPoolOptions options(MpiPath path, const MpiSettings& settings) {
    return {.path = path, .ranks_per_node = settings.ranks_per_node};
  }

  static MpiPool& pool(std::optional<MpiPool>& pool, Method method) {
    if (!pool)
      throw std::logic_error(std::string("MpiMethods: no pool was set up for ") + std::string(method_name(method)));
    return *pool;
  }

  // The input in the root's vector, the result into the root's vector: scatter and hybrid.
  // The first run warms up on every rank alike (a decision that depended on the root's sizes alone
  // would leave the other ranks one collective call behind, waiting forever).
  Ran through_root_vectors(MpiPool& pool, std::vector<double>& output, std::span<const double> input) {
    if (!warmed_.contains(&pool)) {
      warmed_.insert(&pool);
      output = interruptible_vector<double>(input.size());
      for (int i = 0; i < kWarmUpMaps; ++i) pool.map_into(squared, input, output);
    }
    interruptible_fill(std::span<double>(output), -1.0);  // a stale answer cannot pass
    pool.barrier();  // every rank awake and waiting when the clock starts (see RankedMethods::run)
    const MapStats stats = pool.map_into(squared, input, output);
    return {stats.phases, output};
  }

  // Input and output born in the node's shared window, as the fork pool's warm arrays are in its
  // arena: the root fills the input once, untimed, and each map copies nothing.
  Ran in_shared_window(MpiPool& pool, std::span<const double> input) {
    if (window_input_.empty()) {
      window_input_ = pool.make_shared_array<double>(size_);
      window_output_ = pool.make_shared_array<double>(size_);
      if (pool.is_root()) interruptible_copy(window_input_.data(), input.data(), input.size_bytes());
      pool.barrier(window_input_);
      for (int i = 0; i < kWarmUpMaps; ++i) pool.map_into(squared, window_input_, window_output_);
    }
    if (pool.is_root()) interruptible_fill(window_output_.span(), -1.0);
    pool.barrier(window_output_);  // the poison lands before any rank writes a result; every rank awake
    const MapStats stats = pool.map_into(squared, window_input_, window_output_);
    return {stats.phases, window_output_.span()};
  }

  MpiSession session_;
  std::size_t size_;
  double startup_ = 0;
  std::optional<MpiPool> scatter_;
  std::optional<MpiPool> hybrid_;
  std::optional<MpiPool> window_;
  std::set<const MpiPool*> warmed_;
  std::vector<double> scatter_output_;
  std::vector<double> hybrid_output_;
  MpiSharedArray<double> window_input_;
  MpiSharedArray<double> window_output_;
};

}  // namespace

bool built_with_mpi() noexcept { return true; }

std::unique_ptr<RankedMethods> start_mpi_methods(const MpiSettings& settings) {
  return std::make_unique<MpiMethods>(settings);
}

}  // namespace mpdemo
