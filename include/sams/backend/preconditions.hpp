// Preconditions every backend checks the same way, with the same messages: index ranges of
// the row and element movers, and the shapes of a GEMM. The backends pass plain sizes, so
// these checks run on the host whatever the storage.
#pragma once

#include <cstddef>
#include <span>
#include <string>

#include <sams/backend/types.hpp>
#include <sams/core/error.hpp>

namespace sams::detail {

/// Throws sams::invalid_argument unless every index is < bound (rows or elements).
inline void check_indices(std::span<const std::size_t> idx, std::size_t bound, const char* where) {
    for (const std::size_t i : idx)
        if (i >= bound)
            fail(where, "index " + std::to_string(i) + " is out of range (" + std::to_string(bound) +
                            " rows or elements)");
}

/// m×n×k of c = op(a)·op(b).
struct gemm_shape {
    std::size_t m, n, k;
};

/// The checks of backend::gemm(ta, tb, alpha, a, b, beta, c), in this order: c must not
/// alias a or b; op(a) and op(b) must agree on the inner dimension; with beta != 0, c must
/// already be m×n. Returns the product's shape.
inline gemm_shape check_gemm(transpose ta, transpose tb, std::size_t a_rows, std::size_t a_cols,
                             std::size_t b_rows, std::size_t b_cols, bool c_aliases, bool beta_is_zero,
                             std::size_t c_rows, std::size_t c_cols, const char* where) {
    require(!c_aliases, where, "c must not alias a or b");
    const bool at = ta == transpose::yes;
    const bool bt = tb == transpose::yes;
    const gemm_shape s{at ? a_cols : a_rows, bt ? b_rows : b_cols, at ? a_rows : a_cols};
    require(s.k == (bt ? b_cols : b_rows), where, "inner dimensions of op(a) and op(b) differ");
    require(beta_is_zero || (c_rows == s.m && c_cols == s.n), where,
            "c must have shape rows(op(a)) x cols(op(b)) when beta != 0");
    return s;
}

}  // namespace sams::detail
