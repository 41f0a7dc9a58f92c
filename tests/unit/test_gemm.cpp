// The Eigen backend's one dense product, detail::tiled_gemm (backend/eigen/gemm.hpp), against a
// triple loop in long double: every transpose combination, odd and empty shapes, shapes larger
// than one tile, operands and results that are strided blocks of larger matrices, column-major
// operands, and alpha/beta. Built with SAMS_USE_CBLAS (CMake's SAMS_WITH_BLAS) the same cases
// run through cblas_sgemm/cblas_dgemm and are also checked against Eigen's own product, and
// the cases CBLAS cannot take (inner strides ≠ 1) must fall back to the Eigen path.
#include <doctest/doctest.h>

#include <sams/backend/eigen/gemm.hpp>
#include <sams/core/rng.hpp>

#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

#include <Eigen/Core>

namespace {

using idx = Eigen::Index;
template <class T>
using row_major = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using col_major = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>;

template <class M>
void fill(M& m, sams::rng& g) {
    for (idx i = 0; i < m.rows(); ++i)
        for (idx j = 0; j < m.cols(); ++j) m(i, j) = static_cast<typename M::Scalar>(g.uniform(-1.0, 1.0));
}

// Checks c_out = alpha·op_a·op_b + beta·c_in element by element, with the forward error bound
// of a k-term dot product: |error| ≤ 2(k+2)·ε·(|alpha|·Σ|a||b| + |beta||c|) (+ a tiny floor).
template <class T, class OA, class OB, class CI, class CO>
void check_product(T alpha, const OA& a, const OB& b, T beta, const CI& c_in, const CO& c_out) {
    const idx m = c_out.rows(), n = c_out.cols(), k = a.cols();
    REQUIRE(a.rows() == m);
    REQUIRE(b.rows() == k);
    REQUIRE(b.cols() == n);
    const long double eps = std::numeric_limits<T>::epsilon();
    bool all_ok = true;
    for (idx i = 0; i < m; ++i)
        for (idx j = 0; j < n; ++j) {
            long double sum = 0, mag = 0;
            for (idx l = 0; l < k; ++l) {
                sum += static_cast<long double>(a(i, l)) * static_cast<long double>(b(l, j));
                mag += std::fabs(static_cast<long double>(a(i, l)) * static_cast<long double>(b(l, j)));
            }
            long double want = static_cast<long double>(alpha) * sum;
            long double scale = std::fabs(static_cast<long double>(alpha)) * mag;
            if (beta != T(0)) {
                want += static_cast<long double>(beta) * static_cast<long double>(c_in(i, j));
                scale += std::fabs(static_cast<long double>(beta) * static_cast<long double>(c_in(i, j)));
            }
            const long double tol = 2.0L * static_cast<long double>(k + 2) * eps * scale + 1e-30L;
            const long double got = static_cast<long double>(c_out(i, j));
            if (!(std::fabs(got - want) <= tol)) {
                all_ok = false;
                MESSAGE("C(" << i << ", " << j << ") = " << static_cast<double>(got) << ", want "
                             << static_cast<double>(want) << " ± " << static_cast<double>(tol));
            }
        }
    CHECK(all_ok);
}

struct dims {
    idx m, n, k;
};

// Odd sizes, degenerate vectors, empty products, and sizes above one tile (256) and depth step.
const std::vector<dims>& shapes() {
    static const std::vector<dims> s{{1, 1, 1},    {1, 7, 5},    {7, 1, 5},     {5, 7, 1},
                                     {13, 17, 19}, {3, 4, 0},    {0, 3, 4},     {3, 0, 4},
                                     {1, 300, 9},  {129, 1, 33}, {260, 270, 3}, {5, 9, 600}};
    return s;
}

// One product c = alpha·op(a)·op(b) + beta·c where the stored operands are blocks (offset 1, 2)
// of larger row-major matrices (outer stride above the block's width) and c is a block of a
// larger row-major matrix too; every transpose combination.
template <class T>
void run_strided_case(const dims& d, bool ta, bool tb, T alpha, T beta, sams::rng& g) {
    const idx ar = ta ? d.k : d.m, ac = ta ? d.m : d.k;
    const idx br = tb ? d.n : d.k, bc = tb ? d.k : d.n;
    row_major<T> abig(ar + 3, ac + 5), bbig(br + 2, bc + 7), cbig(d.m + 4, d.n + 3);
    fill(abig, g);
    fill(bbig, g);
    fill(cbig, g);
    auto as = abig.block(1, 2, ar, ac);
    auto bs = bbig.block(2, 1, br, bc);
    auto cs = cbig.block(3, 1, d.m, d.n);
    if (beta == T(0)) cs.setConstant(std::numeric_limits<T>::quiet_NaN());  // never read
    const row_major<T> c_in = cs;
    const row_major<T> cbig_in = cbig;
    if (!ta && !tb)
        sams::detail::tiled_gemm(alpha, as, bs, beta, cs);
    else if (!ta && tb)
        sams::detail::tiled_gemm(alpha, as, bs.transpose(), beta, cs);
    else if (ta && !tb)
        sams::detail::tiled_gemm(alpha, as.transpose(), bs, beta, cs);
    else
        sams::detail::tiled_gemm(alpha, as.transpose(), bs.transpose(), beta, cs);
    const row_major<T> opa = ta ? row_major<T>(as.transpose()) : row_major<T>(as);
    const row_major<T> opb = tb ? row_major<T>(bs.transpose()) : row_major<T>(bs);
    check_product(alpha, opa, opb, beta, c_in, cs);
    // Outside the block nothing changed.
    bool outside_kept = true;
    for (idx i = 0; i < cbig.rows(); ++i)
        for (idx j = 0; j < cbig.cols(); ++j) {
            const bool inside = i >= 3 && i < 3 + d.m && j >= 1 && j < 1 + d.n;
            if (!inside && cbig(i, j) != cbig_in(i, j)) outside_kept = false;
        }
    CHECK(outside_kept);
#if defined(SAMS_USE_CBLAS)
    // The same product by Eigen's own GEMM, within the same bound (both sides err).
    if (d.m > 0 && d.n > 0) {
        row_major<T> eig = c_in;
        if (beta == T(0))
            eig.noalias() = alpha * opa * opb;
        else
            eig = (alpha * opa * opb + beta * c_in).eval();
        check_product(alpha, opa, opb, beta, c_in, eig);
        const long double eps = std::numeric_limits<T>::epsilon();
        const long double scale =
            (static_cast<long double>(std::fabs(alpha)) * (opa.cwiseAbs() * opb.cwiseAbs()).maxCoeff() +
             (beta == T(0) ? 0.0L : std::fabs(static_cast<long double>(beta)) * c_in.cwiseAbs().maxCoeff()));
        CHECK(static_cast<long double>((eig - row_major<T>(cs)).cwiseAbs().maxCoeff()) <=
              4.0L * static_cast<long double>(d.k + 2) * eps * scale + 1e-30L);
    }
#endif
}

}  // namespace

