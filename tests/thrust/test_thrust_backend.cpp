// sams::thrust_backend op by op against sams::eigen_backend (the reference model) on random
// data, plus its own storage rule, memory account, pointer checks and errors. Compiled by g++
// on thrust's CPP system in CI, and by nvcc on the CUDA system through
// test_thrust_backend.cu (tools/gpu_check.sh).
//
// Tolerances: every comparison is |got − want| ≤ tol·max(1, |want|) with tol = 1e-5 (float)
// or 1e-12 (double) on the host systems. Elementwise ops, gathers and the dropout mask must
// match exactly; sums may differ in order. Under CUDA (cuBLAS GEMMs, FMA contraction, GEMV
// reductions) float uses 1e-4 and double 1e-11.
#include <doctest/doctest.h>

#include <sams/backend/concept.hpp>
#include <sams/backend/eigen/eigen_backend.hpp>
#include <sams/backend/thrust/thrust_backend.hpp>
#include <sams/core/rng.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace {

template <class T>
double tolerance() {
    if constexpr (SAMS_THRUST_CUDA) return std::is_same_v<T, float> ? 1e-4 : 1e-11;
    return std::is_same_v<T, float> ? 1e-5 : 1e-12;
}

template <class T>
std::vector<T> random_values(std::size_t n, sams::rng& g, double lo = -1.0, double hi = 1.0) {
    std::vector<T> v(n);
    for (auto& x : v) x = static_cast<T>(g.uniform(lo, hi));
    return v;
}

/// The same op on both backends: `e` the Eigen reference, `t` the backend under test.
template <class T>
struct both {
    sams::eigen_backend<T> e;
    sams::thrust_backend<T> t;

    template <class Be>
    auto matrix(Be& be, std::size_t r, std::size_t c, const std::vector<T>& values) {
        typename Be::matrix m;
        be.upload(sams::matrix_view<const T>{values.data(), r, c, c}, m);
        return m;
    }
    template <class Be>
    auto vector(Be& be, const std::vector<T>& values) {
        typename Be::vector v;
        be.upload(std::span<const T>(values), v);
        return v;
    }
    template <class Be>
    std::vector<T> host(Be& be, const typename Be::matrix& m) {
        std::vector<T> out(be.rows(m) * be.cols(m));
        be.download(m, std::span<T>(out));
        return out;
    }
    template <class Be>
    std::vector<T> host(Be& be, const typename Be::vector& v) {
        std::vector<T> out(be.size(v));
        be.download(v, std::span<T>(out));
        return out;
    }
};

template <class T>
void check_close(const std::vector<T>& got, const std::vector<T>& want, double tol) {
    REQUIRE(got.size() == want.size());
    std::size_t bad = 0;
    for (std::size_t i = 0; i < got.size(); ++i) {
        const double g = static_cast<double>(got[i]), w = static_cast<double>(want[i]);
        if (!(std::abs(g - w) <= tol * std::max(1.0, std::abs(w)))) {
            if (bad++ < 5) CHECK_MESSAGE(false, "element " << i << ": got " << g << ", want " << w);
        }
    }
    CHECK(bad == 0);
}

template <class T>
void check_equal(const std::vector<T>& got, const std::vector<T>& want) {
    REQUIRE(got.size() == want.size());
    std::size_t bad = 0;
    for (std::size_t i = 0; i < got.size(); ++i) bad += got[i] == want[i] ? 0 : 1;
    CHECK(bad == 0);
}

template <class T, class Matrix>
void check_shape(const sams::thrust_backend<T>& be, const Matrix& m, std::size_t r, std::size_t c) {
    CHECK(be.rows(m) == r);
    CHECK(be.cols(m) == c);
}

}  // namespace

