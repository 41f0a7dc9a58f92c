// The batch progress metric of docs/algorithm.md: the mean mis-ranking probability L = mean σ(-m_i),
// which the lagged reward compares between consecutive batches.
#pragma once

#include <cmath>
#include <cstddef>
#include <span>

#include <sams/core/error.hpp>
#include <sams/core/views.hpp>
#include <sams/loss/stable_math.hpp>

namespace sams {
/// L = (1/B) Σ_i σ(-m_i), the probability that the policy mis-ranks a pair of the batch,
/// averaged over the batch (docs/algorithm.md). Lies in [0, 1]; smaller is better. Accumulated in
/// double. Throws sams::invalid_argument for an empty span or a NaN/Inf margin.
template <class T>
[[nodiscard]] double progress_metric(std::span<const T> margin) {
    detail::require(!margin.empty(), "sams::progress_metric", "margin must not be empty");
    detail::require(detail::all_finite(margin), "sams::progress_metric", "margin contains NaN or Inf");
    double sum = 0.0;
    for (const T& m : margin) sum += detail::sigmoid(-static_cast<double>(m));
    return sum / static_cast<double>(margin.size());
}

}  // namespace sams
