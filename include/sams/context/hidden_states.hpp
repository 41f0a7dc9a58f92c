// Non-owning strided views over the host's hidden states [layers × pairs × tokens × dim] and
// token masks [pairs × tokens], the inputs of every context extractor (docs/contexts.md).
#pragma once

#include <cmath>
#include <concepts>
#include <cstddef>
#include <span>
#include <string>
#include <type_traits>

#include <sams/core/error.hpp>

namespace sams {

/// A read-only 4-D view [layers × pairs × tokens × dim] over hidden states in host memory.
///
/// Element (l, p, t, k) lives at `layer_base(l)[p·pair_stride + t·token_stride + k·dim_stride]`
/// where `layer_base(l)` is `data + l·layer_stride + offset`, or `layer_data[l] + offset` when
/// `layer_data` is not empty. Strides count elements, not bytes, are taken literally (0 repeats an entry) and
/// may be negative (`data` then points at element (0, 0, 0, 0), not at the allocation start).
/// This expresses a stacked layer-major tensor [L][P][T][d], a pair-major one [P][L][T][d],
/// transposed or sliced views, and the "list of per-layer tensors" that e.g. a Hugging Face
/// model returns (one pointer per layer, no stacking copy).
///
/// `pairs` counts sequences: a view of a combined chosen+rejected batch has 2B of them;
/// split_chosen_rejected() turns it into the two B-row views the extractors take.
template <class T>
struct hidden_states_view {
    const T* data = nullptr;
    std::size_t layers = 0;
    std::size_t pairs = 0;
    std::size_t tokens = 0;
    std::size_t dim = 0;
    std::ptrdiff_t layer_stride = 0;
    std::ptrdiff_t pair_stride = 0;
    std::ptrdiff_t token_stride = 0;
    std::ptrdiff_t dim_stride = 0;
    /// Optional: one base pointer per layer (size `layers`); overrides `data` and `layer_stride`.
    std::span<const T* const> layer_data{};
    /// Elements added to every layer's base; lets pair_range() slice a per-layer view.
    std::ptrdiff_t offset = 0;

    /// A contiguous layer-major tensor [layers][pairs][tokens][dim].
    [[nodiscard]] static constexpr hidden_states_view layer_major(const T* data, std::size_t layers,
                                                                  std::size_t pairs, std::size_t tokens,
                                                                  std::size_t dim) noexcept {
        const auto d = static_cast<std::ptrdiff_t>(dim);
        const auto td = static_cast<std::ptrdiff_t>(tokens) * d;
        return {data, layers, pairs, tokens, dim, static_cast<std::ptrdiff_t>(pairs) * td, td, d, 1, {}, 0};
    }

    /// A contiguous pair-major tensor [pairs][layers][tokens][dim].
    [[nodiscard]] static constexpr hidden_states_view pair_major(const T* data, std::size_t pairs,
                                                                 std::size_t layers, std::size_t tokens,
                                                                 std::size_t dim) noexcept {
        const auto d = static_cast<std::ptrdiff_t>(dim);
        const auto td = static_cast<std::ptrdiff_t>(tokens) * d;
        return {data, layers, pairs, tokens, dim, td, static_cast<std::ptrdiff_t>(layers) * td, d, 1, {}, 0};
    }

    /// One contiguous [pairs][tokens][dim] tensor per layer; `per_layer` must outlive the view.
    [[nodiscard]] static constexpr hidden_states_view from_layers(std::span<const T* const> per_layer,
                                                                  std::size_t pairs, std::size_t tokens,
                                                                  std::size_t dim) noexcept {
        const auto d = static_cast<std::ptrdiff_t>(dim);
        const auto td = static_cast<std::ptrdiff_t>(tokens) * d;
        return {per_layer.empty() ? nullptr : per_layer[0],
                per_layer.size(),
                pairs,
                tokens,
                dim,
                0,
                td,
                d,
                1,
                per_layer,
                0};
    }