TEST_CASE("thrust_backend: models the backend concept") {
    static_assert(sams::backend<sams::thrust_backend<float>>);
    static_assert(sams::backend<sams::thrust_backend<double>>);
    static_assert(!std::is_copy_constructible_v<sams::thrust_matrix<float>>,
                  "backend matrices are move-only: a copy would be a hidden device allocation");
    static_assert(std::is_nothrow_move_constructible_v<sams::thrust_matrix<float>>);
    static_assert(std::is_copy_constructible_v<sams::thrust_backend<float>>);
    CHECK(sams::thrust_backend<float>{}.allow_tf32() == false);
    CHECK(sams::thrust_backend<float>{sams::thrust_backend_options{.allow_tf32 = true}}.allow_tf32());
}

TEST_CASE_TEMPLATE("thrust_backend: storage keeps its capacity and the account follows it", T, float, double) {
    sams::thrust_backend<T> be;
    CHECK(be.device_bytes() == 0);
    {
        sams::thrust_matrix<T> m;
        be.resize(m, 10, 8);
        CHECK(m.capacity() == 80);
        CHECK(be.device_bytes() == 80 * sizeof(T));
        const T* p = m.data();
        be.resize(m, 4, 5);  // shrinking keeps the allocation
        CHECK(m.data() == p);
        CHECK(m.capacity() == 80);
        check_shape(be, m, 4, 5);
        be.resize(m, 8, 10);  // growing back within capacity allocates nothing
        CHECK(m.data() == p);
        CHECK(be.device_bytes() == 80 * sizeof(T));

        sams::thrust_vector<T> v;
        be.resize(v, 7);
        CHECK(be.device_bytes() == 87 * sizeof(T));
        sams::thrust_vector<T> moved(std::move(v));
        CHECK(be.device_bytes() == 87 * sizeof(T));
        CHECK(moved.capacity() == 7);

        sams::thrust_backend<T> copy = be;  // copies share the account
        sams::thrust_vector<T> w;
        copy.resize(w, 3);
        CHECK(be.device_bytes() == 90 * sizeof(T));
        CHECK(be.peak_device_bytes() >= 90 * sizeof(T));
    }
    CHECK(be.device_bytes() == 0);  // destruction gives everything back
    CHECK(be.peak_device_bytes() >= 90 * sizeof(T));
}

TEST_CASE_TEMPLATE("thrust_backend: preserving resizes keep the prefix", T, float, double) {
    both<T> b;
    sams::rng g(1);
    const auto values = random_values<T>(3 * 4, g);
    auto m = b.matrix(b.t, 3, 4, values);
    b.t.resize_rows_preserve(m, 9);
    check_shape(b.t, m, 9, 4);
    const auto grown = b.host(b.t, m);
    check_equal(std::vector<T>(grown.begin(), grown.begin() + 12), values);
    b.t.resize_rows_preserve(m, 2);
    check_equal(b.host(b.t, m), std::vector<T>(values.begin(), values.begin() + 8));

    auto v = b.vector(b.t, values);
    b.t.resize_preserve(v, 30);
    const auto vg = b.host(b.t, v);
    check_equal(std::vector<T>(vg.begin(), vg.begin() + 12), values);
}

