// What one scheduler step hands back to the host (SPEC §8).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace sams {

/// Per-step diagnostics, as a trainer would log them. Fields that a scheduler does not
/// produce (e.g. network MSE for a baseline) stay at their defaults.
struct step_metrics {
    std::size_t step = 0;             ///< 0-based index of the step that produced this decision
    double batch_loss = 0.0;          ///< mean ℓ over the whole batch
    double selected_loss = 0.0;       ///< Σ w_i ℓ_i, the loss the host trains on
    double progress = 0.0;            ///< L_t = mean σ(-m_i), the mis-ranking probability (SPEC §5)
    double progress_delta = 0.0;      ///< Δ_t, relative progress since the previous batch (0 on the first step)
    double reward_accuracy = 0.0;     ///< mean 1[m_i > 0]
    double mean_margin = 0.0;         ///< mean m_i
    double chosen_reward = 0.0;       ///< mean β u_w
    double rejected_reward = 0.0;     ///< mean β u_l
    double exploit_mse = 0.0;         ///< f1 training MSE of this step's update (last step run)
    double explore_mse = 0.0;         ///< f2 training MSE of this step's update
    double mean_target = 0.0;         ///< mean reward target y of the rows rewarded this step
    double score_spread = 0.0;        ///< standard deviation of the scores u_i over the batch
    double selection_entropy = 0.0;   ///< entropy (nats) of softmax(u/τ) over the batch
    std::size_t pool_size = 0;        ///< rows in the replay pool
    std::size_t pool_capacity = 0;
    std::size_t trained_rows = 0;     ///< rows f1/f2 trained on this step (0: no update)
    bool warmup = false;              ///< selection was uniform random (warm-up)
    double estimated_noise = 0.0;     ///< guided: fitted share of flipped labels (0 until fitted)
    double mean_agreement = 0.0;      ///< guided: mean cosine of the batch's sketches with the trusted direction
    std::size_t dropped = 0;          ///< guided: pairs of the batch not trained on
};

/// The scheduler's answer for one batch of B pairs.
template <class T>
struct decision {
    std::vector<std::size_t> selected;   ///< indices of the K pairs to train on, ascending
    std::vector<std::uint8_t> mask;      ///< B entries, 1 for selected pairs
    std::vector<T> weight;               ///< B loss weights w_i (1/K or 1/B for selected, 0 otherwise)
    std::vector<T> loss;                 ///< B per-pair losses ℓ_i
    std::vector<T> d_policy_chosen;      ///< B values of ∂(Σ w_j ℓ_j)/∂a_w,i
    std::vector<T> d_policy_rejected;    ///< B values of ∂(Σ w_j ℓ_j)/∂a_l,i
    std::vector<T> score;                ///< B scheduler scores u_i (empty for baselines without scores)
    step_metrics metrics{};
};

}  // namespace sams