    [[nodiscard]] constexpr const T* layer_base(std::size_t l) const noexcept {
        return (layer_data.empty() ? data + static_cast<std::ptrdiff_t>(l) * layer_stride : layer_data[l]) +
               offset;
    }
    /// Start of the vector (l, p, t, ·); its k-th entry is at `k·dim_stride`.
    [[nodiscard]] constexpr const T* token_ptr(std::size_t l, std::size_t p, std::size_t t) const noexcept {
        return layer_base(l) + static_cast<std::ptrdiff_t>(p) * pair_stride +
               static_cast<std::ptrdiff_t>(t) * token_stride;
    }
    [[nodiscard]] constexpr const T& operator()(std::size_t l, std::size_t p, std::size_t t,
                                                std::size_t k) const noexcept {
        return token_ptr(l, p, t)[static_cast<std::ptrdiff_t>(k) * dim_stride];
    }
    /// Sequences [first, first + count) of this view (no bounds check).
    [[nodiscard]] constexpr hidden_states_view pair_range(std::size_t first,
                                                          std::size_t count) const noexcept {
        hidden_states_view v = *this;
        v.pairs = count;
        const std::ptrdiff_t shift = static_cast<std::ptrdiff_t>(first) * pair_stride;
        if (layer_data.empty())
            v.data = data == nullptr ? nullptr : data + shift;
        else
            v.offset += shift;  // the per-layer pointers belong to the caller: shift through offset
        return v;
    }
};

/// A read-only 2-D view [pairs × tokens] of a token mask: a nonzero entry marks a valid token.
/// `M` is any arithmetic type (std::uint8_t, bool, std::int64_t as in a Hugging Face
/// attention mask, or the hidden states' own floating type). Strides count elements.
template <class M>
struct token_mask_view {
    const M* data = nullptr;
    std::size_t pairs = 0;
    std::size_t tokens = 0;
    std::ptrdiff_t pair_stride = 0;
    std::ptrdiff_t token_stride = 0;

