// The label-noise estimate of guided selection. A flipped label swaps chosen and rejected, so
// it negates the pair's gradient of h = log π(y_w) − log π(y_l) and with it the pair's
// agreement with the trusted direction. If the training pairs' clean twins agree with the
// trusted direction as much as the trusted pairs themselves do (mean μ, measured on the
// trusted set leave-one-out), a batch with a share η of flipped labels has mean agreement
// (1 − 2η)·μ. noise_estimator turns that into η̂ = ½(1 − c̄/μ) with exponentially weighted
// sums over recent steps, and a standard error from the per-step spread.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

namespace sams {

/// What the estimator reports after a step.
struct noise_estimate {
    double rate = 0.0;            ///< η̂, clamped to [0, ½]
    double standard_error = 0.0;  ///< of η̂ (infinite until two steps have been seen)
    double effective_steps = 0.0; ///< Σ weights of the steps behind the estimate
};

/// Exponentially weighted moment estimator of the flipped share. All of its state is the
/// five sums below (checkpoints store them).
class noise_estimator {
public:
    struct state_type {
        double weight = 0.0;     ///< Σ λ^age
        double batch = 0.0;      ///< Σ λ^age · c̄_t        (mean agreement of batch t)
        double trusted = 0.0;    ///< Σ λ^age · μ_t        (clean agreement in force at t)
        double gap = 0.0;        ///< Σ λ^age · (μ_t − c̄_t)
        double gap_square = 0.0; ///< Σ λ^age · (μ_t − c̄_t)²
        friend bool operator==(const state_type&, const state_type&) = default;
    };

    /// @param horizon steps over which past batches fade (λ = 1 − 1/horizon); ≥ 1
    explicit noise_estimator(double horizon = 64.0) : decay_(1.0 - 1.0 / std::max(horizon, 1.0)) {}

    /// Adds one batch: its mean agreement c̄ and the trusted set's clean mean agreement μ.
    void add(double batch_mean, double clean_mean) noexcept {
        state_type& s = state_;
        s.weight = decay_ * s.weight + 1.0;
        s.batch = decay_ * s.batch + batch_mean;
        s.trusted = decay_ * s.trusted + clean_mean;
        const double g = clean_mean - batch_mean;
        s.gap = decay_ * s.gap + g;
        s.gap_square = decay_ * s.gap_square + g * g;
    }

    [[nodiscard]] noise_estimate estimate() const noexcept {
        const state_type& s = state_;
        noise_estimate e;
        e.effective_steps = s.weight;
        if (!(s.weight > 0.0) || !(s.trusted > 0.0)) {
            e.standard_error = INFINITY;
            return e;
        }
        e.rate = std::clamp(0.5 * s.gap / s.trusted, 0.0, 0.5);
        if (s.weight < 1.5) {  // one step: no spread yet
            e.standard_error = INFINITY;
            return e;
        }
        // The spread of the per-step gaps around their mean, over n_eff = Σw steps.
        const double mean_gap = s.gap / s.weight;
        const double var = std::max(s.gap_square / s.weight - mean_gap * mean_gap, 0.0) * s.weight / (s.weight - 1.0);
        e.standard_error = 0.5 * std::sqrt(var / s.weight) / (s.trusted / s.weight);
        return e;
    }

    [[nodiscard]] const state_type& state() const noexcept { return state_; }
    void set_state(const state_type& s) noexcept { state_ = s; }

private:
    double decay_;
    state_type state_{};
};

}  // namespace sams