TEST_CASE_TEMPLATE("thrust_backend: upload, download, fill, copy and finiteness", T, float, double) {
    both<T> b;
    sams::rng g(2);
    // A strided host view: 3 rows of 4 inside rows of 6.
    const auto wide = random_values<T>(3 * 6, g);
    typename sams::thrust_backend<T>::matrix m;
    b.t.upload(sams::matrix_view<const T>{wide.data(), 3, 4, 6}, m);
    check_shape(b.t, m, 3, 4);
    std::vector<T> want;
    for (std::size_t r = 0; r < 3; ++r)
        for (std::size_t c = 0; c < 4; ++c) want.push_back(wide[r * 6 + c]);
    check_equal(b.host(b.t, m), want);

    // A view of backend memory (device memory under CUDA) uploads too: how the scheduler
    // receives contexts that a host framework keeps on the GPU.
    typename sams::thrust_backend<T>::matrix from_device;
    b.t.upload(sams::matrix_view<const T>{m.data(), 2, 4, 4}, from_device);
    check_equal(b.host(b.t, from_device), std::vector<T>(want.begin(), want.begin() + 8));

    typename sams::thrust_backend<T>::vector v, v2, flat;
    b.t.upload(std::span<const T>(want), v);
    check_equal(b.host(b.t, v), want);
    b.t.copy(v, v2);
    check_equal(b.host(b.t, v2), want);
    b.t.copy(m, flat);
    check_equal(b.host(b.t, flat), want);
    typename sams::thrust_backend<T>::matrix m2;
    b.t.copy(m, m2);
    check_equal(b.host(b.t, m2), want);

    b.t.fill(m2, T(2.5));
    check_equal(b.host(b.t, m2), std::vector<T>(12, T(2.5)));
    b.t.fill(v2, T(-1));
    check_equal(b.host(b.t, v2), std::vector<T>(12, T(-1)));

    CHECK(b.t.all_finite(m));
    CHECK(b.t.all_finite(v));
    for (const T bad : {std::numeric_limits<T>::quiet_NaN(), std::numeric_limits<T>::infinity(),
                        -std::numeric_limits<T>::infinity()}) {
        auto w = want;
        w[7] = bad;
        b.t.upload(std::span<const T>(w), v2);
        CHECK_FALSE(b.t.all_finite(v2));
        b.t.upload(sams::matrix_view<const T>{w.data(), 3, 4, 4}, m2);
        CHECK_FALSE(b.t.all_finite(m2));
    }
    typename sams::thrust_backend<T>::matrix empty;
    CHECK(b.t.all_finite(empty));

    std::vector<T> wrong(5);
    CHECK_THROWS_AS(b.t.download(m, std::span<T>(wrong)), sams::invalid_argument);
    CHECK_THROWS_AS(b.t.download(v, std::span<T>(wrong)), sams::invalid_argument);
}

TEST_CASE_TEMPLATE("thrust_backend: bad pointers are rejected by name and change nothing", T, float, double) {
    both<T> b;
    sams::rng g(3);
    const auto values = random_values<T>(16, g);
    auto m = b.matrix(b.t, 4, 4, values);
    const T* before = m.data();

    try {
        b.t.upload(sams::matrix_view<const T>{nullptr, 2, 4, 4}, m);
        FAIL("a null view must throw");
    } catch (const sams::invalid_argument& e) {
        CHECK(std::string(e.what()).find("src.data is null") != std::string::npos);
    }
    // One byte past an element boundary.
    std::vector<unsigned char> raw(sizeof(T) * 9);
    const auto* misaligned = reinterpret_cast<const T*>(raw.data() + 1);
    try {
        b.t.upload(sams::matrix_view<const T>{misaligned, 2, 4, 4}, m);
        FAIL("a misaligned view must throw");
    } catch (const sams::invalid_argument& e) {
        CHECK(std::string(e.what()).find("not aligned") != std::string::npos);
    }
    typename sams::thrust_backend<T>::vector vec;
    CHECK_THROWS_AS(b.t.upload(std::span<const T>(misaligned, 4), vec), sams::invalid_argument);
    CHECK(b.t.size(vec) == 0);
    CHECK_THROWS_AS(b.t.upload(sams::matrix_view<const T>{values.data(), 2, 4, 3}, m), sams::invalid_argument);
    CHECK(m.data() == before);
    check_equal(b.host(b.t, m), values);
    // A view with no rows needs no pointer.
    b.t.upload(sams::matrix_view<const T>{nullptr, 0, 4, 4}, m);
    check_shape(b.t, m, 0, 4);
}

