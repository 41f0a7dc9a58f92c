// The shipped preference losses (docs/losses.md), one struct per member of the family, each a model
// of sams::preference_loss; and visit_loss(), which turns a run-time loss_config into one.
// Formulas, derivatives and stability notes: docs/losses.md.
// Inside the accepted range (β, |log-prob|, lengths: sams/core/limits.hpp) every value and
// derivative is finite in float and double; evaluate_loss() refuses inputs outside it.
#pragma once

#include <cmath>
#include <concepts>
#include <cstdio>
#include <string>
#include <string_view>

#include <sams/core/error.hpp>
#include <sams/core/limits.hpp>
#include <sams/loss/concept.hpp>
#include <sams/loss/loss_config.hpp>
#include <sams/loss/stable_math.hpp>

namespace sams {
namespace detail {

/// "%g" with enough digits to tell 1e-9 from 0 (std::to_string prints both as 0.000000).
inline std::string number_text(double x) {
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%.9g", x);
    return buffer;
}

// Messages are built only on failure: validation runs on every evaluation and must not allocate.
/// β > 0 and within [limits::min_beta, limits::max_beta]: with every accepted log-prob
/// (|x| <= limits::max_abs_log_prob) every loss of the family is then finite in float.
inline void require_beta(double beta, const char* where) {
    require(std::isfinite(beta) && beta > 0.0, where,
            [&] { return "must be a finite number > 0, got " + number_text(beta); });
    require(beta >= limits::min_beta && beta <= limits::max_beta, where, [&] {
        return "must be in [" + number_text(limits::min_beta) + ", " + number_text(limits::max_beta) +
               "] (larger or smaller β overflows the margins), got " + number_text(beta);
    });
}
/// rDPO divides by 1 - 2ε: ε is kept at most limits::max_robust_flip_rate so that stays finite.
inline void require_flip_rate(double eps, const char* where) {
    require(eps <= limits::max_robust_flip_rate, where, [&] {
        return "must be at most " + number_text(limits::max_robust_flip_rate) +
               " for the robust loss (it divides by 1 - 2ε), got " + number_text(eps);
    });
}
/// SimPO's γ: finite and |γ| <= limits::max_abs_simpo_gamma (it is cast to float).
inline void require_gamma(double gamma, const char* where) {
    require(std::isfinite(gamma) && std::abs(gamma) <= limits::max_abs_simpo_gamma, where, [&] {
        return "must be finite with |γ| <= " + number_text(limits::max_abs_simpo_gamma) + ", got " +
               number_text(gamma);
    });
}

inline void require_smoothing(double eps, const char* where) {
    require(std::isfinite(eps) && eps >= 0.0 && eps < 0.5, where,
            [&] { return "must be in [0, 0.5), got " + number_text(eps); });
}

/// u_w = a_w - r_w and u_l = a_l - r_l.
template <class T>
struct log_ratios {
    T chosen;
    T rejected;
};

template <class T>
[[nodiscard]] inline log_ratios<T> log_ratios_of(const pair_input<T>& p) noexcept {
    return {p.policy_chosen - p.reference_chosen, p.policy_rejected - p.reference_rejected};
}

}  // namespace detail

/// DPO: ℓ = -log σ(βh), h = u_w - u_l. With label smoothing ε > 0 this is conservative DPO
/// (cDPO): ℓ = -(1-ε) log σ(βh) - ε log σ(-βh).
struct sigmoid_loss {
    double beta = 0.1;             ///< β > 0
    double label_smoothing = 0.0;  ///< ε in [0, 0.5)

    static constexpr std::string_view name = "sigmoid";
    [[nodiscard]] constexpr bool needs_reference() const noexcept { return true; }
    [[nodiscard]] constexpr bool needs_lengths() const noexcept { return false; }
    /// Throws sams::invalid_argument naming the offending field.
    void validate() const {
        detail::require_beta(beta, "sigmoid_loss.beta");
        detail::require_smoothing(label_smoothing, "sigmoid_loss.label_smoothing");
    }

