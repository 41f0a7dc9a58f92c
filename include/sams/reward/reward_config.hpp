// The configuration of the lagged reward (docs/algorithm.md, "reward"): how progress and
// the sample term combine into a target. Validates itself; scheduler_config composes it.
#pragma once

#include <cmath>
#include <string>

#include <sams/core/error.hpp>

namespace sams {

enum class reward_mode {
    add,     ///< y = α σ(a Δ' + b) + (1-α) σ(s)
    weight,  ///< y = 10 σ(Δ') s
};

/// The lagged reward.
struct reward_config {
    reward_mode mode = reward_mode::add;
    double a = 50.0;
    double b = 0.5;
    double alpha = 0.5;
    bool smoothing = true;  ///< Δ' = λ A + (1-λ) Δ with A the running mean of Δ
    double smoothing_lambda = 0.5;
    bool length_normalized_chosen = false;  ///< sample term uses a_w / n_w instead of a_w
    bool chosen_reward_term = false;        ///< add the normalised chosen implicit reward to s
    bool reference_compat =
        false;  ///< reproduce the public code: σ applied twice to s, stale f2 pool targets

    /// Throws sams::invalid_argument naming the first bad field as "<scope>.<field>".
    void validate(const char* scope = "reward_config") const {
        using detail::require;
        require(mode == reward_mode::add || mode == reward_mode::weight, {scope, "mode"},
                "must be add or weight");
        require(std::isfinite(a), {scope, "a"}, "must be finite");
        require(std::isfinite(b), {scope, "b"}, "must be finite");
        require(std::isfinite(alpha) && alpha >= 0.0 && alpha <= 1.0, {scope, "alpha"},
                [&] { return "must be in [0, 1], got " + std::to_string(alpha); });
        require(std::isfinite(smoothing_lambda) && smoothing_lambda >= 0.0 && smoothing_lambda < 1.0,
                {scope, "smoothing_lambda"},
                [&] { return "must be in [0, 1), got " + std::to_string(smoothing_lambda); });
    }
    friend bool operator==(const reward_config&, const reward_config&) = default;
};

}  // namespace sams