TEST_CASE_TEMPLATE("thrust_backend: gathers, scatters and ranges match the Eigen backend", T, float, double) {
    both<T> b;
    sams::rng g(4);
    const auto src_values = random_values<T>(6 * 5, g);
    const auto dst_values = random_values<T>(8 * 5, g);
    const auto ms_e = b.matrix(b.e, 6, 5, src_values);
    const auto ms_t = b.matrix(b.t, 6, 5, src_values);
    auto md_e = b.matrix(b.e, 8, 5, dst_values);
    auto md_t = b.matrix(b.t, 8, 5, dst_values);
    const std::vector<std::size_t> idx{5, 0, 3, 3};

    typename sams::eigen_backend<T>::matrix ge;
    typename sams::thrust_backend<T>::matrix gt;
    b.e.gather_rows(ms_e, idx, ge);
    b.t.gather_rows(ms_t, idx, gt);
    check_equal(b.host(b.t, gt), b.host(b.e, ge));

    const std::vector<std::size_t> slots{7, 1, 4, 0};
    b.e.scatter_rows(ge, slots, md_e);
    b.t.scatter_rows(gt, slots, md_t);
    check_equal(b.host(b.t, md_t), b.host(b.e, md_e));
    b.e.set_rows(md_e, 2, ge);
    b.t.set_rows(md_t, 2, gt);
    check_equal(b.host(b.t, md_t), b.host(b.e, md_e));

    const auto vs = random_values<T>(9, g), vd = random_values<T>(12, g);
    const auto vs_e = b.vector(b.e, vs);
    const auto vs_t = b.vector(b.t, vs);
    auto vd_e = b.vector(b.e, vd);
    auto vd_t = b.vector(b.t, vd);
    typename sams::eigen_backend<T>::vector gve;
    typename sams::thrust_backend<T>::vector gvt;
    b.e.gather(vs_e, idx, gve);
    b.t.gather(vs_t, idx, gvt);
    check_equal(b.host(b.t, gvt), b.host(b.e, gve));
    const std::vector<std::size_t> vslots{11, 2, 6, 0};
    b.e.scatter(gve, vslots, vd_e);
    b.t.scatter(gvt, vslots, vd_t);
    check_equal(b.host(b.t, vd_t), b.host(b.e, vd_e));
    b.e.set_range(vd_e, 8, gve);
    b.t.set_range(vd_t, 8, gvt);
    check_equal(b.host(b.t, vd_t), b.host(b.e, vd_e));

    typename sams::eigen_backend<T>::vector oe;
    typename sams::thrust_backend<T>::vector ot;
    const auto y = random_values<T>(9, g);
    b.e.axpby(T(0.5), vs_e, T(-2), b.vector(b.e, y), oe);
    b.t.axpby(T(0.5), vs_t, T(-2), b.vector(b.t, y), ot);
    check_equal(b.host(b.t, ot), b.host(b.e, oe));

    // Out-of-range indices and bad ranges throw before anything is written.
    const auto unchanged = b.host(b.t, md_t);
    CHECK_THROWS_AS(b.t.gather_rows(ms_t, std::vector<std::size_t>{0, 6}, gt), sams::invalid_argument);
    CHECK_THROWS_AS(b.t.scatter_rows(gt, std::vector<std::size_t>{0, 1, 2, 8}, md_t), sams::invalid_argument);
    CHECK_THROWS_AS(b.t.set_rows(md_t, 5, gt), sams::invalid_argument);
    CHECK_THROWS_AS(b.t.gather(vs_t, std::vector<std::size_t>{9}, gvt), sams::invalid_argument);
    CHECK_THROWS_AS(b.t.set_range(vd_t, 9, gvt), sams::invalid_argument);
    CHECK_THROWS_AS(b.t.gather_rows(ms_t, idx, const_cast<typename sams::thrust_backend<T>::matrix&>(ms_t)),
                    sams::invalid_argument);
    check_equal(b.host(b.t, md_t), unchanged);
    check_shape(b.t, gt, 4, 5);
}

