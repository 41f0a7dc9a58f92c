// Selection rules over the B scores of a batch (docs/algorithm.md): the subset size K, top-K,
// Gumbel-top-K sampling, a uniform K-subset, and the spread/entropy diagnostics.
// Every rule writes ascending indices into a caller-owned vector, which is reused.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <numeric>
#include <span>
#include <string>
#include <vector>

#include <sams/core/error.hpp>
#include <sams/core/rng.hpp>
#include <sams/core/views.hpp>

namespace sams {

/// K = clamp(round(ρ·B), 1, B), with round-half-away-from-zero (std::round), so ρ = 0.5
/// of B = 5 gives K = 3. Throws sams::invalid_argument unless ρ is finite in (0, 1] and B ≥ 1.
[[nodiscard]] inline std::size_t selection_size(double ratio, std::size_t batch_size) {
    detail::require(std::isfinite(ratio) && ratio > 0.0 && ratio <= 1.0, "sams::selection_size",
                    [&] { return "ratio must be in (0, 1], got " + std::to_string(ratio); });
    detail::require(batch_size > 0, "sams::selection_size", "batch_size must be >= 1");
    const double k = std::round(ratio * static_cast<double>(batch_size));
    if (k <= 1.0) return 1;
    return std::min(static_cast<std::size_t>(k), batch_size);
}

namespace detail {

inline void check_k(std::size_t k, std::size_t batch_size, const char* where) {
    require(k <= batch_size, where,
            [&] { return "k = " + std::to_string(k) + " exceeds the number of scores " + std::to_string(batch_size); });
}

template <class T>
void check_scores(std::span<const T> scores, const char* where) {
    require(all_finite(scores), where, "scores contain NaN or Inf");
}

inline void check_temperature(double temperature, const char* where) {
    require(std::isfinite(temperature) && temperature > 0.0, where,
            [&] { return "temperature must be finite and > 0, got " + std::to_string(temperature); });
}

/// The k indices with the largest key(i) (smallest with largest = false), ties to the lower
/// index, written ascending. `out` doubles as the index scratch, so it needs no other buffer.
template <class Key>
void select_k_by(std::size_t n, std::size_t k, bool largest, Key key, std::vector<std::size_t>& out) {
    out.resize(n);
    std::iota(out.begin(), out.end(), std::size_t{0});
    // A strict total order (value, then index) makes the chosen set independent of the
    // nth_element implementation.
    const auto before = [&](std::size_t i, std::size_t j) {
        const auto ki = key(i);
        const auto kj = key(j);
        if (ki != kj) return largest ? kj < ki : ki < kj;
        return i < j;
    };
    if (k < n) {
        std::nth_element(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(k), out.end(), before);
        out.resize(k);
    }
    std::sort(out.begin(), out.end());
}

}  // namespace detail

/// The k highest scores, ties broken in favour of the lower index; `out` receives their
/// indices in ascending order. Requires k ≤ scores.size() and finite scores.
template <class T>
void select_top_k(std::span<const T> scores, std::size_t k, std::vector<std::size_t>& out) {
    detail::check_k(k, scores.size(), "sams::select_top_k");
    detail::check_scores(scores, "sams::select_top_k");
    detail::select_k_by(scores.size(), k, true, [&](std::size_t i) { return scores[i]; }, out);
}

/// The k lowest scores, ties broken in favour of the lower index; ascending indices.
template <class T>
void select_bottom_k(std::span<const T> scores, std::size_t k, std::vector<std::size_t>& out) {
    detail::check_k(k, scores.size(), "sams::select_bottom_k");
    detail::check_scores(scores, "sams::select_bottom_k");
    detail::select_k_by(scores.size(), k, false, [&](std::size_t i) { return scores[i]; }, out);
}

/// k indices drawn without replacement with probability ∝ exp(u_i/τ) at each draw,
/// via Gumbel-top-k: the k largest u_i + τ·G_i with G_i i.i.d. standard Gumbel, which has
/// exactly the distribution of the sequential draws (and, unlike u_i/τ + G_i, cannot
/// overflow for tiny τ). Always consumes exactly B Gumbel draws, in index order.
/// `keys` is scratch (resized to B) so that steady-state calls allocate nothing.
template <class T>
void select_gumbel_top_k(std::span<const T> scores, std::size_t k, double temperature, rng& gen,
                         std::vector<std::size_t>& out, std::vector<double>& keys) {
    constexpr const char* where = "sams::select_gumbel_top_k";
    detail::check_k(k, scores.size(), where);
    detail::check_scores(scores, where);
    detail::check_temperature(temperature, where);
    keys.resize(scores.size());
    for (std::size_t i = 0; i < scores.size(); ++i)
        keys[i] = static_cast<double>(scores[i]) + temperature * gen.gumbel();
    detail::select_k_by(scores.size(), k, true, [&](std::size_t i) { return keys[i]; }, out);
}

/// As above, with an internal scratch buffer (allocates B doubles per call).
template <class T>
void select_gumbel_top_k(std::span<const T> scores, std::size_t k, double temperature, rng& gen,
                         std::vector<std::size_t>& out) {
    std::vector<double> keys;
    select_gumbel_top_k(scores, k, temperature, gen, out, keys);
}

/// A uniformly random k-subset of {0, …, B-1}, ascending, by a partial Fisher-Yates
/// shuffle (exactly k calls of rng::below). Requires k ≤ B.
inline void select_uniform(std::size_t batch_size, std::size_t k, rng& gen, std::vector<std::size_t>& out) {
    detail::check_k(k, batch_size, "sams::select_uniform");
    out.resize(batch_size);
    std::iota(out.begin(), out.end(), std::size_t{0});
    for (std::size_t i = 0; i < k; ++i) {
        const auto j = i + static_cast<std::size_t>(gen.below(batch_size - i));
        std::swap(out[i], out[j]);
    }
    out.resize(k);
    std::sort(out.begin(), out.end());
}

/// Entropy in nats of softmax(u/τ): log B for equal scores, → 0 as one score dominates.
/// Computed from the shifted logits z_i = (u_i - max u)/τ as log Σ e^{z} - Σ p_i z_i, so
/// large scores cannot overflow. Requires a non-empty span of finite scores and τ > 0.
template <class T>
[[nodiscard]] double softmax_entropy(std::span<const T> scores, double temperature) {
    constexpr const char* where = "sams::softmax_entropy";
    detail::require(!scores.empty(), where, "scores must not be empty");
    detail::check_scores(scores, where);
    detail::check_temperature(temperature, where);
    double top = static_cast<double>(scores[0]);
    for (const T& u : scores) top = std::max(top, static_cast<double>(u));
    const auto logit = [&](const T& u) { return (static_cast<double>(u) - top) / temperature; };
    double z_sum = 0.0;
    for (const T& u : scores) z_sum += std::exp(logit(u));
    const double log_z = std::log(z_sum);
    double expected_logit = 0.0;
    for (const T& u : scores) {
        const double z = logit(u);
        const double p = std::exp(z - log_z);
        if (p > 0.0) expected_logit += p * z;  // p = 0 may pair with z = -inf
    }
    return std::max(0.0, log_z - expected_logit);
}

/// Population standard deviation of the scores (0 for fewer than two); two-pass, in double.
template <class T>
[[nodiscard]] double score_spread(std::span<const T> scores) {
    detail::check_scores(scores, "sams::score_spread");
    if (scores.size() < 2) return 0.0;
    double mean = 0.0;
    for (const T& u : scores) mean += static_cast<double>(u);
    mean /= static_cast<double>(scores.size());
    double ss = 0.0;
    for (const T& u : scores) {
        const double d = static_cast<double>(u) - mean;
        ss += d * d;
    }
    return std::sqrt(ss / static_cast<double>(scores.size()));
}

}  // namespace sams
