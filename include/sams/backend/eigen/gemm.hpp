// The one dense product of the CPU code: Eigen's GEMM over tiles that keep its packed
// operand blocks on the stack (no heap allocation at any size) and share the tiles among
// OpenMP threads. eigen_backend, the thrust backend's host fallback and the mean-pool
// extractor's projection all multiply through it.
#pragma once

#include <algorithm>
#include <cstddef>

#include <Eigen/Core>
#if defined(_OPENMP)
#include <omp.h>
#endif

namespace sams::detail {

// tiled_gemm: c = alpha·a·b + beta·c over output tiles of at most gemm_tile rows and columns, each
// accumulated in steps of at most gemm_depth inner terms. Eigen packs GEMM operands into
// blocks of at most (rows·depth) and (depth·cols) elements, taken from the stack up to
// EIGEN_STACK_ALLOCATION_LIMIT bytes and from the heap beyond; these tiles keep both on
// the stack, so training allocates nothing at any size, and the tiled product measured
// as fast as Eigen's own blocking at the nets' shapes.
// Under OpenMP the tiles are shared among the threads, each running Eigen's sequential
// product. Eigen's own parallel GEMM would take the packed block from the heap at every
// call and fork once per tile and depth step; this forks once per product, and exactly
// when Eigen would have (gemm_threads), so no product reaches Eigen's parallel path.
inline constexpr Eigen::Index gemm_tile = 256;
template <class T>
inline constexpr Eigen::Index gemm_depth = std::max<Eigen::Index>(8, EIGEN_STACK_ALLOCATION_LIMIT /
                                                                         Eigen::Index{sizeof(T)} / gemm_tile);

inline Eigen::Index ceil_div(Eigen::Index a, Eigen::Index b) noexcept { return (a + b - 1) / b; }

// Threads for an m×n×k product: Eigen::nbThreads() where Eigen would run its parallel
// GEMM (at least 2·50000 multiply-adds, not a GEMV) outside a parallel region, else 1.
inline int gemm_threads([[maybe_unused]] Eigen::Index m, [[maybe_unused]] Eigen::Index n,
                        [[maybe_unused]] Eigen::Index k) noexcept {
#if defined(_OPENMP)
    if (m > 1 && n > 1 && static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k) >= 1e5 &&
        !omp_in_parallel())
        return std::max(1, Eigen::nbThreads());
#endif
    return 1;
}

template <class T, class A, class B, class C>
void tiled_gemm(T alpha, const A& a, const B& b, T beta, C& c) {
    using index = Eigen::Index;
    const index m = c.rows(), n = c.cols(), k = a.cols();
    const int threads = gemm_threads(m, n, k);
    index tile_rows = gemm_tile, tile_cols = gemm_tile;
    if (threads > 1) {
        // At least two tiles a thread where the shape allows (tiles of at least 64 columns
        // and 32 rows), of even sizes rounded up to 16.
        const index want = 2 * index{threads};
        index ct = ceil_div(n, gemm_tile), rt = ceil_div(m, gemm_tile);
        if (rt * ct < want) ct = std::max(ct, std::min(std::max<index>(1, n / 64), ceil_div(want, rt)));
        if (rt * ct < want) rt = std::max(rt, std::min(std::max<index>(1, m / 32), ceil_div(want, ct)));
        tile_cols = std::min(gemm_tile, ceil_div(ceil_div(n, ct), 16) * 16);
        tile_rows = std::min(gemm_tile, ceil_div(ceil_div(m, rt), 16) * 16);
    }
    const index col_tiles = ceil_div(n, tile_cols);
    const index tiles = ceil_div(m, tile_rows) * col_tiles;
    const auto run_tile = [&](index t) {
        const index r0 = (t / col_tiles) * tile_rows, c0 = (t % col_tiles) * tile_cols;
        const index nr = std::min(tile_rows, m - r0), nc = std::min(tile_cols, n - c0);
        auto cb = c.block(r0, c0, nr, nc);
        if (beta == T(0) && k == 0)
            cb.setZero();
        else if (beta != T(0) && beta != T(1))
            cb *= beta;
        for (index k0 = 0; k0 < k; k0 += gemm_depth<T>) {
            const index nk = std::min(gemm_depth<T>, k - k0);
            const auto ab = a.block(r0, k0, nr, nk);
            const auto bb = b.block(k0, c0, nk, nc);
            // alpha == 1 stays out of the expression: where a product degenerates
            // to a GEMV, Eigen copies a scaled operand into a heap temporary.
            if (k0 == 0 && beta == T(0)) {
                if (alpha == T(1))
                    cb.noalias() = ab * bb;
                else
                    cb.noalias() = alpha * ab * bb;
            } else {
                if (alpha == T(1))
                    cb.noalias() += ab * bb;
                else
                    cb.noalias() += alpha * ab * bb;
            }
        }
    };
#if defined(_OPENMP)
    if (threads > 1) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
        for (index t = 0; t < tiles; ++t) run_tile(t);
        return;
    }
#endif
    for (index t = 0; t < tiles; ++t) run_tile(t);
}

}  // namespace sams::detail
