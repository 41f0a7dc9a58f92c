// Everything that configures a scheduler (SPEC §5–§8), with the library's CPU-friendly
// defaults and the paper's settings (scheduler_config::paper()). validate() rejects
// inconsistent settings with a message that names the field.
#pragma once

#include <cmath>
#include <cstddef>
#include <string>

#include <sams/core/error.hpp>
#include <sams/core/limits.hpp>
#include <sams/loss/loss_config.hpp>

namespace sams {

enum class activation { relu, silu };

/// The exploitation net f1 and exploration net f2 (SPEC §6).
struct network_config {
    std::size_t hidden = 256;        ///< H, width of f1
    std::size_t depth = 4;           ///< N ≥ 3: input layer, N-2 residual blocks, output layer
    std::size_t block_size = 16;     ///< s: φ is the block mean of f1's hidden activations
    std::size_t explore_depth = 4;   ///< N2 ≥ 2 for f2
    activation act = activation::relu;
    double dropout = 0.0;            ///< dropout probability in f1's residual blocks during training
    double layer_norm_eps = 1e-6;

    /// E = H·(N-2)/s, the dimension of φ and the width of f2.
    [[nodiscard]] constexpr std::size_t feature_dim() const noexcept {
        return block_size == 0 ? 0 : hidden * (depth >= 2 ? depth - 2 : 0) / block_size;
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
    bool reset_each_update = false;   ///< true: fresh Adam state per update (public code)
    std::size_t exploit_steps = 4;    ///< E_1 full-batch steps for f1 per update
    std::size_t explore_steps = 4;    ///< E_2 full-batch steps for f2 per update
    double early_stop_mse = 5e-5;     ///< stop a net's steps once its per-sample MSE is below this
    friend bool operator==(const optimizer_config&, const optimizer_config&) = default;
};

enum class reward_mode {
    add,     ///< y = α σ(a Δ' + b) + (1-α) σ(s)
    weight,  ///< y = 10 σ(Δ') s
};

/// The lagged reward of SPEC §5.
struct reward_config {
    reward_mode mode = reward_mode::add;
    double a = 50.0;
    double b = 0.5;
    double alpha = 0.5;
    bool smoothing = true;             ///< Δ' = λ A + (1-λ) Δ with A the running mean of Δ
    double smoothing_lambda = 0.5;
    bool length_normalized_chosen = false;  ///< sample term uses a_w / n_w instead of a_w
    bool chosen_reward_term = false;   ///< add the normalised chosen implicit reward to s
    bool reference_compat = false;     ///< reproduce the public code: σ applied twice to s, stale f2 pool targets
    friend bool operator==(const reward_config&, const reward_config&) = default;
};

/// The replay pool of past (context, target) rows.
struct pool_config {
    std::size_t capacity_rows = 4096;  ///< hard bound on stored rows; reservoir sampling once full
    std::size_t replay_batches = 32;   ///< P: rows equal to P pending batches are replayed per update
    friend bool operator==(const pool_config&, const pool_config&) = default;
};

enum class selection_rule {
    top_k,           ///< the K highest scores, ties broken by lower index
    softmax_sample,  ///< K draws without replacement, P ∝ exp(u/τ) (Gumbel-top-k)
};

enum class weight_scaling {
    per_selected,  ///< w_i = 1/K for selected pairs (default)
    per_batch,     ///< w_i = 1/B (public code)
};

struct selection_config {
    double ratio = 0.5;                 ///< ρ in (0, 1]; K = clamp(round(ρB), 1, B)
    selection_rule rule = selection_rule::top_k;
    double temperature = 1.0;           ///< τ > 0 for softmax_sample
    double explore_weight = 0.01;       ///< w in u = f1 + w f2
    std::size_t warmup_steps = 0;       ///< random selection for this many steps; 0: until trained once
    weight_scaling weights = weight_scaling::per_selected;
    friend bool operator==(const selection_config&, const selection_config&) = default;
};

struct scheduler_config {
    loss_config loss{};
    network_config net{};
    optimizer_config opt{};
    reward_config reward{};
    pool_config pool{};
    selection_config select{};

    /// The paper's settings (H = 4096, N = 16, s = 16, P = 32, …). Large: about 0.4 B
    /// parameters at D = 4096; meant for the GPU backend.
    static scheduler_config paper() {
        scheduler_config c;
        c.net.hidden = 4096;
        c.net.depth = 16;
        c.net.block_size = 16;
        c.net.explore_depth = 4;
        c.opt.exploit_steps = 4;
        c.opt.explore_steps = 4;
        c.pool.replay_batches = 32;
        c.pool.capacity_rows = 32 * 1024;
        c.select.ratio = 0.5;
        c.select.explore_weight = 0.01;
        return c;
    }