TEST_CASE_TEMPLATE("thrust_backend: gemm matches the Eigen backend for every transpose", T, float, double) {
    both<T> b;
    sams::rng g(5);
    const std::size_t m = 7, k = 5, n = 6;
    for (const bool at : {false, true}) {
        for (const bool bt : {false, true}) {
            CAPTURE(at);
            CAPTURE(bt);
            const auto av = random_values<T>(m * k, g), bv = random_values<T>(k * n, g), cv = random_values<T>(m * n, g);
            const std::size_t ar = at ? k : m, ac = at ? m : k, br = bt ? n : k, bc = bt ? k : n;
            const auto ta = at ? sams::transpose::yes : sams::transpose::no;
            const auto tb = bt ? sams::transpose::yes : sams::transpose::no;
            const auto a_e = b.matrix(b.e, ar, ac, av);
            const auto b_e = b.matrix(b.e, br, bc, bv);
            const auto a_t = b.matrix(b.t, ar, ac, av);
            const auto b_t = b.matrix(b.t, br, bc, bv);
            for (const auto& [alpha, beta] : {std::pair<T, T>{T(1), T(0)}, {T(-0.75), T(0)}, {T(1), T(1)},
                                             {T(0.5), T(-1.5)}}) {
                auto c_e = b.matrix(b.e, m, n, cv);
                auto c_t = b.matrix(b.t, m, n, cv);
                b.e.gemm(ta, tb, alpha, a_e, b_e, beta, c_e);
                b.t.gemm(ta, tb, alpha, a_t, b_t, beta, c_t);
                check_shape(b.t, c_t, m, n);
                check_close(b.host(b.t, c_t), b.host(b.e, c_e), tolerance<T>());
            }
        }
    }
    // beta == 0 ignores old contents (NaN included) and resizes; k == 0 is an empty sum.
    auto nan_c = b.matrix(b.t, 2, 2, std::vector<T>(4, std::numeric_limits<T>::quiet_NaN()));
    const auto a1 = b.matrix(b.t, 3, 4, random_values<T>(12, g));
    const auto b1 = b.matrix(b.t, 4, 2, random_values<T>(8, g));
    b.t.gemm(sams::transpose::no, sams::transpose::no, T(1), a1, b1, T(0), nan_c);
    check_shape(b.t, nan_c, 3, 2);
    CHECK(b.t.all_finite(nan_c));
    const auto a0 = b.matrix(b.t, 3, 0, {});
    const auto b0 = b.matrix(b.t, 0, 2, {});
    auto c0 = b.matrix(b.t, 3, 2, std::vector<T>(6, T(4)));
    b.t.gemm(sams::transpose::no, sams::transpose::no, T(1), a0, b0, T(0.5), c0);
    check_equal(b.host(b.t, c0), std::vector<T>(6, T(2)));
    b.t.gemm(sams::transpose::no, sams::transpose::no, T(1), a0, b0, T(0), c0);
    check_equal(b.host(b.t, c0), std::vector<T>(6, T(0)));

    CHECK_THROWS_AS(b.t.gemm(sams::transpose::no, sams::transpose::no, T(1), a1, a1, T(0), c0),
                    sams::invalid_argument);
    auto wrong = b.matrix(b.t, 2, 2, std::vector<T>(4, T(1)));
    CHECK_THROWS_AS(b.t.gemm(sams::transpose::no, sams::transpose::no, T(1), a1, b1, T(1), wrong),
                    sams::invalid_argument);
    check_equal(b.host(b.t, wrong), std::vector<T>(4, T(1)));
}

