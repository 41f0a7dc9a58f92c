// Shared by every scheduler: turns per-pair loss results and a chosen subset into the
// decision handed back to the host (SPEC §8): mask, weights, weighted gradients, metrics.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include <sams/core/config.hpp>
#include <sams/core/decision.hpp>
#include <sams/core/error.hpp>
#include <sams/loss/pair_stats.hpp>
#include <sams/reward/progress.hpp>

namespace sams::detail {

/// Throws sams::invalid_argument unless `stats` holds B > 0 pairs in vectors of one length
/// and `selected` is strictly ascending with indices < B.
template <class T>
void check_decision_inputs(const pair_stats<T>& stats, std::span<const std::size_t> selected, const char* where) {
    const std::size_t b = stats.loss.size();
    require(b > 0, where, "stats must hold at least one pair");
    for (const auto* v : {&stats.d_policy_chosen, &stats.d_policy_rejected, &stats.chosen_reward,
                          &stats.rejected_reward, &stats.margin})
        require(v->size() == b, where, [&] { return "every per-pair vector of stats must have length " + std::to_string(b); });
    for (std::size_t j = 0; j < selected.size(); ++j) {
        require(selected[j] < b, where, [&] { return "selected index " + std::to_string(selected[j]) + " is out of range"; });
        require(j == 0 || selected[j - 1] < selected[j], where, "selected must be strictly ascending");
    }
}

/// fill_decision once its inputs are checked and the progress metric is known.
template <class T>
void fill_checked_decision(const pair_stats<T>& stats, std::span<const std::size_t> selected,
                           weight_scaling scaling, double progress, decision<T>& d) {
    const std::size_t b = stats.loss.size();
    const std::size_t k = selected.size();
    const double denominator = static_cast<double>(scaling == weight_scaling::per_batch ? b : k);
    const T w = k == 0 ? T(0) : static_cast<T>(1.0 / denominator);

    d.selected.assign(selected.begin(), selected.end());
    d.mask.assign(b, std::uint8_t{0});
    d.weight.assign(b, T(0));
    d.loss.assign(stats.loss.begin(), stats.loss.end());
    d.d_policy_chosen.assign(b, T(0));
    d.d_policy_rejected.assign(b, T(0));
    double selected_loss = 0.0;
    for (const std::size_t i : selected) {
        d.mask[i] = 1;
        d.weight[i] = w;
        d.d_policy_chosen[i] = w * stats.d_policy_chosen[i];
        d.d_policy_rejected[i] = w * stats.d_policy_rejected[i];
        selected_loss += static_cast<double>(w) * static_cast<double>(stats.loss[i]);
    }

    double loss = 0.0, correct = 0.0, margin = 0.0, chosen = 0.0, rejected = 0.0;
    for (std::size_t i = 0; i < b; ++i) {
        loss += static_cast<double>(stats.loss[i]);
        correct += stats.margin[i] > T(0) ? 1.0 : 0.0;
        margin += static_cast<double>(stats.margin[i]);
        chosen += static_cast<double>(stats.chosen_reward[i]);
        rejected += static_cast<double>(stats.rejected_reward[i]);
    }
    const auto n = static_cast<double>(b);
    auto& m = d.metrics;
    m.batch_loss = loss / n;
    m.selected_loss = selected_loss;
    m.progress = progress;
    m.reward_accuracy = correct / n;
    m.mean_margin = margin / n;
    m.chosen_reward = chosen / n;
    m.rejected_reward = rejected / n;
}

/// Fills `d` from `stats` (B pairs) and `selected` (strictly ascending indices < B):
/// selected, mask, weight (1/K or 1/B on selected rows, 0 elsewhere), loss,
/// d_policy_chosen/rejected = w_i ∂ℓ_i/∂a, and metrics batch_loss, selected_loss = Σ w ℓ,
/// progress = mean σ(-m), reward_accuracy, mean_margin, chosen/rejected reward (means
/// over the whole batch, recomputed in double). Leaves d.score and every other metric
/// alone. Checks `selected` and the margins before writing anything; reuses d's buffers.
template <class T>
void fill_decision(const pair_stats<T>& stats, std::span<const std::size_t> selected, weight_scaling scaling,
                   decision<T>& d) {
    check_decision_inputs(stats, selected, "sams::detail::fill_decision");
    // Also rejects a NaN/Inf margin, before d is touched.
    const double progress = progress_metric(std::span<const T>(stats.margin));
    fill_checked_decision(stats, selected, scaling, progress, d);
}

/// As the overload above, with `progress` already computed as progress_metric(stats.margin)
/// (the scheduler needs it before filling, and computes it once per step).
template <class T>
void fill_decision(const pair_stats<T>& stats, std::span<const std::size_t> selected, weight_scaling scaling,
                   double progress, decision<T>& d) {
    check_decision_inputs(stats, selected, "sams::detail::fill_decision");
    fill_checked_decision(stats, selected, scaling, progress, d);
}

}  // namespace sams::detail