    /// A contiguous row-major mask [pairs][tokens].
    [[nodiscard]] static constexpr token_mask_view contiguous(const M* data, std::size_t pairs,
                                                              std::size_t tokens) noexcept {
        return {data, pairs, tokens, static_cast<std::ptrdiff_t>(tokens), 1};
    }
    [[nodiscard]] constexpr const M& operator()(std::size_t p, std::size_t t) const noexcept {
        return data[static_cast<std::ptrdiff_t>(p) * pair_stride +
                    static_cast<std::ptrdiff_t>(t) * token_stride];
    }
    [[nodiscard]] constexpr bool valid(std::size_t p, std::size_t t) const noexcept {
        return (*this)(p, t) != M{0};
    }
    /// Rows [first, first + count) of this mask (no bounds check).
    [[nodiscard]] constexpr token_mask_view pair_range(std::size_t first, std::size_t count) const noexcept {
        token_mask_view v = *this;
        v.pairs = count;
        if (data != nullptr) v.data = data + static_cast<std::ptrdiff_t>(first) * pair_stride;
        return v;
    }
};

/// How a combined batch of 2B sequences holds the two responses of each pair.
enum class pair_order {
    chosen_first,  ///< rows [0, B) chosen, [B, 2B) rejected (TRL's concatenated forward)
    interleaved,   ///< rows 2i chosen, 2i+1 rejected
};

/// The chosen and the rejected half of something.
template <class View>
struct chosen_rejected {
    View chosen;
    View rejected;
};

namespace detail {

template <class View>
chosen_rejected<View> split_rows(const View& both, pair_order order, const char* where) {
    detail::require(both.pairs % 2 == 0, where, [&] {
        return "the combined view has " + std::to_string(both.pairs) +
               " rows, expected an even number 2B (chosen and rejected)";
    });
    const std::size_t b = both.pairs / 2;
    if (order == pair_order::chosen_first) return {both.pair_range(0, b), both.pair_range(b, b)};
    View chosen = both.pair_range(0, b);
    View rejected = both.pair_range(1, b);
    chosen.pair_stride *= 2;
    rejected.pair_stride *= 2;
    return {chosen, rejected};
}

}  // namespace detail

/// Splits hidden states of a combined 2B-row batch into chosen and rejected views of B rows
/// each, without copying. Throws sams::invalid_argument when the row count is odd.
template <class T>
[[nodiscard]] chosen_rejected<hidden_states_view<T>> split_chosen_rejected(
    const hidden_states_view<T>& both, pair_order order = pair_order::chosen_first) {
    return detail::split_rows(both, order, "split_chosen_rejected: hidden states");
}

/// Splits a combined 2B-row token mask the same way.
template <class M>
[[nodiscard]] chosen_rejected<token_mask_view<M>> split_chosen_rejected(
    const token_mask_view<M>& both, pair_order order = pair_order::chosen_first) {
    return detail::split_rows(both, order, "split_chosen_rejected: token mask");
}

namespace detail {

inline const char* side_name(bool chosen) noexcept { return chosen ? "chosen" : "rejected"; }

/// Shape and stride checks shared by the extractors; `name` is e.g. "chosen hidden states".
template <class T>
void check_hidden_states(const hidden_states_view<T>& h, const char* where, const char* name) {
    detail::require(h.layers > 0 && h.pairs > 0 && h.tokens > 0 && h.dim > 0, where, [&] {
        return std::string(name) + " must have layers, pairs, tokens and dim > 0, got " +
               std::to_string(h.layers) + "x" + std::to_string(h.pairs) + "x" + std::to_string(h.tokens) +
               "x" + std::to_string(h.dim);
    });
    if (h.layer_data.empty()) {
        detail::require(h.data != nullptr, where,
                        [&] { return std::string(name) + " has a null data pointer"; });
        detail::require(h.layers == 1 || h.layer_stride != 0, where, [&] {
            return std::string(name) + ": layer_stride is 0 with " + std::to_string(h.layers) +
                   " layers (strides unset? use layer_major() or set the strides)";
        });
    } else {
        detail::require(h.layer_data.size() == h.layers, where, [&] {
            return std::string(name) + ": layer_data has " + std::to_string(h.layer_data.size()) +
                   " pointers, expected " + std::to_string(h.layers) + " (one per layer)";
        });
        for (std::size_t l = 0; l < h.layers; ++l)
            detail::require(h.layer_data[l] != nullptr, where, [&] {
                return std::string(name) + ": layer_data[" + std::to_string(l) + "] is a null pointer";
            });
    }
    // A zero stride on a longer axis reads one entry repeatedly: almost always unset strides.
    detail::require(h.pairs == 1 || h.pair_stride != 0, where,
                    [&] { return std::string(name) + ": pair_stride is 0 with more than one pair"; });
    detail::require(h.tokens == 1 || h.token_stride != 0, where,
                    [&] { return std::string(name) + ": token_stride is 0 with more than one token"; });
    detail::require(h.dim == 1 || h.dim_stride != 0, where,
                    [&] { return std::string(name) + ": dim_stride is 0 with dim > 1"; });
}

/// Checks a mask against the hidden states it belongs to (B rows, `tokens` columns) and
/// counts the valid tokens of each row into `counts`. Throws on non-finite entries and on a
/// row without any valid token, naming the pair index and the side.
template <class M>
void check_mask(const token_mask_view<M>& m, std::size_t pairs, std::size_t tokens, bool chosen,
                const char* where, std::span<std::size_t> counts) {
    static_assert(std::is_arithmetic_v<M>, "sams: a token mask's element type must be arithmetic or bool");
    const char* name = chosen ? "chosen mask" : "rejected mask";
    detail::require(m.data != nullptr, where, [&] { return std::string(name) + " has a null data pointer"; });
    detail::require(m.pairs == pairs && m.tokens == tokens, where, [&] {
        return std::string(name) + " is " + std::to_string(m.pairs) + "x" + std::to_string(m.tokens) +
               ", expected " + std::to_string(pairs) + "x" + std::to_string(tokens) +
               " (pairs x tokens of the " + side_name(chosen) + " hidden states)";
    });
    detail::require(m.pairs == 1 || m.pair_stride != 0, where,
                    [&] { return std::string(name) + ": pair_stride is 0 with more than one pair"; });
    detail::require(m.tokens == 1 || m.token_stride != 0, where,
                    [&] { return std::string(name) + ": token_stride is 0 with more than one token"; });
    for (std::size_t p = 0; p < pairs; ++p) {
        std::size_t n = 0;
        for (std::size_t t = 0; t < tokens; ++t) {
            const M v = m(p, t);
            if constexpr (std::is_floating_point_v<M>)
                detail::require(std::isfinite(v), where, [&] {
                    return std::string(name) + " has NaN or Inf at pair " + std::to_string(p) + ", token " +
                           std::to_string(t);
                });
            n += v != M{0} ? 1 : 0;
        }
        detail::require(n > 0, where, [&] {
            return "pair " + std::to_string(p) + " has no valid token in the " + name +
                   " (a masked mean over zero tokens is undefined)";
        });
        counts[p] = n;
    }
}

}  // namespace detail
}  // namespace sams