    /// Throws sams::invalid_argument naming the first inconsistent field.
    void validate() const {
        using detail::require;
        loss.validate();
        require(net.hidden > 0, "scheduler_config.net.hidden", "must be > 0");
        require(net.depth >= 3, "scheduler_config.net.depth",
                [&] { return "must be >= 3 (input layer, at least one residual block, output), got " +
                    std::to_string(net.depth); });
        require(net.block_size > 0, "scheduler_config.net.block_size", "must be > 0");
        // Caps first (docs/limits.md), so the products below cannot wrap.
        require(net.hidden <= limits::max_width, "scheduler_config.net.hidden",
                [&] { return "must be <= " + std::to_string(limits::max_width) + ", got " + std::to_string(net.hidden); });
        require(net.depth <= limits::max_depth, "scheduler_config.net.depth",
                [&] { return "must be <= " + std::to_string(limits::max_depth) + ", got " + std::to_string(net.depth); });
        require(net.explore_depth <= limits::max_depth, "scheduler_config.net.explore_depth", [&] {
            return "must be <= " + std::to_string(limits::max_depth) + ", got " + std::to_string(net.explore_depth);
        });
        require(net.act == activation::relu || net.act == activation::silu, "scheduler_config.net.act",
                [&] { return "must be relu or silu, got " + std::to_string(static_cast<int>(net.act)); });
        require((net.hidden * (net.depth - 2)) % net.block_size == 0, "scheduler_config.net.block_size",
                [&] { return "must divide hidden*(depth-2) = " + std::to_string(net.hidden * (net.depth - 2)) +
                    ", got " + std::to_string(net.block_size); });
        require(net.explore_depth >= 2, "scheduler_config.net.explore_depth", "must be >= 2");
        require(std::isfinite(net.dropout) && net.dropout >= 0.0 && net.dropout < 1.0,
                "scheduler_config.net.dropout", "must be in [0, 1)");
        require(std::isfinite(net.layer_norm_eps) && net.layer_norm_eps > 0.0,
                "scheduler_config.net.layer_norm_eps", "must be > 0");
        require(std::isfinite(opt.learning_rate) && opt.learning_rate > 0.0 && opt.learning_rate <= 1.0,
                "scheduler_config.opt.learning_rate", "must be in (0, 1]");
        require(opt.beta1 >= 0.0 && opt.beta1 < 1.0, "scheduler_config.opt.beta1", "must be in [0, 1)");
        require(opt.beta2 >= 0.0 && opt.beta2 < 1.0, "scheduler_config.opt.beta2", "must be in [0, 1)");
        // Adam's condition β1² < β2 bounds |m| by a multiple of √v, hence every update.
        require(opt.beta1 == 0.0 || opt.beta1 * opt.beta1 < opt.beta2, "scheduler_config.opt.beta2",
                "must exceed beta1² (Adam's condition; else an update m/√v is unbounded)");
        require(std::isfinite(opt.eps) && opt.eps > 0.0, "scheduler_config.opt.eps", "must be > 0");
        require(std::isfinite(opt.weight_decay) && opt.weight_decay >= 0.0 && opt.weight_decay <= 1.0,
                "scheduler_config.opt.weight_decay", "must be in [0, 1]");
        require(opt.exploit_steps <= limits::max_train_steps && opt.explore_steps <= limits::max_train_steps,
                "scheduler_config.opt.exploit_steps/explore_steps", [&] {
                    return "must be <= " + std::to_string(limits::max_train_steps) + ", got " +
                           std::to_string(opt.exploit_steps) + " / " + std::to_string(opt.explore_steps);
                });
        require(std::isfinite(opt.early_stop_mse) && opt.early_stop_mse >= 0.0,
                "scheduler_config.opt.early_stop_mse", "must be >= 0");
        require(reward.mode == reward_mode::add || reward.mode == reward_mode::weight, "scheduler_config.reward.mode",
                [&] { return "must be add or weight, got " + std::to_string(static_cast<int>(reward.mode)); });
        require(std::isfinite(reward.a) && std::isfinite(reward.b), "scheduler_config.reward.a/b",
                "must be finite");
        require(reward.alpha >= 0.0 && reward.alpha <= 1.0, "scheduler_config.reward.alpha",
                "must be in [0, 1]");
        require(reward.smoothing_lambda >= 0.0 && reward.smoothing_lambda < 1.0,
                "scheduler_config.reward.smoothing_lambda", "must be in [0, 1)");
        require(pool.capacity_rows > 0 && pool.capacity_rows <= limits::max_pool_rows,
                "scheduler_config.pool.capacity_rows", [&] {
                    return "must be in [1, " + std::to_string(limits::max_pool_rows) + "], got " +
                           std::to_string(pool.capacity_rows);
                });
        require(pool.replay_batches <= limits::max_replay_batches, "scheduler_config.pool.replay_batches", [&] {
            return "must be <= " + std::to_string(limits::max_replay_batches) + ", got " +
                   std::to_string(pool.replay_batches);
        });
        require(std::isfinite(select.ratio) && select.ratio > 0.0 && select.ratio <= 1.0,
                "scheduler_config.select.ratio", [&] { return "must be in (0, 1], got " + std::to_string(select.ratio); });
        require(select.rule == selection_rule::top_k || select.rule == selection_rule::softmax_sample,
                "scheduler_config.select.rule",
                [&] { return "must be top_k or softmax_sample, got " + std::to_string(static_cast<int>(select.rule)); });
        require(select.weights == weight_scaling::per_selected || select.weights == weight_scaling::per_batch,
                "scheduler_config.select.weights", [&] {
                    return "must be per_selected or per_batch, got " + std::to_string(static_cast<int>(select.weights));
                });
        // u/τ and w·f2 stay finite for finite scores.
        require(std::isfinite(select.temperature) && select.temperature >= 1e-6 && select.temperature <= 1e6,
                "scheduler_config.select.temperature", "must be in [1e-6, 1e6]");
        require(std::isfinite(select.explore_weight) && std::abs(select.explore_weight) <= 1e6,
                "scheduler_config.select.explore_weight", "must be finite with |w| <= 1e6");
    }

    friend bool operator==(const scheduler_config&, const scheduler_config&) = default;
};

}  // namespace sams
