// Zero-copy views of xtensor containers and strided views (xarray, xtensor, xt::adapt results,
// xt::view / xt::strided_view / xt::transpose of them) as sams::matrix_view, std::span,
// hidden_states_view and token_mask_view, from their data(), data_offset() and strides().
// Not part of <sams/sams.hpp>: include it explicitly and link the `xtensor` target.
#pragma once

#include <xtensor/xtensor_forward.hpp>

#include <cstddef>
#include <span>
#include <string>
#include <type_traits>
#include <utility>

#include <sams/context/hidden_states.hpp>
#include <sams/core/error.hpp>
#include <sams/core/views.hpp>

// The namespace is sams::xtensor_adapt, not sams::xt: inside `namespace sams` a nested `xt`
// would hide ::xt from every user who writes `xt::` there.
namespace sams::xtensor_adapt {
namespace detail {

/// An xtensor expression that exposes its memory: a container, an adaptor or a strided view.
template <class E>
concept strided_expression = requires(const std::remove_reference_t<E>& e) {
    e.data();
    e.data_offset();
    e.strides();
    e.shape();
    e.dimension();
};

template <class E>
using element_t = std::remove_reference_t<decltype(*std::declval<E&>().data())>;

// Containers that own their elements: a view of an rvalue one would dangle at once.
template <class D>
struct owns_elements : std::false_type {};
template <class EC, ::xt::layout_type L, class SC, class Tag>
struct owns_elements<::xt::xarray_container<EC, L, SC, Tag>> : std::true_type {};
template <class EC, std::size_t N, ::xt::layout_type L, class Tag>
struct owns_elements<::xt::xtensor_container<EC, N, L, Tag>> : std::true_type {};
template <class ET, class S, ::xt::layout_type L, bool SH, class Tag>
struct owns_elements<::xt::xfixed_container<ET, S, L, SH, Tag>> : std::true_type {};

// A class, not a function: using it instantiates it on the spot, so these messages come
// before any error from the adapter's body.
template <class E>
struct expression_check {
    static_assert(strided_expression<E>,
                  "sams::xtensor_adapt: the expression has no data()/data_offset()/strides() (a lazy "
                  "xfunction, a broadcast, or a view with keep/drop slices). Evaluate it into a "
                  "container first, e.g. xt::xarray<float> a = expr;");
    static_assert(std::is_lvalue_reference_v<E> || !owns_elements<std::remove_cvref_t<E>>::value,
                  "sams::xtensor_adapt: a view of a temporary xarray/xtensor would dangle; pass a named "
                  "container");
};

template <class E>
auto first_element(E& e) {
    return e.data() + static_cast<std::ptrdiff_t>(e.data_offset());
}

template <class E>
std::size_t extent(const E& e, std::size_t axis) {
    return static_cast<std::size_t>(e.shape()[axis]);
}

template <class E>
std::ptrdiff_t stride(const E& e, std::size_t axis) {
    return static_cast<std::ptrdiff_t>(e.strides()[axis]);
}

template <class E>
void require_rank(const E& e, std::size_t rank, const char* where, const char* what) {
    sams::detail::require(e.dimension() == rank, where, [&] {
        return std::string(what) + " must be a " + std::to_string(rank) + "-D expression, got " +
               std::to_string(e.dimension()) + "-D";
    });
}

}  // namespace detail

/// A 2-D expression as a row-major sams::matrix_view (const elements for a const expression).
/// The last axis must have unit stride and the rows must not overlap; a column-major or
/// transposed layout throws sams::invalid_argument (copy it into a row-major xt::xarray).
template <class E>
[[nodiscard]] auto as_matrix_view(E&& e) {
    [[maybe_unused]] constexpr detail::expression_check<E> check{};
    constexpr const char* where = "xtensor_adapt::as_matrix_view";
    detail::require_rank(e, 2, where, "the matrix");
    const std::size_t rows = detail::extent(e, 0), cols = detail::extent(e, 1);
    const std::ptrdiff_t row = detail::stride(e, 0), col = detail::stride(e, 1);
    // xtensor gives axes of extent 1 stride 0; their stride is never used.
    sams::detail::require(cols <= 1 || col == 1, where, [&] {
        return "the last axis has stride " + std::to_string(col) +
               "; a matrix_view needs unit stride there (column-major or transposed layout? copy it "
               "into a row-major xt::xarray)";
    });
    sams::detail::require(rows <= 1 || row >= static_cast<std::ptrdiff_t>(cols), where, [&] {
        return "the row stride " + std::to_string(row) + " is not >= the " + std::to_string(cols) +
               " columns (reversed, broadcast or overlapping rows cannot be a matrix_view)";
    });
    const std::size_t row_stride = rows <= 1 ? cols : static_cast<std::size_t>(row);
    return matrix_view<detail::element_t<E>>{detail::first_element(e), rows, cols, row_stride};
}

/// A 1-D expression with unit stride as a std::span (const elements for a const expression).
template <class E>
[[nodiscard]] auto as_span(E&& e) {
    [[maybe_unused]] constexpr detail::expression_check<E> check{};
    constexpr const char* where = "xtensor_adapt::as_span";
    detail::require_rank(e, 1, where, "the vector");
    const std::size_t n = detail::extent(e, 0);
    sams::detail::require(n <= 1 || detail::stride(e, 0) == 1, where, [&] {
        return "the vector has stride " + std::to_string(detail::stride(e, 0)) +
               "; a span needs contiguous elements (evaluate the view into an xt::xarray)";
    });
    return std::span<detail::element_t<E>>(detail::first_element(e), n);
}

/// A 4-D expression [layers × pairs × tokens × dim], or a 3-D one [pairs × tokens × dim] as
/// a single layer, as a hidden_states_view. Any strides work, negative ones included, so a
/// pair-major tensor becomes layer-major with xt::transpose(h, {1, 0, 2, 3}) and no copy.
template <class E>
[[nodiscard]] auto as_hidden_states(E&& e) {
    [[maybe_unused]] constexpr detail::expression_check<E> check{};
    constexpr const char* where = "xtensor_adapt::as_hidden_states";
    const std::size_t rank = e.dimension();
    sams::detail::require(rank == 3 || rank == 4, where, [&] {
        return "hidden states must be 4-D [layers, pairs, tokens, dim] or 3-D [pairs, tokens, dim], got " +
               std::to_string(rank) + "-D";
    });
    const std::size_t a = rank - 3;  // axis of `pairs`
    hidden_states_view<std::remove_const_t<detail::element_t<E>>> h{};
    h.data = detail::first_element(e);
    h.layers = rank == 4 ? detail::extent(e, 0) : 1;
    h.layer_stride = rank == 4 ? detail::stride(e, 0) : 0;
    h.pairs = detail::extent(e, a);
    h.tokens = detail::extent(e, a + 1);
    h.dim = detail::extent(e, a + 2);
    h.pair_stride = detail::stride(e, a);
    h.token_stride = detail::stride(e, a + 1);
    h.dim_stride = detail::stride(e, a + 2);
    return h;
}

/// A 2-D expression [pairs × tokens] as a token mask (nonzero = valid token), any strides.
template <class E>
[[nodiscard]] auto as_token_mask(E&& e) {
    [[maybe_unused]] constexpr detail::expression_check<E> check{};
    detail::require_rank(e, 2, "xtensor_adapt::as_token_mask", "the mask");
    return token_mask_view<std::remove_const_t<detail::element_t<E>>>{
        detail::first_element(e), detail::extent(e, 0), detail::extent(e, 1), detail::stride(e, 0),
        detail::stride(e, 1)};
}

namespace detail {

template <class T, class E>
std::span<const T> batch_span(E&& e, std::size_t expected, const char* name) {
    static_assert(std::is_same_v<std::remove_const_t<element_t<E>>, T>,
                  "sams::xtensor_adapt::make_pair_batch: every argument must have the value type of a_w");
    const std::span<const T> s = as_span(std::forward<E>(e));
    sams::detail::require(s.size() == expected, "xtensor_adapt::make_pair_batch", [&] {
        return std::string(name) + " has length " + std::to_string(s.size()) + ", expected " +
               std::to_string(expected) + " (the length of a_w)";
    });
    return s;
}

}  // namespace detail

/// A sams::pair_batch over four 1-D expressions a_w, a_l, r_w, r_l (docs/concepts.md), without copies.
/// Set `contexts` (e.g. from as_matrix_view or an extractor), and optionally the lengths
/// and ids, on the result. The expressions must outlive every use of the batch.
template <class AW, class AL, class RW, class RL>
[[nodiscard]] auto make_pair_batch(AW&& a_w, AL&& a_l, RW&& r_w, RL&& r_l) {
    using T = std::remove_const_t<detail::element_t<AW>>;
    pair_batch<T> b{};
    b.policy_chosen = as_span(std::forward<AW>(a_w));
    const std::size_t n = b.policy_chosen.size();
    b.policy_rejected = detail::batch_span<T>(std::forward<AL>(a_l), n, "a_l");
    b.reference_chosen = detail::batch_span<T>(std::forward<RW>(r_w), n, "r_w");
    b.reference_rejected = detail::batch_span<T>(std::forward<RL>(r_l), n, "r_l");
    return b;
}

/// A reference-free sams::pair_batch (e.g. for SimPO) over a_w and a_l.
template <class AW, class AL>
[[nodiscard]] auto make_pair_batch(AW&& a_w, AL&& a_l) {
    using T = std::remove_const_t<detail::element_t<AW>>;
    pair_batch<T> b{};
    b.policy_chosen = as_span(std::forward<AW>(a_w));
    b.policy_rejected = detail::batch_span<T>(std::forward<AL>(a_l), b.policy_chosen.size(), "a_l");
    return b;
}

}  // namespace sams::xtensor_adapt