    template <std::floating_point T>
    [[nodiscard]] pair_loss<T> operator()(const pair_input<T>& p) const noexcept {
        const T b = static_cast<T>(beta);
        const auto u = detail::log_ratios_of(p);
        const auto l = detail::smoothed_logistic(b * (u.chosen - u.rejected), static_cast<T>(label_smoothing));
        const T d = b * l.slope;  // ∂ℓ/∂h; ∂h/∂a_w = 1, ∂h/∂a_l = -1
        return {l.value, d, -d, b * u.chosen, b * u.rejected};
    }
};

/// Robust DPO (rDPO), unbiased under labels flipped with probability ε:
/// ℓ = [-(1-ε) log σ(βh) + ε log σ(-βh)] / (1-2ε). Unlike cDPO it is not bounded below:
/// it keeps pushing pairs it believes to be flipped.
struct robust_loss {
    double beta = 0.1;             ///< β > 0
    double label_smoothing = 0.0;  ///< ε in [0, 0.5), the assumed flip rate

    static constexpr std::string_view name = "robust";
    [[nodiscard]] constexpr bool needs_reference() const noexcept { return true; }
    [[nodiscard]] constexpr bool needs_lengths() const noexcept { return false; }
    /// Throws sams::invalid_argument naming the offending field.
    void validate() const {
        detail::require_beta(beta, "robust_loss.beta");
        detail::require_smoothing(label_smoothing, "robust_loss.label_smoothing");
        detail::require_flip_rate(label_smoothing, "robust_loss.label_smoothing");
    }

    template <std::floating_point T>
    [[nodiscard]] pair_loss<T> operator()(const pair_input<T>& p) const noexcept {
        const T b = static_cast<T>(beta);
        const T eps = static_cast<T>(label_smoothing);
        const T keep = T(1) - eps;
        const T scale = T(1) - T(2) * eps;
        const auto u = detail::log_ratios_of(p);
        const T z = b * (u.chosen - u.rejected);
        const T value = (keep * detail::softplus(-z) - eps * detail::softplus(z)) / scale;
        const T d = -b * (keep * detail::sigmoid(-z) + eps * detail::sigmoid(z)) / scale;
        return {value, d, -d, b * u.chosen, b * u.rejected};
    }
};

/// IPO: ℓ = (h - 1/(2β))². With length_normalize, h is replaced by h̄ = u_w/n_w - u_l/n_l
/// (what TRL does for IPO), and the implicit rewards become β u/n, as TRL logs them.
struct ipo_loss {
    double beta = 0.1;              ///< β > 0; the target margin is 1/(2β)
    bool length_normalize = false;  ///< use h̄ instead of h (then lengths are required)

    static constexpr std::string_view name = "ipo";
    [[nodiscard]] constexpr bool needs_reference() const noexcept { return true; }
    [[nodiscard]] constexpr bool needs_lengths() const noexcept { return length_normalize; }
    /// Throws sams::invalid_argument naming the offending field.
    void validate() const { detail::require_beta(beta, "ipo_loss.beta"); }

    template <std::floating_point T>
    [[nodiscard]] pair_loss<T> operator()(const pair_input<T>& p) const noexcept {
        const T b = static_cast<T>(beta);
        const auto u = detail::log_ratios_of(p);
        const T target = T(1) / (T(2) * b);
        if (length_normalize) {
            const T per_token_w = u.chosen / p.chosen_length;
            const T per_token_l = u.rejected / p.rejected_length;
            const T r = per_token_w - per_token_l - target;
            return {r * r, T(2) * r / p.chosen_length, -T(2) * r / p.rejected_length, b * per_token_w,
                    b * per_token_l};
        }
        const T r = (u.chosen - u.rejected) - target;
        return {r * r, T(2) * r, -T(2) * r, b * u.chosen, b * u.rejected};
    }
};

/// SLiC hinge: ℓ = max(0, 1 - βh). At the kink βh = 1 the derivative is taken as 0, the
/// subgradient PyTorch's relu'(0) = 0 gives, so a pair exactly at the margin is done.
struct hinge_loss {
    double beta = 0.1;  ///< β > 0; the margin is reached at h = 1/β

