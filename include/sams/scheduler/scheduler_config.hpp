// Everything that configures a scheduler, with the library's CPU-friendly defaults and the
// paper's settings (scheduler_config::paper()). Each part validates itself and names its
// fields; scheduler_config::validate() runs them all with the "scheduler_config.<part>" scope.
#pragma once

#include <cmath>
#include <cstddef>
#include <string>

#include <sams/core/error.hpp>
#include <sams/core/limits.hpp>
#include <sams/loss/loss_config.hpp>
#include <sams/nn/network_config.hpp>
#include <sams/reward/reward_config.hpp>

namespace sams {

/// The replay pool of past (context, target) rows.
struct pool_config {
    std::size_t capacity_rows = 4096;  ///< hard bound on stored rows; reservoir sampling once full
    std::size_t replay_batches = 32;   ///< P: rows equal to P pending batches are replayed per update

    /// Throws sams::invalid_argument naming the first bad field as "<scope>.<field>".
    void validate(const char* scope = "pool_config") const {
        detail::require(capacity_rows > 0 && capacity_rows <= limits::max_pool_rows, {scope, "capacity_rows"},
                        [&] {
                            return "must be in [1, " + std::to_string(limits::max_pool_rows) + "], got " +
                                   std::to_string(capacity_rows);
                        });
        detail::require(replay_batches <= limits::max_replay_batches, {scope, "replay_batches"}, [&] {
            return "must be <= " + std::to_string(limits::max_replay_batches) + ", got " +
                   std::to_string(replay_batches);
        });
    }
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
    double ratio = 0.5;  ///< ρ in (0, 1]; K = clamp(round(ρB), 1, B)
    selection_rule rule = selection_rule::top_k;
    double temperature = 1.0;      ///< τ > 0 for softmax_sample
    double explore_weight = 0.01;  ///< w in u = f1 + w f2
    std::size_t warmup_steps = 0;  ///< random selection for this many steps; 0: until trained once
    weight_scaling weights = weight_scaling::per_selected;

    /// Throws sams::invalid_argument naming the first bad field as "<scope>.<field>".
    void validate(const char* scope = "selection_config") const {
        using detail::require;
        require(std::isfinite(ratio) && ratio > 0.0 && ratio <= 1.0, {scope, "ratio"},
                [&] { return "must be in (0, 1], got " + std::to_string(ratio); });
        require(rule == selection_rule::top_k || rule == selection_rule::softmax_sample, {scope, "rule"},
                "must be top_k or softmax_sample");
        // u/τ and w·f2 stay finite for finite scores.
        require(std::isfinite(temperature) && temperature >= 1e-6 && temperature <= 1e6,
                {scope, "temperature"}, "must be in [1e-6, 1e6]");
        require(std::isfinite(explore_weight) && std::abs(explore_weight) <= 1e6, {scope, "explore_weight"},
                "must be finite with |w| <= 1e6");
        require(weights == weight_scaling::per_selected || weights == weight_scaling::per_batch,
                {scope, "weights"}, "must be per_selected or per_batch");
    }
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

    /// Throws sams::invalid_argument naming the first inconsistent field
    /// ("scheduler_config.net.depth: must be >= 3 …").
    void validate() const {
        loss.validate("scheduler_config.loss");
        net.validate("scheduler_config.net");
        opt.validate("scheduler_config.opt");
        reward.validate("scheduler_config.reward");
        pool.validate("scheduler_config.pool");
        select.validate("scheduler_config.select");
    }

    friend bool operator==(const scheduler_config&, const scheduler_config&) = default;
};

}  // namespace sams
