// The one dense product of the CPU code: Eigen's GEMM over tiles that keep its packed
// operand blocks on the stack (no heap allocation at any size) and share the tiles among
// OpenMP threads. eigen_backend, the thrust backend's host fallback and the mean-pool
// extractor's projection all multiply through it.
//
// With SAMS_USE_CBLAS defined (CMake's SAMS_WITH_BLAS, docs/backends.md) float and double
// products whose operands are unit-stride dense blocks go to cblas_sgemm / cblas_dgemm on
// the operands' own memory instead (no copy, no allocation by this code); everything else,
// and everything without the definition, takes the tiled Eigen path below. The BLAS runs
// its own threads (OPENBLAS_NUM_THREADS, MKL_NUM_THREADS; not Eigen::nbThreads()).
#pragma once

#include <algorithm>
#include <cstddef>
#include <type_traits>

#include <Eigen/Core>
#if defined(_OPENMP)
#include <omp.h>
#endif
#if defined(SAMS_USE_CBLAS)
#if defined(SAMS_CBLAS_HEADER)
#include SAMS_CBLAS_HEADER
#else
#include <cblas.h>
#endif
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

#if defined(SAMS_USE_CBLAS)
// An operand as CBLAS sees it in row-major order: base pointer, leading dimension and
// whether it is transposed. Plain dense expressions with direct access (matrices, maps,
// blocks) and Eigen::Transpose of them qualify, if their inner stride is 1.
template <class X>
struct cblas_operand {
    using base = std::remove_cv_t<X>;
    static constexpr bool flipped = false;
    static const base& get(const X& x) noexcept { return x; }
};
template <class X>
struct cblas_operand<Eigen::Transpose<X>> {
    using base = std::remove_cv_t<X>;
    static constexpr bool flipped = true;
    static const base& get(const Eigen::Transpose<X>& x) noexcept { return x.nestedExpression(); }
};
template <class X>
struct cblas_operand<const Eigen::Transpose<X>> : cblas_operand<Eigen::Transpose<X>> {};

template <class T, class X>
inline constexpr bool cblas_direct =
    std::is_base_of_v<Eigen::DenseBase<typename cblas_operand<X>::base>, typename cblas_operand<X>::base>&&
        std::is_same_v<typename cblas_operand<X>::base::Scalar, T> &&
    (int(cblas_operand<X>::base::Flags) & Eigen::DirectAccessBit) != 0 &&
    (std::is_same_v<T, float> || std::is_same_v<T, double>);

// The integer type of the CBLAS in use (int, OpenBLAS's blasint, MKL_INT), read off
// cblas_sgemm's signature.
template <class F>
struct cblas_int_of;
template <class R, class O, class TA, class TB, class I, class... Rest>
struct cblas_int_of<R (*)(O, TA, TB, I, Rest...)> {
    using type = std::remove_cv_t<I>;
};
using cblas_int = typename cblas_int_of<decltype(&cblas_sgemm)>::type;

struct cblas_view {
    CBLAS_TRANSPOSE trans;
    cblas_int ld;
    bool ok;
};

// op(X) is rows×cols as the product uses it; the stored base is that or its transpose, in
// row- or column-major order. A column-major base is the row-major storage of its transpose.
template <class X>
cblas_view cblas_describe(const X& x) noexcept {
    using op = cblas_operand<X>;
    const auto& b = op::get(x);
    const bool row_major = op::base::IsRowMajor;
    const bool transposed = op::flipped != !row_major;  // as row-major storage
    // Row-major storage: (stored rows) × (stored cols) with stride ld between rows.
    const Eigen::Index stored_rows = row_major ? b.rows() : b.cols();
    const Eigen::Index stored_cols = row_major ? b.cols() : b.rows();
    Eigen::Index ld = b.outerStride();
    bool ok = b.innerStride() == 1;
    // A single stored row never uses ld, but BLAS checks ld >= max(1, stored cols).
    if (stored_rows <= 1) ld = std::max(ld, stored_cols);
    ld = std::max<Eigen::Index>(ld, 1);
    ok = ok && ld >= stored_cols;
    return {transposed ? CblasTrans : CblasNoTrans, static_cast<cblas_int>(ld), ok};
}

// c = alpha·a·b + beta·c through CBLAS where all three operands allow it; false otherwise
// (nothing touched).
template <class T, class A, class B, class C>
bool cblas_gemm(T alpha, const A& a, const B& b, T beta, C& c) {
    if constexpr (cblas_direct<T, A> && cblas_direct<T, B> && cblas_direct<T, C> &&
                  !cblas_operand<C>::flipped) {
        const Eigen::Index m = c.rows(), n = c.cols(), k = a.cols();
        // C as row-major storage: a row-major block, or a column-major single column.
        constexpr bool c_row_major = cblas_operand<C>::base::IsRowMajor;
        if (c.innerStride() != 1 || (!c_row_major && n > 1)) return false;
        const cblas_view va = cblas_describe(a), vb = cblas_describe(b);
        if (!va.ok || !vb.ok) return false;
        if (m == 0 || n == 0) return true;
        if (k == 0) {
            if (beta == T(0))
                c.setZero();
            else if (beta != T(1))
                c *= beta;
            return true;
        }
        const Eigen::Index c_ld = c_row_major && m > 1 ? c.outerStride() : n;
        if (c_ld < n) return false;
        const auto ldc = static_cast<cblas_int>(std::max<Eigen::Index>(c_ld, 1));
        const auto bm = static_cast<cblas_int>(m), bn = static_cast<cblas_int>(n),
                   bk = static_cast<cblas_int>(k);
        const T* ap = cblas_operand<A>::get(a).data();
        const T* bp = cblas_operand<B>::get(b).data();
        T* cp = c.data();
        if constexpr (std::is_same_v<T, float>)
            cblas_sgemm(CblasRowMajor, va.trans, vb.trans, bm, bn, bk, alpha, ap, va.ld, bp, vb.ld, beta, cp,
                        ldc);
        else
            cblas_dgemm(CblasRowMajor, va.trans, vb.trans, bm, bn, bk, alpha, ap, va.ld, bp, vb.ld, beta, cp,
                        ldc);
        return true;
    } else {
        return false;
    }
}
#endif

template <class T, class A, class B, class C>
void tiled_gemm(T alpha, const A& a, const B& b, T beta, C& c) {
#if defined(SAMS_USE_CBLAS)
    if (cblas_gemm(alpha, a, b, beta, c)) return;
#endif
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
