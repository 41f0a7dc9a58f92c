// The label-noise model of guided selection. A flipped label swaps chosen and rejected, so
// it negates the pair's gradient of h = log π(y_w) − log π(y_l) and with it the pair's
// agreement with the trusted direction. If clean pairs' remembered agreements follow
// N(μ, σ²), flipped ones follow N(−μ, σ²), and the remembered means of a run are the mixture
// (1 − η)·N(μ, σ²) + η·N(−μ, σ²). fit_symmetric_mixture() estimates (η, μ, σ) by EM on a
// histogram of the means; posterior_flip() is then the probability that a pair with mean a
// is flipped.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>

namespace sams {

/// Parameters of the symmetric two-component mixture.
struct noise_estimate {
    double rate = 0.0;       ///< η̂ ∈ [0, ½]: share of flipped labels
    double mean = 0.0;       ///< μ̂ > 0: mean agreement of clean pairs
    double stddev = 1.0;     ///< σ̂ > 0
    std::uint64_t samples = 0;  ///< remembered means the fit used
    friend bool operator==(const noise_estimate&, const noise_estimate&) = default;
};

namespace detail {

/// log N(x; m, s²) up to the constant −½ log 2π, which cancels in every ratio used here.
inline double log_normal(double x, double m, double s) noexcept {
    const double z = (x - m) / s;
    return -0.5 * z * z - std::log(s);
}

}  // namespace detail

/// P(flipped | remembered mean a) under `e`.
[[nodiscard]] inline double posterior_flip(const noise_estimate& e, double a) noexcept {
    if (e.rate <= 0.0) return 0.0;
    // log-odds = log η − log(1−η) + log N(a; −μ, σ²) − log N(a; μ, σ²) = … − 2μa/σ².
    const double log_odds = std::log(e.rate) - std::log1p(-e.rate) - 2.0 * e.mean * a / (e.stddev * e.stddev);
    return log_odds >= 0 ? 1.0 / (1.0 + std::exp(-log_odds)) : std::exp(log_odds) / (1.0 + std::exp(log_odds));
}

/// EM for (η, μ, σ) on histogram `counts` whose bin b is centred at center(b). Starts from
/// `start` when it is usable (warm start keeps successive fits cheap and stable), otherwise
/// from η = 0.1 and the histogram's mean and spread. μ is kept ≥ a tiny positive value and
/// η ≤ ½ (the majority of labels is assumed right: that is what makes the model identifiable).
template <class Center>
[[nodiscard]] noise_estimate fit_symmetric_mixture(std::span<const std::uint64_t> counts, Center&& center,
                                                   const noise_estimate& start, std::size_t iterations = 200,
                                                   double tolerance = 1e-7) {
    double n = 0.0, sx = 0.0, sxx = 0.0;
    for (std::size_t b = 0; b < counts.size(); ++b) {
        if (counts[b] == 0) continue;
        const double c = static_cast<double>(counts[b]), x = center(b);
        n += c;
        sx += c * x;
        sxx += c * x * x;
    }
    noise_estimate e;
    e.samples = static_cast<std::uint64_t>(n);
    if (n < 2.0) return e;
    const double m1 = sx / n;
    const double floor_sd = 1e-4;  // a histogram bin's width is ~1e-3: no finer spread is meaningful
    const double total_sd = std::max(std::sqrt(std::max(sxx / n - m1 * m1, 0.0)), floor_sd);
    const bool warm = start.samples > 0 && start.stddev > 0.0 && start.mean > 0.0 && start.rate > 0.0 &&
                      start.rate < 0.5 && std::isfinite(start.mean) && std::isfinite(start.stddev);
    double eta = warm ? start.rate : 0.1;
    double mu = warm ? start.mean : std::max(std::abs(m1), floor_sd);
    double sd = warm ? start.stddev : total_sd;
    for (std::size_t it = 0; it < iterations; ++it) {
        double r_sum = 0.0, mu_num = 0.0;
        for (std::size_t b = 0; b < counts.size(); ++b) {
            if (counts[b] == 0) continue;
            const double c = static_cast<double>(counts[b]), x = center(b);
            const double r = posterior_flip({eta, mu, sd, 0}, x);
            r_sum += c * r;
            mu_num += c * x * (1.0 - 2.0 * r);
        }
        const double new_eta = std::clamp(r_sum / n, 0.0, 0.5);
        const double new_mu = std::max(mu_num / n, floor_sd);
        double var = 0.0;
        for (std::size_t b = 0; b < counts.size(); ++b) {
            if (counts[b] == 0) continue;
            const double c = static_cast<double>(counts[b]), x = center(b);
            const double r = posterior_flip({eta, mu, sd, 0}, x);
            var += c * ((1.0 - r) * (x - new_mu) * (x - new_mu) + r * (x + new_mu) * (x + new_mu));
        }
        const double new_sd = std::max(std::sqrt(var / n), floor_sd);
        const bool done = std::abs(new_eta - eta) < tolerance && std::abs(new_mu - mu) < tolerance * std::max(mu, 1e-3) &&
                          std::abs(new_sd - sd) < tolerance * sd;
        eta = new_eta;
        mu = new_mu;
        sd = new_sd;
        if (done || eta <= 0.0) break;
    }
    e.rate = eta;
    e.mean = mu;
    e.stddev = sd;
    return e;
}

}  // namespace sams
