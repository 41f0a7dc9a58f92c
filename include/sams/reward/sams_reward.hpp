// The default lagged reward of SamS (docs/algorithm.md): a batch term from the relative change of
// the progress metric, optionally smoothed by its running mean, and a per-pair sample term
// from min-max normalised margin and chosen log-prob.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include <sams/core/error.hpp>
#include <sams/core/limits.hpp>
#include <sams/core/views.hpp>
#include <sams/loss/stable_math.hpp>
#include <sams/reward/progress.hpp>
#include <sams/reward/reward_config.hpp>
#include <sams/reward/reward_function.hpp>

namespace sams {
namespace detail {

/// Min-max normalisation to [0, 1] over a batch; a constant batch maps to 0.5 (the public
/// code divides by zero there, docs/algorithm.md).
class min_max_normalizer {
public:
    /// Scans value(0) … value(n-1).
    template <class Value>
    min_max_normalizer(std::size_t n, Value value) {
        for (std::size_t i = 0; i < n; ++i) {
            const double v = value(i);
            lo_ = i == 0 ? v : std::min(lo_, v);
            hi_ = i == 0 ? v : std::max(hi_, v);
        }
        // Halving is exact away from subnormals and keeps hi - lo finite for any finite input.
        if (!std::isfinite(hi_ - lo_)) factor_ = 0.5;
    }

    [[nodiscard]] double operator()(double v) const noexcept {
        if (hi_ == lo_) return 0.5;
        return (v * factor_ - lo_ * factor_) / (hi_ * factor_ - lo_ * factor_);
    }

private:
    double lo_ = 0.0;
    double hi_ = 0.0;
    double factor_ = 1.0;
};

}  // namespace detail

/// SamS's reward (docs/algorithm.md), configured by reward_config. For the rows of batch t-1:
///
///     Δ_t  = (L_{t-1} - L_t) / max(L_{t-1}, L_t, 1e-12)            (> 0: progress)
///     Δ'_t = λ A + (1-λ) Δ_t   with smoothing, else Δ_t
///     s_i  = ½ m̃_i + ½ (1 - p̃_i) [+ r̃_i]
///     add:    y_i = α σ(a Δ'_t + b) + (1-α) σ(s_i)     (reference_compat: σ(σ(s_i)))
///     weight: y_i = 10 σ(Δ'_t) s_i
///
/// A is the plain mean of every raw Δ observed before this call (the running mean is
/// updated with Δ_t only after Δ'_t is formed). With no history yet (first call, or after
/// a reset) there is nothing to smooth towards, so Δ'_t = Δ_t. A is kept up to date even
/// when smoothing is off, so the setting can be switched on a resumed run.
///
/// m̃, p̃, r̃ are min-max normalised over the whole previous batch (not only the rewarded
/// rows); a constant batch normalises to 0.5. p is a_w, or a_w / n_w with
/// length_normalized_chosen. reference_compat changes only the add mode's sample term.
class sams_reward {
public:
    /// Everything that changes between calls; restored by set_state() on resume.
    struct state_type {
        double running_mean = 0.0;          ///< A: mean of all raw Δ observed so far
        std::uint64_t observations = 0;     ///< how many Δ went into A
        double last_delta = 0.0;            ///< Δ_t of the last call (0 before the first)
        double last_smoothed_delta = 0.0;   ///< Δ'_t of the last call (0 before the first)
    };

    /// Throws sams::invalid_argument if a field of `config` is out of range.
    explicit sams_reward(const reward_config& config = {}) : config_(config) {
        config.validate("sams_reward: reward_config");
    }

    /// Δ = (previous - current) / max(previous, current, 1e-12): the relative decrease of
    /// the progress metric.
    [[nodiscard]] static double batch_delta(double previous, double current) noexcept {
        return (previous - current) / std::max({previous, current, 1e-12});
    }

