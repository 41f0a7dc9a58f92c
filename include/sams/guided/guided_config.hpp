// Configuration of guided selection (docs/guided.md): the loss the host trains with, the
// sketch width, the per-example memory and the rule that decides how many pairs to drop.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include <sams/core/config.hpp>
#include <sams/core/error.hpp>
#include <sams/loss/loss_config.hpp>

namespace sams {

/// How guided selection turns remembered agreements into the pairs it drops.
enum class guided_drop : std::uint8_t {
    none = 0,            ///< train on every pair (agreement is still measured and remembered)
    fixed_fraction = 1,  ///< drop the ⌈q·B⌉ pairs of lowest remembered agreement, q = drop_fraction
    estimated = 2,       ///< drop the ⌈η̂·B⌉ pairs of lowest remembered agreement, η̂ the flipped share
                         ///< estimated against the trusted set (less its standard error times
                         ///< estimate_confidence): none while nothing looks wrong
};

struct guided_config {
    loss_config loss{};                 ///< the host's preference loss (weights and gradients use it)
    std::size_t sketch_dim = 0;         ///< k, the width of every gradient sketch (required)
    std::size_t memory_capacity = std::size_t{1} << 20;  ///< ids remembered; LRU eviction beyond it
    guided_drop drop = guided_drop::estimated;
    double drop_fraction = 0.1;         ///< q of fixed_fraction
    double max_drop_fraction = 0.5;     ///< estimated: never drop more than this share of a batch
    double estimate_horizon = 64.0;     ///< estimated: steps over which past batches fade from η̂
    double estimate_confidence = 1.0;   ///< estimated: drop for η̂ − z·se(η̂), z = this
    std::size_t refresh_interval = 1;   ///< needs_trusted_refresh() after this many steps on one direction
    weight_scaling weights = weight_scaling::per_selected;

    /// Upper bounds that keep a configuration from exhausting memory.
    static constexpr std::size_t max_sketch_dim = std::size_t{1} << 24;
    static constexpr std::size_t max_memory_capacity = std::size_t{1} << 32;

    /// Throws sams::invalid_argument naming the first field out of range.
    void validate() const {
        using detail::require;
        loss.validate();
        require(sketch_dim > 0 && sketch_dim <= max_sketch_dim, "guided_config.sketch_dim", [&] {
            return "must be in [1, " + std::to_string(max_sketch_dim) + "], got " + std::to_string(sketch_dim);
        });
        require(memory_capacity > 0 && memory_capacity <= max_memory_capacity, "guided_config.memory_capacity", [&] {
            return "must be in [1, 2^32], got " + std::to_string(memory_capacity);
        });
        require(drop == guided_drop::none || drop == guided_drop::fixed_fraction || drop == guided_drop::estimated,
                "guided_config.drop", "must be none, fixed_fraction or estimated");
        require(std::isfinite(drop_fraction) && drop_fraction >= 0.0 && drop_fraction < 1.0,
                "guided_config.drop_fraction", [&] { return "must be in [0, 1), got " + std::to_string(drop_fraction); });
        require(std::isfinite(max_drop_fraction) && max_drop_fraction >= 0.0 && max_drop_fraction < 1.0,
                "guided_config.max_drop_fraction",
                [&] { return "must be in [0, 1), got " + std::to_string(max_drop_fraction); });
        require(std::isfinite(estimate_horizon) && estimate_horizon >= 1.0 && estimate_horizon <= 1e9,
                "guided_config.estimate_horizon",
                [&] { return "must be in [1, 1e9] steps, got " + std::to_string(estimate_horizon); });
        require(std::isfinite(estimate_confidence) && estimate_confidence >= 0.0 && estimate_confidence <= 100.0,
                "guided_config.estimate_confidence",
                [&] { return "must be in [0, 100], got " + std::to_string(estimate_confidence); });
        require(refresh_interval >= 1, "guided_config.refresh_interval", "must be >= 1");
        require(weights == weight_scaling::per_selected || weights == weight_scaling::per_batch,
                "guided_config.weights", "must be per_selected or per_batch");
    }

    friend bool operator==(const guided_config&, const guided_config&) = default;
};

}  // namespace sams
