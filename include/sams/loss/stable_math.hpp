// Overflow-free logistic functions in the caller's precision, shared by the loss family.
// log σ is never formed as log(σ(x)): that rounds to log(0) = -inf once σ underflows.
#pragma once

#include <cmath>
#include <concepts>

namespace sams::detail {

/// softplus(x) = log(1 + eˣ) = -log σ(-x). Only e^{-|x|} ≤ 1 is ever formed, so it neither
/// overflows for large x nor loses the linear tail for very negative x.
template <std::floating_point T>
[[nodiscard]] inline T softplus(T x) noexcept {
    return (x > T(0) ? x : T(0)) + std::log1p(std::exp(-std::abs(x)));
}

/// log σ(x) = -softplus(-x).
template <std::floating_point T>
[[nodiscard]] inline T log_sigmoid(T x) noexcept {
    return -softplus(-x);
}

/// σ(x) = 1 / (1 + e^{-x}), branching on the sign so that the exponential is at most 1: no
/// infinity is formed, which keeps it exact in the tails even under -ffinite-math-only.
template <std::floating_point T>
[[nodiscard]] inline T sigmoid(T x) noexcept {
    if (x >= T(0)) return T(1) / (T(1) + std::exp(-x));
    const T e = std::exp(x);
    return e / (T(1) + e);
}

/// A loss value and its derivative with respect to a scalar argument.
template <std::floating_point T>
struct value_and_slope {
    T value;
    T slope;
};

/// ℓ(z) = -(1-ε) log σ(z) - ε log σ(-z), the label-smoothed logistic loss (cDPO), and dℓ/dz.
template <std::floating_point T>
[[nodiscard]] inline value_and_slope<T> smoothed_logistic(T z, T eps) noexcept {
    const T keep = T(1) - eps;
    return {keep * softplus(-z) + eps * softplus(z), eps * sigmoid(z) - keep * sigmoid(-z)};
}

}  // namespace sams::detail
