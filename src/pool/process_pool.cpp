// The public face of the ProcessPool: its options, staging data into shared memory and out, the
// map's phases and traffic, terminate(). The protocol with the workers is the Dispatcher's.
#include "mpdemo/pool/process_pool.hpp"

#include "dispatcher.hpp"
#include "mpdemo/sys/errors.hpp"
#include "mpdemo/sys/interrupt.hpp"
#include "mpdemo/sys/topology.hpp"

#include <mutex>
#include <stdexcept>

namespace mpdemo {

struct ProcessPool::Impl {
  Impl(std::shared_ptr<SharedArena> shared, const ProcessPoolOptions& options, std::vector<int> cpus)
      : arena(std::move(shared)),
        map_timeout(options.map_timeout),
        dispatcher({options.spin, options.start_timeout}, std::move(cpus)) {}

  std::shared_ptr<SharedArena> arena;
  std::chrono::milliseconds map_timeout;
  // terminate() may come from another thread: it takes `control`, and either kills the workers
  // itself (no map running) or wakes the running map, whose thread kills them. Everything else is
  // touched only by the one thread that runs maps.
  mutable std::mutex control;
  bool map_running = false;
  detail::Dispatcher dispatcher;
  double startup_seconds = 0;

  /// Runs `job` on the workers, replacing any that died first; after an exception no worker is still
  /// busy with it.
  void run(detail::Job& job);
};

void ProcessPool::Impl::run(detail::Job& job) {
  {
    const std::lock_guard lock(control);
    if (dispatcher.termination_requested()) {
      throw PoolTerminated("ProcessPool: terminate() was called: the pool runs no more maps");
    }
    map_running = true;
  }
  // Whatever way the map ends: a terminate() that came meanwhile is carried out here, by this thread.
  struct MapEnd {
    Impl& impl;
    ~MapEnd() {
      const std::lock_guard lock(impl.control);
      impl.map_running = false;
      if (impl.dispatcher.termination_requested()) impl.dispatcher.kill_all();
    }
  } map_end{*this};
  const ScopedSigpipeBlock no_sigpipe;
  try {
    dispatcher.start_missing();
    dispatcher.run(job);
  } catch (...) {
    // After an exception (a death, an interrupt, a timeout) workers may still be busy with chunks of
    // this map: none of them may write into memory the unwinding is about to free.
    dispatcher.abandon_in_flight();
    throw;
  }
}

ProcessPool::ProcessPool(std::size_t workers) : ProcessPool(ProcessPoolOptions{workers}) {}

ProcessPool::ProcessPool(ProcessPoolOptions options) {
  const Stopwatch clock;
  const Topology& topology = system_topology();
  const std::size_t count = options.workers != 0 ? options.workers : topology.default_workers();
  std::vector<int> cpus(count, -1);
  if (options.pin_workers) {
    for (std::size_t i = 0; i < count; ++i) cpus[i] = topology.worker_cpu(i);
  }
  std::shared_ptr<SharedArena> arena = options.arena ? std::move(options.arena) : SharedArena::process_default();
  impl_ = std::make_unique<Impl>(std::move(arena), options, std::move(cpus));
  impl_->dispatcher.start_missing();  // on failure, the dispatcher's destructor stops those started
  impl_->startup_seconds = clock.seconds();
}

ProcessPool::~ProcessPool() {
  if (impl_) impl_->dispatcher.stop();
}

ProcessPool::ProcessPool(ProcessPool&&) noexcept = default;

ProcessPool& ProcessPool::operator=(ProcessPool&& other) noexcept {
  if (this != &other) {
    if (impl_) impl_->dispatcher.stop();
    impl_ = std::move(other.impl_);
  }
  return *this;
}

std::size_t ProcessPool::size() const noexcept { return impl_ ? impl_->dispatcher.size() : 0; }

ProcessPool::Impl& ProcessPool::impl() const {
  if (!impl_) throw std::logic_error("ProcessPool: this pool was moved from; it has no workers");
  return *impl_;
}

std::vector<std::optional<pid_t>> ProcessPool::worker_pids() const {
  const Impl& state = impl();
  const std::lock_guard lock(state.control);
  std::vector<std::optional<pid_t>> pids;
  for (const detail::WorkerSlot& slot : state.dispatcher.workers()) {
    pids.push_back(slot.process.running() ? std::optional(slot.process.pid()) : std::nullopt);
  }
  return pids;
}

void ProcessPool::terminate() noexcept {
  if (!impl_) return;
  const std::lock_guard lock(impl_->control);
  if (impl_->dispatcher.termination_requested()) return;
  impl_->dispatcher.request_termination();                // a running map wakes, throws and kills them
  if (!impl_->map_running) impl_->dispatcher.kill_all();  // otherwise this thread does
}

bool ProcessPool::terminated() const noexcept {
  if (!impl_) return false;
  const std::lock_guard lock(impl_->control);
  return impl_->dispatcher.termination_requested();
}

double ProcessPool::startup_seconds() const noexcept { return impl_ ? impl_->startup_seconds : 0.0; }
const std::shared_ptr<SharedArena>& ProcessPool::arena() const { return impl().arena; }

MapStats ProcessPool::execute(const Request& request, const std::function<void(const void*)>& collect) {
  Impl& state = impl();  // a moved-from pool throws here, before anything is touched
  MapStats stats;
  Stopwatch clock;
  detail::TaskMessage task{};
  task.kernel = request.kernel;
  task.input_element_bytes = request.input_element_bytes;
  task.output_element_bytes = request.output_element_bytes;

  if (request.data_path == DataPath::pipe) {
    // Nothing is shared: slices travel through the pipes during compute, straight from the caller's
    // input and into the caller's output.
    const detail::PipeTransfer pipe{static_cast<const std::byte*>(request.input), request.input_element_bytes,
                                    static_cast<std::byte*>(request.output), request.output_element_bytes};
    detail::Job job(task, request.size, request.chunksize, size(), &pipe, state.map_timeout);
    state.run(job);
    stats.phases.compute = clock.lap();
    stats.traffic.pipe_bytes = job.pipe_bytes;
    return stats;
  }

  SharedArena& arena = *state.arena;
  const std::size_t input_bytes = request.size * request.input_element_bytes;
  const std::size_t output_bytes = request.size * request.output_element_bytes;
  // Data the caller made in the arena is used where it is; anything else is copied in (and results
  // copied out), and that copy is the price of moving data between processes.
  SharedArray<std::byte> staged_input;
  task.input = request.input;
  if (request.size > 0 && !arena.contains(request.input, input_bytes)) {
    staged_input = SharedArray<std::byte>(state.arena, input_bytes);
    interruptible_copy(staged_input.data(), request.input, input_bytes);
    stats.traffic.copied_in_bytes = input_bytes;
    task.input = staged_input.data();
  }
  SharedArray<std::byte> staged_output;
  task.output = request.output;
  if (request.size > 0 && (request.output == nullptr || !arena.contains(request.output, output_bytes))) {
    staged_output = SharedArray<std::byte>(state.arena, output_bytes);
    task.output = staged_output.data();
  }
  stats.phases.move_in = clock.lap();

  detail::Job job(task, request.size, request.chunksize, size(), nullptr, state.map_timeout);
  state.run(job);
  stats.phases.compute = clock.lap();
  stats.traffic.pipe_bytes = job.pipe_bytes;

  if (collect) {
    collect(task.output);
  } else if (staged_output.data() != nullptr) {
    interruptible_copy(request.output, staged_output.data(), output_bytes);
  }
  if (staged_output.data() != nullptr) stats.traffic.copied_out_bytes = output_bytes;
  staged_input = {};
  staged_output = {};
  stats.phases.collect = clock.lap();
  return stats;
}

}  // namespace mpdemo
