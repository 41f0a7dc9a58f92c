// Run-time choice of a preference loss (docs/losses.md): which member of the family and its
// parameters. evaluate_loss() (sams/loss/evaluate.hpp) dispatches on it.
#pragma once

#include <cmath>
#include <cstdio>
#include <string>

#include <sams/core/error.hpp>
#include <sams/core/limits.hpp>

namespace sams {

/// The shipped members of the preference-loss family. See docs/losses.md for formulas.
enum class loss_kind {
    sigmoid,       ///< DPO: -log σ(βh); with label_smoothing ε > 0 this is cDPO
    robust,        ///< rDPO: [-(1-ε) log σ(βh) + ε log σ(-βh)] / (1-2ε)
    ipo,           ///< IPO: (h - 1/(2β))², h length-normalised when length_normalize is set
    hinge,         ///< SLiC: max(0, 1 - βh)
    sigmoid_norm,  ///< -log σ(β h̄), h̄ = u_w/n_w - u_l/n_l
    simpo,         ///< reference-free: -log σ(β (a_w/n_w - a_l/n_l) - γ)
    nca_pair,      ///< NCA (pairwise): -log σ(ρ_w) - ½ log σ(-ρ_w) - ½ log σ(-ρ_l), ρ = β u
    apo_zero,      ///< APO-zero: (1 - σ(ρ_w)) + σ(ρ_l)
    sppo_hard,     ///< SPPO (hard labels): (u_w - 1/(2β))² + (u_l + 1/(2β))²
};

struct loss_config {
    loss_kind kind = loss_kind::sigmoid;
    double beta = 0.1;             ///< β > 0
    /// ε in [0, 0.5): label smoothing of sigmoid (cDPO), sigmoid_norm and simpo; the assumed
    /// flip rate of robust; ignored by the other kinds.
    double label_smoothing = 0.0;
    double simpo_gamma = 0.5;      ///< γ, SimPO's target reward margin
    bool length_normalize = false; ///< IPO only: use h̄ instead of h

    /// True when the loss reads reference log-probs r_w, r_l.
    [[nodiscard]] constexpr bool needs_reference() const noexcept { return kind != loss_kind::simpo; }
    /// True when the loss reads response lengths n_w, n_l.
    [[nodiscard]] constexpr bool needs_lengths() const noexcept {
        return kind == loss_kind::sigmoid_norm || kind == loss_kind::simpo ||
               (kind == loss_kind::ipo && length_normalize);
    }

    /// Throws sams::invalid_argument naming the first bad field as "<scope>.<field>".
    /// Messages are built only on failure, so validating on every evaluation allocates nothing.
    void validate(const char* scope = "loss_config") const {
        using detail::require;
        require(kind >= loss_kind::sigmoid && kind <= loss_kind::sppo_hard, {scope, "kind"}, [&] {
            return "must be one of the loss_kind enumerators, got " + std::to_string(static_cast<int>(kind));
        });
        require(std::isfinite(beta) && beta > 0.0, {scope, "beta"},
                [&] { return "must be a finite number > 0, got " + std::to_string(beta); });
        // A β outside this range overflows the margins β·h (or IPO's target 1/(2β)) in float.
        require(beta >= limits::min_beta && beta <= limits::max_beta, {scope, "beta"}, [&] {
            char text[32];
            std::snprintf(text, sizeof text, "%.9g", beta);
            return std::string("must be in [1e-6, 1e6], got ") + text;
        });
        require(std::isfinite(label_smoothing) && label_smoothing >= 0.0 && label_smoothing < 0.5,
                {scope, "label_smoothing"},
                [&] { return "must be in [0, 0.5), got " + std::to_string(label_smoothing); });
        require(kind != loss_kind::robust || label_smoothing <= limits::max_robust_flip_rate, {scope, "label_smoothing"},
                [&] {
                    return "must be at most 0.49 for the robust loss (it divides by 1 - 2ε), got " +
                           std::to_string(label_smoothing);
                });
        require(std::isfinite(simpo_gamma) && std::abs(simpo_gamma) <= limits::max_abs_simpo_gamma, {scope, "simpo_gamma"},
                "must be finite with |γ| <= 1e6");
    }

    friend bool operator==(const loss_config&, const loss_config&) = default;
};

}  // namespace sams
