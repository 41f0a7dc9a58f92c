// The context_extractor concept (docs/contexts.md): what turns the host's hidden states into the B×D
// arm contexts a scheduler scores, and the one generic entry point that checks it.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>

#include <sams/context/hidden_states.hpp>
#include <sams/core/views.hpp>

namespace sams {

/// A context extractor (skeleton: docs/concepts.md):
///
/// - `ce.output_dim(layers, dim)` is D, the context width for hidden states with that many
///   layers of that width; it throws sams::invalid_argument when the extractor cannot take
///   such hidden states (e.g. a selected layer out of range).
/// - `e.extract(chosen, rejected, chosen_mask, rejected_mask, out)` writes one context row per
///   pair into the caller's B×D `out`. The two hidden-state views have B rows each; the masks
///   are [B × tokens] of their side. It validates everything before writing anything and
///   throws sams::invalid_argument on bad input (strong guarantee for `out`). It is
///   non-const so that extractors can keep workspaces and allocate nothing in steady state;
///   it should accept any arithmetic mask type (the concept checks std::uint8_t).
template <class E, class T>
concept context_extractor = std::floating_point<T> &&
    requires(E& e, const E& ce, const hidden_states_view<T>& h, const token_mask_view<std::uint8_t>& m,
             matrix_view<T> out, std::size_t n) {
    { ce.output_dim(n, n) } -> std::convertible_to<std::size_t>;
    e.extract(h, h, m, m, out);
};

/// Runs any context extractor: `extractor.extract(chosen, rejected, chosen_mask,
/// rejected_mask, out)`, with a readable compile error when the extractor does not fit.
template <class E, class T, class M>
void extract_contexts(E& extractor, const hidden_states_view<T>& chosen,
                      const hidden_states_view<T>& rejected, const token_mask_view<M>& chosen_mask,
                      const token_mask_view<M>& rejected_mask, matrix_view<T> out) {
    static_assert(context_extractor<E, T>,
                  "sams::extract_contexts: the extractor does not model sams::context_extractor<E, T>. It "
                  "needs output_dim(layers, dim) -> std::size_t (const) and extract(chosen, rejected, "
                  "chosen_mask, rejected_mask, sams::matrix_view<T> out); see docs/concepts.md");
    extractor.extract(chosen, rejected, chosen_mask, rejected_mask, out);
}

}  // namespace sams