    static constexpr std::string_view name = "hinge";
    [[nodiscard]] constexpr bool needs_reference() const noexcept { return true; }
    [[nodiscard]] constexpr bool needs_lengths() const noexcept { return false; }
    /// Throws sams::invalid_argument naming the offending field.
    void validate() const { detail::require_beta(beta, "hinge_loss.beta"); }

    template <std::floating_point T>
    [[nodiscard]] pair_loss<T> operator()(const pair_input<T>& p) const noexcept {
        const T b = static_cast<T>(beta);
        const auto u = detail::log_ratios_of(p);
        // 1 - z is exact near z = 1 (Sterbenz), so "slack > 0" and "βh < 1" agree.
        const T slack = T(1) - b * (u.chosen - u.rejected);
        const bool active = slack > T(0);
        const T d = active ? -b : T(0);
        return {active ? slack : T(0), d, -d, b * u.chosen, b * u.rejected};
    }
};

/// Length-normalised DPO: ℓ = -log σ(β h̄), h̄ = u_w/n_w - u_l/n_l, with optional label
/// smoothing ε as in cDPO. Implicit rewards are β u/n, so the margin is the loss's own
/// argument β h̄ (β·u would be on a scale ~n times larger than the β was tuned for).
struct sigmoid_norm_loss {
    double beta = 0.1;             ///< β > 0
    double label_smoothing = 0.0;  ///< ε in [0, 0.5)

    static constexpr std::string_view name = "sigmoid_norm";
    [[nodiscard]] constexpr bool needs_reference() const noexcept { return true; }
    [[nodiscard]] constexpr bool needs_lengths() const noexcept { return true; }
    /// Throws sams::invalid_argument naming the offending field.
    void validate() const {
        detail::require_beta(beta, "sigmoid_norm_loss.beta");
        detail::require_smoothing(label_smoothing, "sigmoid_norm_loss.label_smoothing");
    }

    template <std::floating_point T>
    [[nodiscard]] pair_loss<T> operator()(const pair_input<T>& p) const noexcept {
        const T b = static_cast<T>(beta);
        const auto u = detail::log_ratios_of(p);
        const T per_token_w = u.chosen / p.chosen_length;
        const T per_token_l = u.rejected / p.rejected_length;
        const auto l = detail::smoothed_logistic(b * (per_token_w - per_token_l), static_cast<T>(label_smoothing));
        const T d = b * l.slope;  // ∂ℓ/∂h̄; ∂h̄/∂a_w = 1/n_w, ∂h̄/∂a_l = -1/n_l
        return {l.value, d / p.chosen_length, -d / p.rejected_length, b * per_token_w, b * per_token_l};
    }
};

/// SimPO (reference-free): ℓ = -log σ(β (a_w/n_w - a_l/n_l) - γ), with optional label
/// smoothing ε as TRL's CPO trainer applies it. Implicit rewards are β a/n, as TRL logs them.
struct simpo_loss {
    double beta = 0.1;             ///< β > 0
    double gamma = 0.5;            ///< γ, the target reward margin (finite)
    double label_smoothing = 0.0;  ///< ε in [0, 0.5)

    static constexpr std::string_view name = "simpo";
    [[nodiscard]] constexpr bool needs_reference() const noexcept { return false; }
    [[nodiscard]] constexpr bool needs_lengths() const noexcept { return true; }
    /// Throws sams::invalid_argument naming the offending field.
    void validate() const {
        detail::require_beta(beta, "simpo_loss.beta");
        detail::require_gamma(gamma, "simpo_loss.gamma");
        detail::require_smoothing(label_smoothing, "simpo_loss.label_smoothing");
    }

