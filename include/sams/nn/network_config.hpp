// The configuration of the exploitation net f1 and exploration net f2 (docs/algorithm.md,
// "networks"), and of the Adam optimiser and training schedule of one lagged update. Each
// validates itself; scheduler_config composes them.
#pragma once

#include <cmath>
#include <cstddef>
#include <string>

#include <sams/backend/types.hpp>
#include <sams/core/error.hpp>
#include <sams/core/limits.hpp>

namespace sams {

/// The exploitation net f1 and exploration net f2.
struct network_config {
    std::size_t hidden = 256;       ///< H, width of f1
    std::size_t depth = 4;          ///< N ≥ 3: input layer, N-2 residual blocks, output layer
    std::size_t block_size = 16;    ///< s: φ is the block mean of f1's hidden activations
    std::size_t explore_depth = 4;  ///< N2 ≥ 2 for f2
    activation act = activation::relu;
    double dropout = 0.0;  ///< dropout probability in f1's residual blocks during training
    double layer_norm_eps = 1e-6;

    /// E = H·(N-2)/s, the dimension of φ and the width of f2.
    [[nodiscard]] constexpr std::size_t feature_dim() const noexcept {
        return block_size == 0 ? 0 : hidden * (depth >= 2 ? depth - 2 : 0) / block_size;
    }

    /// Throws sams::invalid_argument naming the first bad field as "<scope>.<field>".
    void validate(const char* scope = "network_config") const {
        using detail::require;
        require(hidden > 0, {scope, "hidden"}, "must be > 0");
        require(depth >= 3, {scope, "depth"}, [&] {
            return "must be >= 3 (input layer, at least one residual block, output), got " +
                   std::to_string(depth);
        });
        require(block_size > 0, {scope, "block_size"}, "must be > 0");
        // Caps first (docs/limits.md), so the product below cannot wrap.
        require(hidden <= limits::max_width, {scope, "hidden"}, [&] {
            return "must be <= " + std::to_string(limits::max_width) + ", got " + std::to_string(hidden);
        });
        require(depth <= limits::max_depth, {scope, "depth"}, [&] {
            return "must be <= " + std::to_string(limits::max_depth) + ", got " + std::to_string(depth);
        });
        require(explore_depth <= limits::max_depth, {scope, "explore_depth"}, [&] {
            return "must be <= " + std::to_string(limits::max_depth) + ", got " +
                   std::to_string(explore_depth);
        });
        require((hidden * (depth - 2)) % block_size == 0, {scope, "block_size"}, [&] {
            return "must divide hidden*(depth-2) = " + std::to_string(hidden * (depth - 2)) + ", got " +
                   std::to_string(block_size);
        });
        require(explore_depth >= 2, {scope, "explore_depth"}, "must be >= 2");
        require(act == activation::relu || act == activation::silu, {scope, "act"}, "must be relu or silu");
        require(std::isfinite(dropout) && dropout >= 0.0 && dropout < 1.0, {scope, "dropout"},
                "must be in [0, 1)");
        require(std::isfinite(layer_norm_eps) && layer_norm_eps >= limits::min_epsilon,
                {scope, "layer_norm_eps"},
                "must be finite and >= 1e-12 (limits::min_epsilon; a smaller one is 0 in float)");
    }
    friend bool operator==(const network_config&, const network_config&) = default;
};

/// Adam with L2 weight decay added to the gradient (as torch.optim.Adam), and the
/// training schedule of one lagged update.
struct optimizer_config {
    double learning_rate = 1e-4;
    double beta1 = 0.9;
    double beta2 = 0.999;
    double eps = 1e-8;
    double weight_decay = 1e-5;
    bool reset_each_update = false;  ///< true: fresh Adam state per update (public code)
    std::size_t exploit_steps = 4;   ///< E_1 full-batch steps for f1 per update
    std::size_t explore_steps = 4;   ///< E_2 full-batch steps for f2 per update
    double early_stop_mse = 5e-5;    ///< stop a net's steps once its per-sample MSE is below this

    /// Throws sams::invalid_argument naming the first bad field as "<scope>.<field>".
    void validate(const char* scope = "optimizer_config") const {
        using detail::require;
        require(std::isfinite(learning_rate) && learning_rate > 0.0 && learning_rate <= 1.0,
                {scope, "learning_rate"}, "must be in (0, 1]");
        require(beta1 >= 0.0 && beta1 < 1.0, {scope, "beta1"}, "must be in [0, 1)");
        require(beta2 >= 0.0 && beta2 < 1.0, {scope, "beta2"}, "must be in [0, 1)");
        // Adam's condition β1² < β2 bounds |m| by a multiple of √v, hence every update.
        require(beta1 == 0.0 || beta1 * beta1 < beta2, {scope, "beta2"},
                "must exceed beta1² (Adam's condition; else an update m/√v is unbounded)");
        require(std::isfinite(eps) && eps >= limits::min_epsilon, {scope, "eps"},
                "must be finite and >= 1e-12 (limits::min_epsilon; a smaller one is 0 in float)");
        require(std::isfinite(weight_decay) && weight_decay >= 0.0 && weight_decay <= 1.0,
                {scope, "weight_decay"}, "must be in [0, 1]");
        require(exploit_steps <= limits::max_train_steps && explore_steps <= limits::max_train_steps,
                {scope, "exploit_steps/explore_steps"}, [&] {
                    return "must be <= " + std::to_string(limits::max_train_steps) + ", got " +
                           std::to_string(exploit_steps) + " / " + std::to_string(explore_steps);
                });
        require(std::isfinite(early_stop_mse) && early_stop_mse >= 0.0, {scope, "early_stop_mse"},
                "must be finite and >= 0");
    }
    friend bool operator==(const optimizer_config&, const optimizer_config&) = default;
};

}  // namespace sams
