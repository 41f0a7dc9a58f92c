// Non-owning views over the host's buffers: a strided row-major matrix and the batch of
// per-pair quantities that a trainer hands to the library each step (docs/concepts.md).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <type_traits>

#include <sams/core/error.hpp>

namespace sams {

/// A row-major matrix view over memory the library does not own. `row_stride` is the
/// distance between the starts of consecutive rows, in elements; 0 means `cols`
/// (contiguous rows).
template <class T>
struct matrix_view {
    T* data = nullptr;
    std::size_t rows = 0;
    std::size_t cols = 0;
    std::size_t row_stride = 0;

    [[nodiscard]] constexpr std::size_t stride() const noexcept {
        return row_stride == 0 ? cols : row_stride;
    }
    [[nodiscard]] constexpr bool empty() const noexcept { return rows == 0 || cols == 0; }
    [[nodiscard]] constexpr T* row(std::size_t r) const noexcept { return data + r * stride(); }
    [[nodiscard]] constexpr T& operator()(std::size_t r, std::size_t c) const noexcept {
        return data[r * stride() + c];
    }
    /// A read-only view of the same memory.
    [[nodiscard]] constexpr operator matrix_view<const T>() const noexcept
        requires(!std::is_const_v<T>)
    {
        return {data, rows, cols, row_stride};
    }
};

/// One batch of B preference pairs, as the host's forward passes produced it (docs/concepts.md).
/// Every span has length B or is empty where the field is optional. Nothing is copied:
/// the views must stay valid for the duration of the call they are passed to.
template <class T>
struct pair_batch {
    std::span<const T> policy_chosen{};       ///< a_w: summed policy log-prob of the chosen response
    std::span<const T> policy_rejected{};     ///< a_l
    std::span<const T> reference_chosen{};    ///< r_w; empty for reference-free losses
    std::span<const T> reference_rejected{};  ///< r_l; empty for reference-free losses
    std::span<const T> chosen_length{};       ///< n_w in tokens; needed by length-normalised losses
    std::span<const T> rejected_length{};     ///< n_l
    matrix_view<const T> contexts{};          ///< B×D arm contexts (docs/contexts.md); needed by schedulers
    std::span<const std::int64_t> ids{};      ///< stable dataset indices; required by guided selection
    /// B×k per-pair gradient sketches s_i = S·∇θ(a_w,i − a_l,i) for guided selection
    /// (docs/guided.md); empty for every other scheduler.
    matrix_view<const T> sketches{};

    [[nodiscard]] constexpr std::size_t size() const noexcept { return policy_chosen.size(); }
    [[nodiscard]] constexpr bool has_reference() const noexcept {
        return !reference_chosen.empty() || !reference_rejected.empty();
    }
    [[nodiscard]] constexpr bool has_lengths() const noexcept {
        return !chosen_length.empty() || !rejected_length.empty();
    }
};

namespace detail {

template <class T>
bool all_finite(std::span<const T> values) {
    for (const T& v : values)
        if (!std::isfinite(v)) return false;
    return true;
}

template <class T>
bool all_finite(const matrix_view<const T>& m) {
    for (std::size_t r = 0; r < m.rows; ++r)
        if (!all_finite(std::span<const T>(m.row(r), m.cols))) return false;
    return true;
}

/// Checks one span of a batch: length B (or empty when optional) and finite values.
template <class T>
void check_span(std::span<const T> values, std::size_t batch_size, bool required, const char* where,
                const char* name) {
    if (values.empty()) {
        require(!required, where, [&] { return std::string(name) + " is required but empty"; });
        return;
    }
    require(values.size() == batch_size, where, [&] {
        return std::string(name) + " has length " + std::to_string(values.size()) + ", expected the batch size " +
               std::to_string(batch_size);
    });
    require(all_finite(values), where, [&] { return std::string(name) + " contains NaN or Inf"; });
}

}  // namespace detail
}  // namespace sams
