// Comparing two schedulers' decisions that ran the same steps on different backends (thrust
// against Eigen, a LibTorch session against the host path): scores agree to a stated
// tolerance, and selections are compared only where the K-th and (K+1)-th scores are well
// apart. Header-only for doctest test programs.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <functional>
#include <limits>
#include <vector>

#include <sams/core/decision.hpp>

namespace sams_test {

/// The gap between the K-th and (K+1)-th highest scores (infinite when K = B).
inline double boundary_gap(std::vector<float> scores, std::size_t k) {
    if (k >= scores.size()) return std::numeric_limits<double>::infinity();
    std::sort(scores.begin(), scores.end(), std::greater<>());
    return static_cast<double>(scores[k - 1]) - static_cast<double>(scores[k]);
}

/// Every score within tol·max(1, |want|).
inline void check_scores(const sams::decision<float>& got, const sams::decision<float>& want, double tol) {
    REQUIRE(got.score.size() == want.score.size());
    for (std::size_t i = 0; i < got.score.size(); ++i) {
        const double w = want.score[i];
        CHECK(std::abs(static_cast<double>(got.score[i]) - w) <= tol * std::max(1.0, std::abs(w)));
    }
}

/// |got − want| ≤ tol·|want| (and ≤ tol·1e-12 near zero).
inline void check_relative(double got, double want, double tol) {
    CHECK(std::abs(got - want) <= tol * std::max(1e-12, std::abs(want)));
}

/// The step metrics two agreeing runs share: scores within score_tol, the same loss, warm-up
/// flag and pool size, and both nets' training MSE within mse_tol (relative).
inline void check_step_metrics(const sams::decision<float>& got, const sams::decision<float>& want,
                               double score_tol, double mse_tol) {
    check_scores(got, want, score_tol);
    CHECK(got.loss == want.loss);
    CHECK(got.metrics.warmup == want.metrics.warmup);
    CHECK(got.metrics.pool_size == want.metrics.pool_size);
    check_relative(got.metrics.exploit_mse, want.metrics.exploit_mse, mse_tol);
    check_relative(got.metrics.explore_mse, want.metrics.explore_mse, mse_tol);
}

/// How one step's selections compared (compare_selection).
enum class selection_match { warmup, separated, near_tie, diverged };

/// Requires the same selection wherever it is determined: on warm-up steps (both draw from
/// the same RNG) and where `want`'s K-th and (K+1)-th scores are more than 10·score_tol apart.
/// At a near-tie the two may legitimately choose differently; the runs then diverge, which
/// this reports (diverged) so that the caller stops comparing.
inline selection_match compare_selection(const sams::decision<float>& got, const sams::decision<float>& want,
                                         double score_tol, std::size_t step) {
    const double gap = boundary_gap(want.score, want.selected.size());
    if (want.metrics.warmup || gap > 10.0 * score_tol) {
        REQUIRE(got.selected == want.selected);
        return want.metrics.warmup ? selection_match::warmup : selection_match::separated;
    }
    if (got.selected == want.selected) return selection_match::near_tie;
    MESSAGE("step " << step << ": near-tie (gap " << gap
                    << ") selected differently; stopping the comparison");
    return selection_match::diverged;
}

}  // namespace sams_test
