// Baseline selectors under the batch_scheduler interface (docs/algorithm.md), the controls a SamS
// run is compared against: all pairs (plain DPO), a uniform random K-subset, and the
// largest/smallest-loss and largest/smallest-margin K.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include <sams/core/decision.hpp>
#include <sams/core/rng.hpp>
#include <sams/core/views.hpp>
#include <sams/loss/evaluate.hpp>
#include <sams/loss/loss_config.hpp>
#include <sams/loss/pair_stats.hpp>
#include <sams/scheduler/concept.hpp>
#include <sams/scheduler/decision_fill.hpp>
#include <sams/scheduler/scheduler_config.hpp>
#include <sams/scheduler/selection.hpp>

namespace sams {

/// Which end of a ranking a heuristic selector keeps.
enum class extreme {
    largest,   ///< the K largest values, ties to the lower index
    smallest,  ///< the K smallest values, ties to the lower index
};

namespace detail {

/// What every baseline shares: configuration checks, the loss evaluation that validates
/// the batch before any state changes, the step counter, and the decision filling.
/// `Choose` is called as choose(stats, k, selected) once the batch is known to be valid.
template <class T>
class baseline_base {
protected:
    baseline_base(const loss_config& loss, const selection_config& select) : loss_(loss), select_(select) {
        loss_.validate();
        select_.validate();
    }

    template <class Choose>
    void run(const pair_batch<T>& batch, decision<T>& out, Choose&& choose) {
        evaluate_loss(loss_, batch, stats_);  // throws on a bad batch; only scratch is touched
        const std::size_t k = selection_size(select_.ratio, stats_.size());
        choose(stats_, k, selected_);
        fill_decision(stats_, std::span<const std::size_t>(selected_), select_.weights, out);
        out.score.clear();
        out.metrics.step = static_cast<std::size_t>(steps_);
        ++steps_;
    }

public:
    /// Steps taken so far; the next decision's metrics.step.
    [[nodiscard]] std::uint64_t steps() const noexcept { return steps_; }
    [[nodiscard]] const loss_config& loss() const noexcept { return loss_; }
    [[nodiscard]] const selection_config& selection() const noexcept { return select_; }
    /// K, the number of pairs a step selects from a batch of `batch_size` (≥ 1).
    [[nodiscard]] std::size_t selection_count(std::size_t batch_size) const {
        return selection_size(select_.ratio, batch_size);
    }

private:
    loss_config loss_;
    selection_config select_;
    pair_stats<T> stats_;
    std::vector<std::size_t> selected_;
    std::uint64_t steps_ = 0;
};

}  // namespace detail

// Every baseline is built either from a loss and a selection configuration, or, as
// sams_scheduler is, from a whole scheduler_config (its loss and select parts are used) and
// a seed; the selection configuration defaults everywhere. A baseline that draws nothing
// ignores the seed.

/// Plain DPO: every pair is selected. Weights are 1/B under either weight_scaling;
/// selection_config.ratio is ignored.
template <class T>
class full_batch : public detail::baseline_base<T> {
public:
    explicit full_batch(const loss_config& loss, const selection_config& select = {})
        : detail::baseline_base<T>(loss, select) {}
    explicit full_batch(const scheduler_config& config, std::uint64_t /*seed*/ = 0)
        : full_batch(config.loss, config.select) {}

    decision<T> step(const pair_batch<T>& batch) {
        decision<T> d;
        step(batch, d);
        return d;
    }
    void step(const pair_batch<T>& batch, decision<T>& out) {
        this->run(batch, out, [](const pair_stats<T>& stats, std::size_t, std::vector<std::size_t>& selected) {
            selected.resize(stats.size());
            for (std::size_t i = 0; i < selected.size(); ++i) selected[i] = i;
        });
    }
    /// Every pair: B.
    [[nodiscard]] std::size_t selection_count(std::size_t batch_size) const {
        detail::require(batch_size > 0, "sams::full_batch::selection_count", "batch_size must be >= 1");
        return batch_size;
    }
};

/// A uniformly random K-subset each step: the key control for SamS. Deterministic given
/// the seed; a rejected batch draws nothing, so later choices are unaffected by it.
template <class T>
class uniform_selector : public detail::baseline_base<T> {
public:
    explicit uniform_selector(const loss_config& loss, const selection_config& select = {},
                              std::uint64_t seed = 0)
        : detail::baseline_base<T>(loss, select), gen_(seed) {}
    explicit uniform_selector(const scheduler_config& config, std::uint64_t seed = 0)
        : uniform_selector(config.loss, config.select, seed) {}

