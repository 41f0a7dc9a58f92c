// An owned, contiguous B×D matrix of arm contexts: what the extractors' convenience overloads
// return when the caller does not hand in a buffer of its own.
#pragma once

#include <cstddef>
#include <vector>

#include <sams/core/views.hpp>

namespace sams {

/// Row-major B×D contexts in a std::vector. view() is what a pair_batch's `contexts` takes.
template <class T>
struct context_matrix {
    std::size_t rows = 0;
    std::size_t cols = 0;
    std::vector<T> values{};

    context_matrix() = default;
    context_matrix(std::size_t r, std::size_t c) : rows(r), cols(c), values(r * c) {}

    [[nodiscard]] matrix_view<T> view() noexcept { return {values.data(), rows, cols, cols}; }
    [[nodiscard]] matrix_view<const T> view() const noexcept { return {values.data(), rows, cols, cols}; }
    [[nodiscard]] T& operator()(std::size_t r, std::size_t c) noexcept { return values[r * cols + c]; }
    [[nodiscard]] const T& operator()(std::size_t r, std::size_t c) const noexcept {
        return values[r * cols + c];
    }
};

}  // namespace sams