    template <std::floating_point T>
    [[nodiscard]] pair_loss<T> operator()(const pair_input<T>& p) const noexcept {
        const T b = static_cast<T>(beta);
        const T mean_w = p.policy_chosen / p.chosen_length;
        const T mean_l = p.policy_rejected / p.rejected_length;
        const auto l = detail::smoothed_logistic(b * (mean_w - mean_l) - static_cast<T>(gamma),
                                                 static_cast<T>(label_smoothing));
        const T d = b * l.slope;
        return {l.value, d / p.chosen_length, -d / p.rejected_length, b * mean_w, b * mean_l};
    }
};

/// NCA, pairwise form (as in TRL): ℓ = -log σ(ρ_w) - ½ log σ(-ρ_w) - ½ log σ(-ρ_l), with
/// ρ = β u. It scores each response on its own rather than only their difference, so it also
/// discourages lowering the chosen likelihood.
struct nca_pair_loss {
    double beta = 0.1;  ///< β > 0

    static constexpr std::string_view name = "nca_pair";
    [[nodiscard]] constexpr bool needs_reference() const noexcept { return true; }
    [[nodiscard]] constexpr bool needs_lengths() const noexcept { return false; }
    /// Throws sams::invalid_argument naming the offending field.
    void validate() const { detail::require_beta(beta, "nca_pair_loss.beta"); }

    template <std::floating_point T>
    [[nodiscard]] pair_loss<T> operator()(const pair_input<T>& p) const noexcept {
        const T b = static_cast<T>(beta);
        const auto u = detail::log_ratios_of(p);
        const T rho_w = b * u.chosen;
        const T rho_l = b * u.rejected;
        const T half = T(0.5);
        const T value = detail::softplus(-rho_w) + half * detail::softplus(rho_w) + half * detail::softplus(rho_l);
        const T d_w = b * (half * detail::sigmoid(rho_w) - detail::sigmoid(-rho_w));
        const T d_l = b * half * detail::sigmoid(rho_l);
        return {value, d_w, d_l, rho_w, rho_l};
    }
};

/// APO-zero (anchored preference optimisation, for chosen responses better than the policy's
/// own): ℓ = (1 - σ(ρ_w)) + σ(ρ_l), ρ = β u. Bounded in [0, 2]; the gradient vanishes in both
/// tails.
struct apo_zero_loss {
    double beta = 0.1;  ///< β > 0

    static constexpr std::string_view name = "apo_zero";
    [[nodiscard]] constexpr bool needs_reference() const noexcept { return true; }
    [[nodiscard]] constexpr bool needs_lengths() const noexcept { return false; }
    /// Throws sams::invalid_argument naming the offending field.
    void validate() const { detail::require_beta(beta, "apo_zero_loss.beta"); }

    template <std::floating_point T>
    [[nodiscard]] pair_loss<T> operator()(const pair_input<T>& p) const noexcept {
        const T b = static_cast<T>(beta);
        const auto u = detail::log_ratios_of(p);
        const T rho_w = b * u.chosen;
        const T rho_l = b * u.rejected;
        // 1 - σ(x) is formed as σ(-x): no cancellation when σ(x) is close to 1.
        const T miss_w = detail::sigmoid(-rho_w);
        const T hit_l = detail::sigmoid(rho_l);
        return {miss_w + hit_l, -b * detail::sigmoid(rho_w) * miss_w, b * hit_l * detail::sigmoid(-rho_l), rho_w,
                rho_l};
    }
};

/// SPPO with hard labels (as in TRL): ℓ = (u_w - 1/(2β))² + (u_l + 1/(2β))², which pulls
/// each log-ratio to its own target instead of only their difference.
struct sppo_hard_loss {
    double beta = 0.1;  ///< β > 0

