// The identity extractor (docs/contexts.md): for contexts the host computed itself. It validates a
// B×D matrix (shape, NaN/Inf) and copies it, and fits the context_extractor interface so that
// generic trainer code can swap it for the mean-pool extractor.
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <string>
#include <type_traits>

#include <sams/context/concept.hpp>
#include <sams/context/context_matrix.hpp>
#include <sams/context/hidden_states.hpp>
#include <sams/core/error.hpp>
#include <sams/core/views.hpp>

namespace sams {

/// Views a B×D context matrix as hidden states [1 layer × B × 1 token × D], the form in which
/// identity_extractor takes host contexts through the context_extractor interface.
template <class U>
[[nodiscard]] constexpr hidden_states_view<std::remove_const_t<U>> contexts_as_hidden_states(
    matrix_view<U> contexts) noexcept {
    return {contexts.data,
            1,
            contexts.rows,
            1,
            contexts.cols,
            0,
            static_cast<std::ptrdiff_t>(contexts.stride()),
            0,
            1,
            {},
            0};
}

/// Passes host-computed contexts through: c_i is row i of the host's matrix, checked and copied.
///
/// Through the context_extractor interface the contexts come as the *chosen* hidden states
/// with one layer and one token ([1 × B × 1 × D], see contexts_as_hidden_states()); the
/// host has already combined the two responses, so the rejected view and both masks are
/// ignored. output_dim(1, D) is D; any other layer count is rejected.
struct identity_extractor {
    [[nodiscard]] std::size_t output_dim(std::size_t layers, std::size_t dim) const {
        detail::require(layers == 1, "identity_extractor::output_dim: layers", [&] {
            return "must be 1 (host contexts are a single B x D matrix), got " + std::to_string(layers);
        });
        detail::require(dim > 0, "identity_extractor::output_dim: dim", "must be > 0");
        return dim;
    }

    /// Checks `contexts` (finite, same shape as `out`) and copies it into `out`.
    template <class U, class T>
        requires std::same_as<std::remove_const_t<U>, T>
    void extract(matrix_view<U> contexts, matrix_view<T> out) const {
        static_assert(std::is_floating_point_v<T>, "sams::identity_extractor: T must be float or double");
        constexpr const char* where = "identity_extractor::extract";
        detail::require(contexts.data != nullptr && !contexts.empty(), where,
                        "contexts must be a non-empty matrix with a data pointer");
        detail::require(contexts.stride() >= contexts.cols, where,
                        "contexts.row_stride is smaller than its columns");
        detail::require(out.data != nullptr, where, "out has a null data pointer");
        detail::require(out.rows == contexts.rows && out.cols == contexts.cols, where, [&] {
            return "out is " + std::to_string(out.rows) + "x" + std::to_string(out.cols) + ", expected " +
                   std::to_string(contexts.rows) + "x" + std::to_string(contexts.cols) +
                   " (the contexts' shape)";
        });
        detail::require(out.stride() >= out.cols, where, "out.row_stride is smaller than its columns");
        for (std::size_t r = 0; r < contexts.rows; ++r)
            for (std::size_t c = 0; c < contexts.cols; ++c)
                detail::require(std::isfinite(contexts(r, c)), where, [&] {
                    return "contexts has NaN or Inf at pair " + std::to_string(r) + ", column " +
                           std::to_string(c);
                });
        for (std::size_t r = 0; r < contexts.rows; ++r)
            std::copy_n(contexts.row(r), contexts.cols, out.row(r));
    }

    /// Convenience: a checked owned copy.
    template <class U>
    [[nodiscard]] context_matrix<std::remove_const_t<U>> extract(matrix_view<U> contexts) const {
        context_matrix<std::remove_const_t<U>> result(contexts.rows, contexts.cols);
        extract(contexts, result.view());
        return result;
    }

    /// The context_extractor form: `chosen` is [1 × B × 1 × D]; rejected and the masks are ignored.
    template <class T, class M>
    void extract(const hidden_states_view<T>& chosen, const hidden_states_view<T>& rejected,
                 const token_mask_view<M>& chosen_mask, const token_mask_view<M>& rejected_mask,
                 matrix_view<T> out) const {
        (void)rejected;
        (void)chosen_mask;
        (void)rejected_mask;
        constexpr const char* where = "identity_extractor::extract";
        detail::check_hidden_states(chosen, where, "chosen hidden states (the host contexts)");
        detail::require(chosen.layers == 1 && chosen.tokens == 1, where, [&] {
            return "the host contexts must come as 1 layer x B x 1 token x D, got " +
                   std::to_string(chosen.layers) + " layers and " + std::to_string(chosen.tokens) + " tokens";
        });
        detail::require(out.data != nullptr, where, "out has a null data pointer");
        detail::require(out.rows == chosen.pairs && out.cols == chosen.dim, where, [&] {
            return "out is " + std::to_string(out.rows) + "x" + std::to_string(out.cols) + ", expected " +
                   std::to_string(chosen.pairs) + "x" + std::to_string(chosen.dim);
        });
        detail::require(out.stride() >= out.cols, where, "out.row_stride is smaller than its columns");
        for (std::size_t p = 0; p < chosen.pairs; ++p)
            for (std::size_t k = 0; k < chosen.dim; ++k)
                detail::require(std::isfinite(chosen(0, p, 0, k)), where, [&] {
                    return "contexts has NaN or Inf at pair " + std::to_string(p) + ", column " +
                           std::to_string(k);
                });
        for (std::size_t p = 0; p < chosen.pairs; ++p)
            for (std::size_t k = 0; k < chosen.dim; ++k) out(p, k) = chosen(0, p, 0, k);
    }
};

static_assert(context_extractor<identity_extractor, float>,
              "identity_extractor must model sams::context_extractor (docs/concepts.md)");
static_assert(context_extractor<identity_extractor, double>,
              "identity_extractor must model sams::context_extractor (docs/concepts.md)");

}  // namespace sams