TEST_CASE_TEMPLATE("tiled_gemm: every transpose, odd and empty shapes, strided blocks, alpha and beta", T,
                   float, double) {
    sams::rng g(17);
    for (const dims& d : shapes())
        for (const bool ta : {false, true})
            for (const bool tb : {false, true})
                for (const T alpha : {T(1), T(-0.5)})
                    for (const T beta : {T(0), T(1), T(0.75)}) {
                        CAPTURE(d.m);
                        CAPTURE(d.n);
                        CAPTURE(d.k);
                        CAPTURE(ta);
                        CAPTURE(tb);
                        CAPTURE(alpha);
                        CAPTURE(beta);
                        run_strided_case<T>(d, ta, tb, alpha, beta, g);
                    }
}

TEST_CASE_TEMPLATE("tiled_gemm: column-major operands and a column-vector result", T, float, double) {
    sams::rng g(23);
    for (const dims& d : {dims{5, 1, 7}, dims{1, 1, 9}, dims{33, 1, 300}}) {
        col_major<T> a(d.m, d.k), b(d.k, d.n);
        fill(a, g);
        fill(b, g);
        Eigen::Matrix<T, Eigen::Dynamic, 1> c(d.m);
        for (idx i = 0; i < d.m; ++i) c(i) = static_cast<T>(g.uniform(-1.0, 1.0));
        const Eigen::Matrix<T, Eigen::Dynamic, 1> c_in = c;
        sams::detail::tiled_gemm(T(0.5), a, b, T(2), c);
        check_product(T(0.5), a, b, T(2), c_in, c);
    }
    // Column-major operands with a row-major result of several columns.
    col_major<T> a(19, 23), b(23, 29);
    fill(a, g);
    fill(b, g);
    row_major<T> c(19, 29);
    fill(c, g);
    const row_major<T> c_in = c;
    sams::detail::tiled_gemm(T(1), a, b, T(1), c);
    check_product(T(1), a, b, T(1), c_in, c);
    row_major<T> ct(29, 19);
    fill(ct, g);
    const row_major<T> ct_in = ct;
    sams::detail::tiled_gemm(T(-1), b.transpose(), a.transpose(), T(0.5), ct);
    check_product(T(-1), row_major<T>(b.transpose()), row_major<T>(a.transpose()), T(0.5), ct_in, ct);
}

TEST_CASE_TEMPLATE("tiled_gemm: operands with an inner stride take the Eigen path and agree", T, float,
                   double) {
    sams::rng g(29);
    const idx m = 11, n = 13, k = 17;
    std::vector<T> a_store(static_cast<std::size_t>(m * k * 2)), b_store(static_cast<std::size_t>(k * n));
    for (T& v : a_store) v = static_cast<T>(g.uniform(-1.0, 1.0));
    for (T& v : b_store) v = static_cast<T>(g.uniform(-1.0, 1.0));
    // Every other element of a row-major buffer: inner stride 2, which CBLAS cannot express.
    using strided = Eigen::Map<const row_major<T>, 0, Eigen::Stride<Eigen::Dynamic, 2>>;
    const strided a(a_store.data(), m, k, Eigen::Stride<Eigen::Dynamic, 2>(2 * k, 2));
    const Eigen::Map<const row_major<T>> b(b_store.data(), k, n);
    row_major<T> c(m, n);
    c.setConstant(std::numeric_limits<T>::quiet_NaN());
#if defined(SAMS_USE_CBLAS)
    CHECK_FALSE(sams::detail::cblas_gemm(T(1), a, b, T(0), c));
    CHECK(std::isnan(c(0, 0)));  // the refused call touched nothing
    row_major<T> c2(m, n);
    CHECK(sams::detail::cblas_gemm(T(1), row_major<T>(a), b, T(0), c2));
#endif
    sams::detail::tiled_gemm(T(1), a, b, T(0), c);
    check_product(T(1), row_major<T>(a), b, T(0), row_major<T>(c), c);
}