TEST_CASE_TEMPLATE("thrust_backend: elementwise kernels match the Eigen backend", T, float, double) {
    both<T> b;
    sams::rng g(6);
    const std::size_t r = 9, c = 13;
    const auto zv = random_values<T>(r * c, g, -3.0, 3.0);
    const auto gv = random_values<T>(r * c, g);
    const auto biasv = random_values<T>(c, g);
    for (const auto act : {sams::activation::relu, sams::activation::silu}) {
        CAPTURE(static_cast<int>(act));
        // SiLU's exp: Eigen's vectorised exp and libm/CUDA expf agree to a few ulp.
        const double tol = act == sams::activation::relu ? 0.0 : tolerance<T>();
        auto z_e = b.matrix(b.e, r, c, zv);
        auto z_t = b.matrix(b.t, r, c, zv);
        typename sams::eigen_backend<T>::matrix a_e, gz_e;
        typename sams::thrust_backend<T>::matrix a_t, gz_t;
        b.e.bias_activation(act, b.vector(b.e, biasv), z_e, a_e);
        b.t.bias_activation(act, b.vector(b.t, biasv), z_t, a_t);
        check_equal(b.host(b.t, z_t), b.host(b.e, z_e));
        check_close(b.host(b.t, a_t), b.host(b.e, a_e), tol);

        b.e.activation_forward(act, z_e, a_e);
        b.t.activation_forward(act, z_t, a_t);
        check_close(b.host(b.t, a_t), b.host(b.e, a_e), tol);

        b.e.activation_backward(act, z_e, b.matrix(b.e, r, c, gv), gz_e);
        b.t.activation_backward(act, z_t, b.matrix(b.t, r, c, gv), gz_t);
        check_close(b.host(b.t, gz_t), b.host(b.e, gz_e), tol);

        // In place: grad_z aliasing grad_a, a aliasing z.
        auto ga_t = b.matrix(b.t, r, c, gv);
        b.t.activation_backward(act, z_t, ga_t, ga_t);
        check_close(b.host(b.t, ga_t), b.host(b.e, gz_e), tol);
        b.t.activation_forward(act, z_t, z_t);
        check_close(b.host(b.t, z_t), b.host(b.e, a_e), tol);
    }

    auto z_e = b.matrix(b.e, r, c, zv);
    auto z_t = b.matrix(b.t, r, c, zv);
    b.e.add_bias(b.vector(b.e, biasv), z_e);
    b.t.add_bias(b.vector(b.t, biasv), z_t);
    check_equal(b.host(b.t, z_t), b.host(b.e, z_e));

    const auto x_e = b.matrix(b.e, r, c, gv);
    const auto x_t = b.matrix(b.t, r, c, gv);
    typename sams::eigen_backend<T>::matrix o_e;
    typename sams::thrust_backend<T>::matrix o_t;
    b.e.add(z_e, x_e, o_e);
    b.t.add(z_t, x_t, o_t);
    check_equal(b.host(b.t, o_t), b.host(b.e, o_e));
    b.e.multiply(o_e, x_e, o_e);
    b.t.multiply(o_t, x_t, o_t);
    check_equal(b.host(b.t, o_t), b.host(b.e, o_e));

    typename sams::eigen_backend<T>::vector s_e;
    typename sams::thrust_backend<T>::vector s_t;
    b.e.column_sums(o_e, s_e);
    b.t.column_sums(o_t, s_t);
    check_close(b.host(b.t, s_t), b.host(b.e, s_e), tolerance<T>());

    CHECK_THROWS_AS(b.t.add_bias(b.vector(b.t, random_values<T>(c + 1, g)), z_t), sams::invalid_argument);
    CHECK_THROWS_AS(b.t.add(z_t, b.matrix(b.t, r, c + 1, random_values<T>(r * (c + 1), g)), o_t),
                    sams::invalid_argument);
}

TEST_CASE_TEMPLATE("thrust_backend: dropout masks are identical to the Eigen backend's", T, float, double) {
    both<T> b;
    for (const double p : {0.0, 0.1, 0.5, 0.9}) {
        typename sams::eigen_backend<T>::matrix me;
        typename sams::thrust_backend<T>::matrix mt;
        b.e.resize(me, 17, 31);
        b.t.resize(mt, 17, 31);
        b.e.dropout_mask(me, p, 1234567);
        b.t.dropout_mask(mt, p, 1234567);
        check_equal(b.host(b.t, mt), b.host(b.e, me));
    }
    typename sams::thrust_backend<T>::matrix mt;
    b.t.resize(mt, 2, 2);
    CHECK_THROWS_AS(b.t.dropout_mask(mt, 1.0, 1), sams::invalid_argument);
    CHECK_THROWS_AS(b.t.dropout_mask(mt, std::nan(""), 1), sams::invalid_argument);
}

