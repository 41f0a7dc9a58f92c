// Per-pair results of a preference loss over a batch, and their batch means as a DPO
// trainer logs them.
#pragma once

#include <cstddef>
#include <vector>

namespace sams {

/// Batch means, named as TRL logs them (loss, rewards/accuracies, rewards/margins, …).
struct batch_summary {
    double loss = 0.0;             ///< mean ℓ_i
    double accuracy = 0.0;         ///< mean 1[m_i > 0]
    double margin = 0.0;           ///< mean m_i
    double chosen_reward = 0.0;    ///< mean chosen implicit reward
    double rejected_reward = 0.0;  ///< mean rejected implicit reward
};

/// Per-pair loss values and exact derivatives for a batch of B pairs (docs/concepts.md, docs/losses.md).
template <class T>
struct pair_stats {
    std::vector<T> loss;               ///< ℓ_i
    std::vector<T> d_policy_chosen;    ///< ∂ℓ_i/∂a_w,i
    std::vector<T> d_policy_rejected;  ///< ∂ℓ_i/∂a_l,i
    std::vector<T> chosen_reward;      ///< implicit reward of the chosen response (β u_w; β u_w/n_w if length-normalised; docs/losses.md)
    std::vector<T> rejected_reward;    ///< implicit reward of the rejected response
    std::vector<T> margin;             ///< m_i = chosen_reward - rejected_reward
    batch_summary summary{};

    [[nodiscard]] std::size_t size() const noexcept { return loss.size(); }
    /// Resizes every per-pair vector to n (keeps capacity, so steady-state calls allocate nothing).
    void resize(std::size_t n) {
        for (auto* v : {&loss, &d_policy_chosen, &d_policy_rejected, &chosen_reward, &rejected_reward, &margin})
            v->resize(n);
    }
};

}  // namespace sams
