#include "mpdemo/lab/trials.hpp"

#include "mpdemo/pool/chunk_plan.hpp"
#include "mpdemo/pool/pool_options.hpp"
#include "mpdemo/sys/errors.hpp"
#include "mpdemo/sys/interrupt.hpp"
#include "mpdemo/sys/topology.hpp"
#include "mpdemo/sys/trace.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <utility>

namespace mpdemo {

namespace {

// A stale answer cannot pass verification.
void poison(std::span<double> values) { interruptible_fill(values, -1.0); }
}  // namespace

TrialSummary summarize(std::span<const Trial> trials) {
  TrialSummary summary;
  summary.repeats = trials.size();
  if (trials.empty()) return summary;
  std::vector<double> totals;
  std::vector<const Trial*> sorted;
  for (const Trial& trial : trials) {
    totals.push_back(trial.phases.total());
    sorted.push_back(&trial);
  }
  summary.total = Summary::of(totals);
  std::sort(sorted.begin(), sorted.end(),
            [](const Trial* a, const Trial* b) { return a->phases.total() < b->phases.total(); });
  summary.median_run = sorted[(sorted.size() - 1) / 2]->phases;
  summary.verified = std::all_of(trials.begin(), trials.end(), [](const Trial& t) { return t.verified; });
  return summary;
}

std::vector<double> reference_squares(std::span<const double> input) {
  std::vector<double> squares = interruptible_vector<double>(input.size());
  for_each_block(input.size(), [&](std::size_t begin, std::size_t end) {
    for (std::size_t i = begin; i < end; ++i) squares[i] = input[i] * input[i];
  });
  return squares;
}

MethodRunner::MethodRunner(std::span<const double> input, std::size_t workers, std::size_t chunksize, Trace* trace,
                           RankedMethods* ranked, PoolChoices choices)
    : input_(input),
      workers_(workers),
      chunksize_(chunksize),
      trace_(trace),
      ranked_(ranked),
      choices_(std::move(choices)),
      shared_input_(SharedArena::process_default(), input.size()) {
  interruptible_copy(shared_input_.data(), input.data(), input.size_bytes());
}

Trial MethodRunner::check(const PhaseTimes& phases, std::span<const double> result,
                          std::span<const double> reference) const {
  return {phases, same_values(result, reference)};
}

Trial MethodRunner::run(Method method, std::span<const double> reference) {
  const ScopedSpan span(trace_, std::string(method_name(method)), "experiment");
  switch (method) {
    case Method::sequential: {
      const Squared squared = square_sequentially(input_);
      return check(squared.phases, squared.result(), reference);
    }
    case Method::fresh_processes: {
      const Squared squared = square_with_fresh_processes(shared_input_, workers_, chunksize_, trace_, choices_);
      return check(squared.phases, squared.result(), reference);
    }
    case Method::fresh_processes_copy: {
      const Squared squared = square_with_fresh_processes_copying(input_, workers_, chunksize_, trace_, choices_);
      return check(squared.phases, squared.result(), reference);
    }
    case Method::fresh_threads: {
      const Squared squared = square_with_fresh_threads(input_, workers_, chunksize_, trace_, choices_);
      return check(squared.phases, squared.result(), reference);
    }
    case Method::warm_processes: {
      if (!warm_processes_) {
        warm_processes_.emplace(pool_options<ProcessPoolOptions>(workers_, trace_, choices_));
        shared_output_ = warm_processes_->make_shared_array<double>(input_.size());
        // Warm: each worker has mapped the pages of the chunks it gets (see kWarmUpMaps).
        for (int i = 0; i < kWarmUpMaps; ++i) {
          square_with_warm_processes(*warm_processes_, shared_input_, shared_output_, chunksize_);
        }
      }
      poison(shared_output_.span());  // a stale answer cannot pass
      const PhaseTimes phases = square_with_warm_processes(*warm_processes_, shared_input_, shared_output_, chunksize_);
      return check(phases, shared_output_.span(), reference);
    }
    case Method::warm_threads: {
      if (!warm_threads_) {
        warm_threads_.emplace(pool_options<PoolOptions>(workers_, trace_, choices_));
        thread_output_ = interruptible_vector<double>(input_.size());
        for (int i = 0; i < kWarmUpMaps; ++i)
          square_with_warm_threads(*warm_threads_, input_, thread_output_, chunksize_);
      }
      poison(thread_output_);
      const PhaseTimes phases = square_with_warm_threads(*warm_threads_, input_, thread_output_, chunksize_);
      return check(phases, thread_output_, reference);
    }
    case Method::mpi_scatter:
    case Method::mpi_shared_window:
    case Method::mpi_hybrid: {
      if (ranked_ == nullptr) {
        throw BadArgument(fmt::format("{} runs over MPI ranks: run it as mpirun -np K mpdemo run --backend mpi",
                                      method_name(method)));
      }
      const RankedMethods::Ran ran = ranked_->run(method, input_);
      if (!ranked_->is_root()) return {ran.phases, true};  // the root verifies
      return check(ran.phases, ran.result, reference);
    }
  }
  return {};
}

double MethodRunner::warm_pool_startup_seconds() const noexcept {
  return warm_processes_ ? warm_processes_->startup_seconds() : 0.0;
}

bool TrialResults::verified() const noexcept {
  return std::all_of(methods.begin(), methods.end(), [](const MethodResult& m) { return m.summary.verified; });
}

TrialResults run_trials(TrialPlan plan) {
  plan.workers = worker_count(plan.workers, plan.caller_computes);
  const std::size_t chunksize = plan.chunksize;
  // What the pools cut the map into: for the whole team, the caller included when it computes.
  plan.chunksize = ChunkPlan(plan.size, plan.chunksize, plan.workers + (plan.caller_computes ? 1 : 0)).chunksize();
  // Under MPI every rank runs the plan, and the ranks other than the root only lend their share of
  // the MPI methods: they hold no input, run nothing alone, and check nothing.
  const bool root = plan.ranked == nullptr || plan.ranked->is_root();
  const std::vector<double> input = root ? uniform_random_array(plan.size, plan.seed) : std::vector<double>{};
  const std::vector<double> reference = reference_squares(input);
  MethodRunner runner(input, plan.workers, chunksize, plan.trace, plan.ranked,
                      {plan.caller_computes, plan.fork_server});
  std::vector<std::vector<Trial>> trials(plan.methods.size());
  for (std::size_t r = 0; r < plan.repeat; ++r) {
    for (std::size_t m = 0; m < plan.methods.size(); ++m) {
      const Method method = plan.methods[m];
      if (!root && machinery_of(method) != Machinery::mpi_ranks) continue;
      trials[m].push_back(runner.run(method, reference));
      if (root && plan.on_trial) plan.on_trial(method, trials[m].back());
      throw_if_interrupted();
    }
  }
  TrialResults results{plan, {}, runner.warm_pool_startup_seconds()};
  if (plan.ranked != nullptr) {
    results.ranks = plan.ranked->ranks();
    results.nodes = plan.ranked->nodes();
    results.mpi_startup = plan.ranked->startup_seconds();
  }
  for (std::size_t m = 0; m < plan.methods.size(); ++m)
    results.methods.push_back({plan.methods[m], summarize(trials[m])});
  return results;
}

}  // namespace mpdemo