TEST_CASE_TEMPLATE("thrust_backend: LayerNorm forward and backward match the Eigen backend", T, float, double) {
    both<T> b;
    sams::rng g(7);
    const std::size_t r = 6, c = 37;
    const auto xv = random_values<T>(r * c, g, -2.0, 3.0);
    const auto gam = random_values<T>(c, g, 0.5, 1.5), bet = random_values<T>(c, g);
    const auto dyv = random_values<T>(r * c, g);
    const T eps = T(1e-6);

    typename sams::eigen_backend<T>::matrix y_e, xh_e, dx_e;
    typename sams::eigen_backend<T>::vector rs_e, dg_e, db_e;
    typename sams::thrust_backend<T>::matrix y_t, xh_t, dx_t;
    typename sams::thrust_backend<T>::vector rs_t, dg_t, db_t;
    const auto gam_e = b.vector(b.e, gam);
    const auto gam_t = b.vector(b.t, gam);
    b.e.layer_norm_forward(b.matrix(b.e, r, c, xv), gam_e, b.vector(b.e, bet), eps, y_e, xh_e, rs_e);
    b.t.layer_norm_forward(b.matrix(b.t, r, c, xv), gam_t, b.vector(b.t, bet), eps, y_t, xh_t, rs_t);
    check_close(b.host(b.t, y_t), b.host(b.e, y_e), tolerance<T>());
    check_close(b.host(b.t, xh_t), b.host(b.e, xh_e), tolerance<T>());
    check_close(b.host(b.t, rs_t), b.host(b.e, rs_e), tolerance<T>());

    b.e.layer_norm_backward(b.matrix(b.e, r, c, dyv), xh_e, rs_e, gam_e, dx_e, dg_e, db_e);
    b.t.layer_norm_backward(b.matrix(b.t, r, c, dyv), xh_t, rs_t, gam_t, dx_t, dg_t, db_t);
    check_close(b.host(b.t, dx_t), b.host(b.e, dx_e), tolerance<T>());
    check_close(b.host(b.t, dg_t), b.host(b.e, dg_e), tolerance<T>());
    check_close(b.host(b.t, db_t), b.host(b.e, db_e), tolerance<T>());

    // Aliased outputs and mismatched parameters are rejected.
    auto x_t = b.matrix(b.t, r, c, xv);
    CHECK_THROWS_AS(b.t.layer_norm_forward(x_t, gam_t, gam_t, eps, x_t, xh_t, rs_t), sams::invalid_argument);
    CHECK_THROWS_AS(b.t.layer_norm_forward(x_t, b.vector(b.t, std::vector<T>(c - 1, T(1))), gam_t, eps, y_t, xh_t,
                                           rs_t),
                    sams::invalid_argument);
}