    decision<T> step(const pair_batch<T>& batch) {
        decision<T> d;
        step(batch, d);
        return d;
    }
    void step(const pair_batch<T>& batch, decision<T>& out) {
        this->run(batch, out, [this](const pair_stats<T>& stats, std::size_t k, std::vector<std::size_t>& selected) {
            select_uniform(stats.size(), k, gen_, selected);
        });
    }

    /// The generator, for checkpoints (rng::state / set_state).
    [[nodiscard]] rng& generator() noexcept { return gen_; }
    [[nodiscard]] const rng& generator() const noexcept { return gen_; }

private:
    rng gen_;
};

/// The ranking keys of ranked_selector: which per-pair value it ranks, and which end it
/// keeps by default.
struct loss_key {
    static constexpr extreme default_end = extreme::largest;  ///< hard examples
    template <class T>
    static std::span<const T> values(const pair_stats<T>& stats) noexcept {
        return stats.loss;
    }
};
struct margin_key {
    static constexpr extreme default_end = extreme::smallest;  ///< the pairs the policy ranks worst
    template <class T>
    static std::span<const T> values(const pair_stats<T>& stats) noexcept {
        return stats.margin;
    }
};

/// The K pairs with the largest or smallest value of Key::values(stats) (ties go to the
/// lower index); Key::default_end unless told otherwise.
template <class T, class Key>
class ranked_selector : public detail::baseline_base<T> {
public:
    explicit ranked_selector(const loss_config& loss, const selection_config& select = {},
                             extreme which = Key::default_end)
        : detail::baseline_base<T>(loss, select), which_(which) {}
    explicit ranked_selector(const scheduler_config& config, std::uint64_t /*seed*/ = 0,
                             extreme which = Key::default_end)
        : ranked_selector(config.loss, config.select, which) {}

    decision<T> step(const pair_batch<T>& batch) {
        decision<T> d;
        step(batch, d);
        return d;
    }
    void step(const pair_batch<T>& batch, decision<T>& out) {
        this->run(batch, out,
                  [this](const pair_stats<T>& stats, std::size_t k, std::vector<std::size_t>& selected) {
                      const std::span<const T> values = Key::values(stats);
                      if (which_ == extreme::largest)
                          select_top_k(values, k, selected);
                      else
                          select_bottom_k(values, k, selected);
                  });
    }
    [[nodiscard]] extreme which() const noexcept { return which_; }

private:
    extreme which_;
};

/// The K pairs with the largest loss (hard examples; the default) or the smallest loss
/// (the classic small-loss heuristic against noisy labels).
template <class T>
using loss_selector = ranked_selector<T, loss_key>;

/// The K pairs with the smallest margin m = β h (the default: the pairs the policy ranks
/// worst, like the largest loss) or the largest margin.
template <class T>
using margin_selector = ranked_selector<T, margin_key>;

static_assert(batch_scheduler<full_batch<float>, float>,
              "sams::full_batch<T> must model sams::batch_scheduler (see docs/concepts.md)");
static_assert(batch_scheduler<uniform_selector<double>, double>,
              "sams::uniform_selector<T> must model sams::batch_scheduler (see docs/concepts.md)");
static_assert(batch_scheduler<loss_selector<float>, float>,
              "sams::loss_selector<T> must model sams::batch_scheduler (see docs/concepts.md)");
static_assert(batch_scheduler<margin_selector<double>, double>,
              "sams::margin_selector<T> must model sams::batch_scheduler (see docs/concepts.md)");

}  // namespace sams