    /// Writes the target of row in.selected[j] to out[j], then folds Δ_t into the running
    /// mean. Validates every input first; on a throw nothing has changed.
    template <class T>
    void targets(const reward_inputs<T>& in, std::span<T> out) {
        validate(in, out);

        const double delta = batch_delta(in.previous_progress, in.current_progress);
        const double lambda = config_.smoothing_lambda;
        const double smoothed = config_.smoothing && state_.observations > 0
                                    ? lambda * state_.running_mean + (1.0 - lambda) * delta
                                    : delta;

        const bool per_token = config_.length_normalized_chosen;
        const auto margin = [&](std::size_t i) { return static_cast<double>(in.margin[i]); };
        const auto chosen = [&](std::size_t i) {
            const auto a_w = static_cast<double>(in.policy_chosen[i]);
            return per_token ? a_w / static_cast<double>(in.chosen_length[i]) : a_w;
        };
        const auto reward = [&](std::size_t i) { return static_cast<double>(in.chosen_reward[i]); };
        const std::size_t b = in.batch_size();
        const detail::min_max_normalizer norm_margin(b, margin);
        const detail::min_max_normalizer norm_chosen(b, chosen);
        const detail::min_max_normalizer norm_reward(config_.chosen_reward_term ? b : 0, reward);

        const double batch_term = detail::sigmoid(config_.a * smoothed + config_.b);
        const double weight_term = 10.0 * detail::sigmoid(smoothed);
        for (std::size_t j = 0; j < in.selected.size(); ++j) {
            const std::size_t i = in.selected[j];
            double s = 0.5 * norm_margin(margin(i)) + 0.5 * (1.0 - norm_chosen(chosen(i)));
            if (config_.chosen_reward_term) s += norm_reward(reward(i));
            double y = 0.0;
            if (config_.mode == reward_mode::add) {
                double sample_term = detail::sigmoid(s);
                if (config_.reference_compat) sample_term = detail::sigmoid(sample_term);
                y = config_.alpha * batch_term + (1.0 - config_.alpha) * sample_term;
            } else {
                y = weight_term * s;
            }
            out[j] = static_cast<T>(y);
        }

        state_.observations += 1;
        state_.running_mean += (delta - state_.running_mean) / static_cast<double>(state_.observations);
        state_.last_delta = delta;
        state_.last_smoothed_delta = smoothed;
    }

    /// Δ_t of the last call (0 before the first).
    [[nodiscard]] double last_delta() const noexcept { return state_.last_delta; }
    /// Δ'_t of the last call: the value the batch term used (0 before the first).
    [[nodiscard]] double last_smoothed_delta() const noexcept { return state_.last_smoothed_delta; }
    /// A, the mean of all raw Δ observed so far.
    [[nodiscard]] double running_mean() const noexcept { return state_.running_mean; }
    [[nodiscard]] std::uint64_t observations() const noexcept { return state_.observations; }
    [[nodiscard]] const reward_config& config() const noexcept { return config_; }

    [[nodiscard]] state_type state() const noexcept { return state_; }
    /// Restores a state from state(); throws sams::invalid_argument on NaN/Inf fields.
    void set_state(const state_type& s) {
        detail::require(std::isfinite(s.running_mean) && std::isfinite(s.last_delta) &&
                            std::isfinite(s.last_smoothed_delta),
                        "sams_reward::set_state", "state fields must be finite");
        state_ = s;
    }

private:
    template <class T>
    void validate(const reward_inputs<T>& in, std::span<T> out) const {
        using detail::check_span;
        using detail::require;
        constexpr const char* where = "sams_reward::targets";
        const std::size_t b = in.margin.size();
        require(b > 0, where, "inputs.margin must not be empty (the previous batch has no pairs)");
        check_span(in.margin, b, true, where, "inputs.margin");
        check_span(in.policy_chosen, b, true, where, "inputs.policy_chosen");
        check_span(in.chosen_length, b, config_.length_normalized_chosen, where, "inputs.chosen_length");
        if (config_.length_normalized_chosen) {
            for (const T& n : in.chosen_length)
                require(n > T(0) && double(n) >= limits::min_length, where,
                        "inputs.chosen_length must be >= 1 (a token count) with length_normalized_chosen");
        }
        check_span(in.chosen_reward, b, config_.chosen_reward_term, where, "inputs.chosen_reward");
        for (const std::size_t i : in.selected)
            require(i < b, where, [&] {
                return "inputs.selected holds index " + std::to_string(i) + ", expected < the previous batch size " +
                       std::to_string(b);
            });
        require(out.size() == in.selected.size(), where, [&] {
            return "out has length " + std::to_string(out.size()) + ", expected inputs.selected.size() = " +
                   std::to_string(in.selected.size());
        });
        require(std::isfinite(in.previous_progress) && in.previous_progress >= 0.0, where,
                "inputs.previous_progress must be finite and >= 0");
        require(std::isfinite(in.current_progress) && in.current_progress >= 0.0, where,
                "inputs.current_progress must be finite and >= 0");
    }

    reward_config config_;
    state_type state_{};
};

static_assert(reward_function<sams_reward, float>,
              "sams_reward must model sams::reward_function<R, float> (see docs/concepts.md)");
static_assert(reward_function<sams_reward, double>,
              "sams_reward must model sams::reward_function<R, double> (see docs/concepts.md)");

}  // namespace sams
