// The selection that waits one step for its reward: sams_scheduler rewards the pairs it
// selected at step t-1 with the progress measured at step t, so it keeps what the reward
// and the lagged update need about them (docs/algorithm.md, "lagged update").
#pragma once

#include <cstddef>
#include <span>
#include <vector>

#include <sams/backend/concept.hpp>
#include <sams/core/views.hpp>
#include <sams/loss/pair_stats.hpp>
#include <sams/reward/reward_function.hpp>

namespace sams {

/// The previous batch's selection: its per-pair statistics over the whole batch (what a
/// reward function reads), the selected rows' contexts and φ as they were scored, and f1's
/// score of each selected row. A plain aggregate: the scheduler owns it and its checkpoint
/// stores every member.
template <backend Backend>
struct pending_selection {
    using value_type = backend_value_t<Backend>;
    using T = value_type;
    using matrix = backend_matrix_t<Backend>;

    bool active = false;               ///< false until the first step, true from then on
    double progress = 0.0;             ///< L_{t-1}, the progress metric of the pending batch
    std::vector<std::size_t> selected; ///< selected rows of the pending batch, ascending
    std::vector<T> margin, policy_chosen, chosen_length, chosen_reward;  ///< whole batch
    std::vector<T> exploit_score;      ///< f1 of each selected row when it was scored
    matrix contexts, features;         ///< the selected rows' contexts and φ (backend storage)

    [[nodiscard]] std::size_t size() const noexcept { return selected.size(); }

    /// Keeps the selection `chosen` of `batch`: statistics from `stats`, f1 scores from
    /// `f1` (one per pair), contexts and φ from the scored batch's backend rows.
    void keep(Backend& be, const pair_batch<T>& batch, const pair_stats<T>& stats, std::span<const std::size_t> chosen,
              std::span<const T> f1, const matrix& batch_contexts, const matrix& batch_features,
              double batch_progress) {
        progress = batch_progress;
        selected.assign(chosen.begin(), chosen.end());
        margin.assign(stats.margin.begin(), stats.margin.end());
        policy_chosen.assign(batch.policy_chosen.begin(), batch.policy_chosen.end());
        chosen_length.assign(batch.chosen_length.begin(), batch.chosen_length.end());
        chosen_reward.assign(stats.chosen_reward.begin(), stats.chosen_reward.end());
        exploit_score.resize(chosen.size());
        for (std::size_t i = 0; i < chosen.size(); ++i) exploit_score[i] = f1[chosen[i]];
        be.gather_rows(batch_contexts, chosen, contexts);
        be.gather_rows(batch_features, chosen, features);
        active = true;
    }

    /// What the reward function reads to reward the pending rows at a step whose progress
    /// is `current_progress`. The spans view this object's vectors.
    [[nodiscard]] reward_inputs<T> inputs(double current_progress) const noexcept {
        reward_inputs<T> in;
        in.margin = margin;
        in.policy_chosen = policy_chosen;
        in.chosen_length = chosen_length;
        in.chosen_reward = chosen_reward;
        in.selected = selected;
        in.previous_progress = progress;
        in.current_progress = current_progress;
        return in;
    }
};

}  // namespace sams
