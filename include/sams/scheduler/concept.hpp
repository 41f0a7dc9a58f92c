// The batch_scheduler concept: anything that looks at a batch and decides which pairs to
// train on (docs/algorithm.md). sams_scheduler and every baseline selector model it, so a trainer
// or benchmark can swap them. docs/concepts.md has a minimal skeleton.
#pragma once

#include <concepts>

#include <sams/core/decision.hpp>
#include <sams/core/views.hpp>

namespace sams {

/// `s.step(batch)` returns a decision<T> for the batch; `s.step(batch, d)` writes it into
/// an existing decision, reusing its buffers (no allocation once their capacity suffices).
/// Both validate the batch before changing any state and throw sams::invalid_argument.
template <class S, class T>
concept batch_scheduler = requires(S& s, const pair_batch<T>& batch, decision<T>& d) {
    { s.step(batch) } -> std::same_as<decision<T>>;
    s.step(batch, d);
};

}  // namespace sams
