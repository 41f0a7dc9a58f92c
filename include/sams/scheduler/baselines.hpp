// Baseline selectors under the batch_scheduler interface (SPEC §7), the controls a SamS
// run is compared against: all pairs (plain DPO), a uniform random K-subset, and the
// largest/smallest-loss and largest/smallest-margin K.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include <sams/scheduler/scheduler_config.hpp>
#include <sams/core/decision.hpp>
#include <sams/core/rng.hpp>
#include <sams/core/views.hpp>
#include <sams/loss/evaluate.hpp>
#include <sams/loss/loss_config.hpp>
#include <sams/loss/pair_stats.hpp>
#include <sams/scheduler/concept.hpp>
#include <sams/scheduler/decision_fill.hpp>
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
        // Fails early with the field's name; K itself depends on B and is computed per step.
        (void)selection_size(select_.ratio, 1);
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

private:
    loss_config loss_;
    selection_config select_;
    pair_stats<T> stats_;
    std::vector<std::size_t> selected_;
    std::uint64_t steps_ = 0;
};

}  // namespace detail

/// Plain DPO: every pair is selected. Weights are 1/B under either weight_scaling;
/// selection_config.ratio is ignored.
template <class T>
class full_batch : public detail::baseline_base<T> {
public:
    explicit full_batch(const loss_config& loss, const selection_config& select = {})
        : detail::baseline_base<T>(loss, select) {}

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
};

/// A uniformly random K-subset each step: the key control for SamS. Deterministic given
/// the seed; a rejected batch draws nothing, so later choices are unaffected by it.
template <class T>
class uniform_selector : public detail::baseline_base<T> {
public:
    uniform_selector(const loss_config& loss, const selection_config& select, std::uint64_t seed)
        : detail::baseline_base<T>(loss, select), gen_(seed) {}

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

/// The K pairs with the largest loss (hard examples; the default) or the smallest loss
/// (the classic small-loss heuristic against noisy labels). Ties go to the lower index.
template <class T>
class loss_selector : public detail::baseline_base<T> {
public:
    loss_selector(const loss_config& loss, const selection_config& select, extreme which = extreme::largest)
        : detail::baseline_base<T>(loss, select), which_(which) {}

    decision<T> step(const pair_batch<T>& batch) {
        decision<T> d;
        step(batch, d);
        return d;
    }
    void step(const pair_batch<T>& batch, decision<T>& out) {
        this->run(batch, out, [this](const pair_stats<T>& stats, std::size_t k, std::vector<std::size_t>& selected) {
            const std::span<const T> values(stats.loss);
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

/// The K pairs with the smallest margin m = β h (the default: the pairs the policy ranks
/// worst, like the largest loss) or the largest margin. Ties go to the lower index.
template <class T>
class margin_selector : public detail::baseline_base<T> {
public:
    margin_selector(const loss_config& loss, const selection_config& select, extreme which = extreme::smallest)
        : detail::baseline_base<T>(loss, select), which_(which) {}

    decision<T> step(const pair_batch<T>& batch) {
        decision<T> d;
        step(batch, d);
        return d;
    }
    void step(const pair_batch<T>& batch, decision<T>& out) {
        this->run(batch, out, [this](const pair_stats<T>& stats, std::size_t k, std::vector<std::size_t>& selected) {
            const std::span<const T> values(stats.margin);
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

static_assert(batch_scheduler<full_batch<float>, float>,
              "sams::full_batch<T> must model sams::batch_scheduler (see docs/concepts.md)");
static_assert(batch_scheduler<uniform_selector<double>, double>,
              "sams::uniform_selector<T> must model sams::batch_scheduler (see docs/concepts.md)");
static_assert(batch_scheduler<loss_selector<float>, float>,
              "sams::loss_selector<T> must model sams::batch_scheduler (see docs/concepts.md)");
static_assert(batch_scheduler<margin_selector<double>, double>,
              "sams::margin_selector<T> must model sams::batch_scheduler (see docs/concepts.md)");

}  // namespace sams