TEST_CASE_TEMPLATE("thrust_backend: block means, Adam and the MSE match the Eigen backend", T, float, double) {
    both<T> b;
    sams::rng g(8);
    // Three layers of width 6 into blocks of 4: blocks straddle layers (unaligned offsets).
    for (const std::size_t block : {std::size_t{3}, std::size_t{4}}) {
        CAPTURE(block);
        const std::size_t rows = 5, h = 6, layers = 3, e = (h * layers + block - 1) / block;
        typename sams::eigen_backend<T>::matrix d_e;
        typename sams::thrust_backend<T>::matrix d_t;
        b.e.resize(d_e, rows, e);
        b.t.resize(d_t, rows, e);
        b.e.fill(d_e, T(0));
        b.t.fill(d_t, T(0));
        for (std::size_t l = 0; l < layers; ++l) {
            const auto sv = random_values<T>(rows * h, g);
            b.e.block_mean_accumulate(b.matrix(b.e, rows, h, sv), block, l * h, d_e);
            b.t.block_mean_accumulate(b.matrix(b.t, rows, h, sv), block, l * h, d_t);
        }
        check_close(b.host(b.t, d_t), b.host(b.e, d_e), tolerance<T>());
        CHECK_THROWS_AS(b.t.block_mean_accumulate(b.matrix(b.t, rows, h, random_values<T>(rows * h, g)), block,
                                                  h * layers, d_t),
                        sams::invalid_argument);
    }

    const std::size_t r = 4, c = 9;
    const auto pv = random_values<T>(r * c, g);
    auto p_e = b.matrix(b.e, r, c, pv), m_e = b.matrix(b.e, r, c, std::vector<T>(r * c, T(0)));
    auto v_e = b.matrix(b.e, r, c, std::vector<T>(r * c, T(0)));
    auto p_t = b.matrix(b.t, r, c, pv), m_t = b.matrix(b.t, r, c, std::vector<T>(r * c, T(0)));
    auto v_t = b.matrix(b.t, r, c, std::vector<T>(r * c, T(0)));
    auto pvec_e = b.vector(b.e, random_values<T>(c, g));
    std::vector<T> pvec_host(c);
    b.e.download(pvec_e, std::span<T>(pvec_host));
    auto pvec_t = b.vector(b.t, pvec_host);
    auto mv_e = b.vector(b.e, std::vector<T>(c, T(0))), vv_e = b.vector(b.e, std::vector<T>(c, T(0)));
    auto mv_t = b.vector(b.t, std::vector<T>(c, T(0))), vv_t = b.vector(b.t, std::vector<T>(c, T(0)));
    for (std::uint64_t step = 1; step <= 5; ++step) {
        const auto gv = random_values<T>(r * c, g), gvec = random_values<T>(c, g);
        const sams::adam_hyperparameters h{1e-2, 0.9, 0.999, 1e-8, 1e-3, step};
        b.e.adam_update(p_e, b.matrix(b.e, r, c, gv), m_e, v_e, h);
        b.t.adam_update(p_t, b.matrix(b.t, r, c, gv), m_t, v_t, h);
        b.e.adam_update(pvec_e, b.vector(b.e, gvec), mv_e, vv_e, h);
        b.t.adam_update(pvec_t, b.vector(b.t, gvec), mv_t, vv_t, h);
    }
    check_close(b.host(b.t, p_t), b.host(b.e, p_e), tolerance<T>());
    check_close(b.host(b.t, m_t), b.host(b.e, m_e), tolerance<T>());
    check_close(b.host(b.t, v_t), b.host(b.e, v_e), tolerance<T>());
    check_close(b.host(b.t, pvec_t), b.host(b.e, pvec_e), tolerance<T>());
    CHECK_THROWS_AS(b.t.adam_update(p_t, b.matrix(b.t, r, c + 1, random_values<T>(r * (c + 1), g)), m_t, v_t,
                                    sams::adam_hyperparameters{}),
                    sams::invalid_argument);

    const auto pred = random_values<T>(11, g), target = random_values<T>(11, g);
    typename sams::eigen_backend<T>::matrix gr_e;
    typename sams::thrust_backend<T>::matrix gr_t;
    const double le = b.e.mse_loss(b.matrix(b.e, 11, 1, pred), b.vector(b.e, target), gr_e);
    const double lt = b.t.mse_loss(b.matrix(b.t, 11, 1, pred), b.vector(b.t, target), gr_t);
    CHECK(lt == doctest::Approx(le).epsilon(1e-12));
    check_close(b.host(b.t, gr_t), b.host(b.e, gr_e), tolerance<T>());
    CHECK_THROWS_AS(b.t.mse_loss(b.matrix(b.t, 11, 2, random_values<T>(22, g)), b.vector(b.t, target), gr_t),
                    sams::invalid_argument);
}