    static constexpr std::string_view name = "sppo_hard";
    [[nodiscard]] constexpr bool needs_reference() const noexcept { return true; }
    [[nodiscard]] constexpr bool needs_lengths() const noexcept { return false; }
    /// Throws sams::invalid_argument naming the offending field.
    void validate() const { detail::require_beta(beta, "sppo_hard_loss.beta"); }

    template <std::floating_point T>
    [[nodiscard]] pair_loss<T> operator()(const pair_input<T>& p) const noexcept {
        const T b = static_cast<T>(beta);
        const auto u = detail::log_ratios_of(p);
        const T target = T(1) / (T(2) * b);
        const T r_w = u.chosen - target;
        const T r_l = u.rejected + target;
        return {r_w * r_w + r_l * r_l, T(2) * r_w, T(2) * r_l, b * u.chosen, b * u.rejected};
    }
};

static_assert(preference_loss<sigmoid_loss, float> && preference_loss<sigmoid_loss, double>);
static_assert(preference_loss<robust_loss, float> && preference_loss<robust_loss, double>);
static_assert(preference_loss<ipo_loss, float> && preference_loss<ipo_loss, double>);
static_assert(preference_loss<hinge_loss, float> && preference_loss<hinge_loss, double>);
static_assert(preference_loss<sigmoid_norm_loss, float> && preference_loss<sigmoid_norm_loss, double>);
static_assert(preference_loss<simpo_loss, float> && preference_loss<simpo_loss, double>);
static_assert(preference_loss<nca_pair_loss, float> && preference_loss<nca_pair_loss, double>);
static_assert(preference_loss<apo_zero_loss, float> && preference_loss<apo_zero_loss, double>);
static_assert(preference_loss<sppo_hard_loss, float> && preference_loss<sppo_hard_loss, double>);

/// The name of a loss kind as written in docs/losses.md ("sigmoid", "simpo", …).
[[nodiscard]] constexpr std::string_view loss_name(loss_kind kind) noexcept {
    switch (kind) {
        case loss_kind::sigmoid: return sigmoid_loss::name;
        case loss_kind::robust: return robust_loss::name;
        case loss_kind::ipo: return ipo_loss::name;
        case loss_kind::hinge: return hinge_loss::name;
        case loss_kind::sigmoid_norm: return sigmoid_norm_loss::name;
        case loss_kind::simpo: return simpo_loss::name;
        case loss_kind::nca_pair: return nca_pair_loss::name;
        case loss_kind::apo_zero: return apo_zero_loss::name;
        case loss_kind::sppo_hard: return sppo_hard_loss::name;
    }
    return "unknown";
}

/// Builds the loss struct that `config` describes and returns `f(loss)`. One switch per call,
/// so a loop inside `f` runs on the concrete type with nothing virtual in it. Every branch of
/// `f` must return the same type. Does not validate the parameters (config.validate() does);
/// throws sams::invalid_argument for a kind outside the enumeration.
template <class F>
decltype(auto) visit_loss(const loss_config& config, F&& f) {
    switch (config.kind) {
        case loss_kind::sigmoid: return f(sigmoid_loss{config.beta, config.label_smoothing});
        case loss_kind::robust: return f(robust_loss{config.beta, config.label_smoothing});
        case loss_kind::ipo: return f(ipo_loss{config.beta, config.length_normalize});
        case loss_kind::hinge: return f(hinge_loss{config.beta});
        case loss_kind::sigmoid_norm: return f(sigmoid_norm_loss{config.beta, config.label_smoothing});
        case loss_kind::simpo: return f(simpo_loss{config.beta, config.simpo_gamma, config.label_smoothing});
        case loss_kind::nca_pair: return f(nca_pair_loss{config.beta});
        case loss_kind::apo_zero: return f(apo_zero_loss{config.beta});
        case loss_kind::sppo_hard: return f(sppo_hard_loss{config.beta});
    }
    detail::fail({"loss_config", "kind"}, "must be one of the loss_kind enumerators, got " +
                                              std::to_string(static_cast<int>(config.kind)));
}

}  // namespace sams
