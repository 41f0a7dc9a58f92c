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

}  // namespace sams_test
