// The value types of the backend interface: which activation a kernel applies, whether a
// GEMM operand is transposed, and the hyper-parameters of one Adam update. The nets'
// configuration (nn/network_config.hpp) names an activation from here.
#pragma once

#include <cstdint>

namespace sams {

/// The nonlinearity of the nets' hidden layers.
enum class activation { relu, silu };

/// Whether gemm() reads an operand as stored or transposed (cuBLAS's OP_N / OP_T).
enum class transpose : bool { no = false, yes = true };

/// One Adam update as torch.optim.Adam (non-AMSGrad) computes it, for every element:
///   g  = grad + weight_decay·param            (L2 decay added to the gradient)
///   m  = beta1·m + (1 − beta1)·g
///   v  = beta2·v + (1 − beta2)·g²
///   param −= (learning_rate / (1 − beta1^step)) · m / (√v / √(1 − beta2^step) + eps)
/// `step` is the 1-based number of this update (the caller counts; the backend keeps no state).
struct adam_hyperparameters {
    double learning_rate = 1e-4;
    double beta1 = 0.9;
    double beta2 = 0.999;
    double eps = 1e-8;
    double weight_decay = 0.0;
    std::uint64_t step = 1;
};

}  // namespace sams
