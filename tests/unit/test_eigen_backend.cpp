// The Eigen backend, op by op, against straightforward loops, closed forms and central
// finite differences; and the backend concept's positive and negative checks.
#include <doctest/doctest.h>

#include <sams/backend/concept.hpp>
#include <sams/backend/eigen/eigen_backend.hpp>
#include <sams/core/rng.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <span>
#include <vector>

namespace {

template <class T>
using backend_t = sams::eigen_backend<T>;

template <class T>
std::vector<T> random_values(std::size_t n, sams::rng& g, double lo = -1.0, double hi = 1.0) {
    std::vector<T> v(n);
    for (auto& x : v) x = static_cast<T>(g.uniform(lo, hi));
    return v;
}

template <class T>
sams::eigen_matrix<T> make_matrix(backend_t<T>& be, std::size_t r, std::size_t c, const std::vector<T>& values) {
    sams::eigen_matrix<T> m;
    be.upload(sams::matrix_view<const T>{values.data(), r, c, c}, m);
    return m;
}

template <class T>
sams::eigen_vector<T> make_vector(backend_t<T>& be, const std::vector<T>& values) {
    sams::eigen_vector<T> v;
    be.upload(std::span<const T>(values), v);
    return v;
}

template <class T>
std::vector<T> host(backend_t<T>& be, const sams::eigen_matrix<T>& m) {
    std::vector<T> out(m.rows() * m.cols());
    be.download(m, std::span<T>(out));
    return out;
}

template <class T>
std::vector<T> host(backend_t<T>& be, const sams::eigen_vector<T>& v) {
    std::vector<T> out(v.size());
    be.download(v, std::span<T>(out));
    return out;
}

template <class T>
double tolerance() {
    return std::is_same_v<T, float> ? 1e-5 : 1e-12;
}

template <class T>
void check_close(const std::vector<T>& got, const std::vector<double>& want, double tol) {
    REQUIRE(got.size() == want.size());
    // One assertion on the worst element (relative to 1 + magnitude, as doctest::Approx).
    std::size_t worst = 0;
    double worst_error = -1.0;
    for (std::size_t i = 0; i < got.size(); ++i) {
        const double g = static_cast<double>(got[i]);
        const double error = std::abs(g - want[i]) / (1.0 + std::max(std::abs(g), std::abs(want[i])));
        if (!(error <= worst_error)) {  // NaN counts as worst
            worst = i;
            worst_error = error;
        }
    }
    if (got.empty()) return;
    CAPTURE(worst);
    CHECK(static_cast<double>(got[worst]) == doctest::Approx(want[worst]).epsilon(tol).scale(1.0));
}

double sigmoid(double z) { return 1.0 / (1.0 + std::exp(-z)); }
double act_value(sams::activation a, double z) { return a == sams::activation::relu ? (z > 0 ? z : 0.0) : z * sigmoid(z); }

// Missing every operation: must not model the concept.
struct types_only {
    using value_type = float;
    using matrix = sams::eigen_matrix<float>;
    using vector = sams::eigen_vector<float>;
};
struct integer_backend : sams::eigen_backend<float> {
    using value_type = int;
};

// The skeleton of docs/concepts.md (backend section), verbatim: declarations are enough
// for the concept check.
struct my_backend {
    using value_type = float;
    struct matrix { /* device pointer, rows, cols, capacity in elements */ };
    struct vector { /* device pointer, size, capacity in elements */ };
    using T = value_type;

    // storage
    std::size_t rows(const matrix&) const;
    std::size_t cols(const matrix&) const;
    std::size_t size(const vector&) const;
    void resize(matrix&, std::size_t rows, std::size_t cols);
    void resize(vector&, std::size_t n);
    void resize_rows_preserve(matrix&, std::size_t rows);
    void resize_preserve(vector&, std::size_t n);
    void fill(matrix&, T);
    void fill(vector&, T);
    void copy(const matrix& src, matrix& dst);
    void copy(const vector& src, vector& dst);
    void copy(const matrix& src, vector& dst);  // row-major flatten
    // host transfers
    void upload(sams::matrix_view<const T> src, matrix& dst);
    void upload(std::span<const T> src, vector& dst);
    void download(const matrix& src, std::span<T> dst);
    void download(const vector& src, std::span<T> dst);
    bool all_finite(const matrix&);
    bool all_finite(const vector&);
    // row and element movement
    void gather_rows(const matrix& src, std::span<const std::size_t> idx, matrix& dst);
    void gather(const vector& src, std::span<const std::size_t> idx, vector& dst);
    void set_rows(matrix& dst, std::size_t first_row, const matrix& src);
    void set_range(vector& dst, std::size_t first, const vector& src);
    void scatter_rows(const matrix& src, std::span<const std::size_t> idx, matrix& dst);
    void scatter(const vector& src, std::span<const std::size_t> idx, vector& dst);
    void axpby(T a, const vector& x, T b, const vector& y, vector& out);
    // kernels
    void gemm(sams::transpose ta, sams::transpose tb, T alpha, const matrix& a, const matrix& b, T beta, matrix& c);
    void column_sums(const matrix& a, vector& out);
    void add_bias(const vector& bias, matrix& z);
    void bias_activation(sams::activation act, const vector& bias, matrix& z, matrix& a);
    void activation_forward(sams::activation act, const matrix& z, matrix& a);
    void activation_backward(sams::activation act, const matrix& z, const matrix& grad_a, matrix& grad_z);
    void add(const matrix& a, const matrix& b, matrix& out);
    void multiply(const matrix& a, const matrix& b, matrix& out);
    void dropout_mask(matrix& mask, double p, std::uint64_t seed);
    void layer_norm_forward(const matrix& x, const vector& gamma, const vector& beta, T eps, matrix& y,
                            matrix& x_hat, vector& rstd);
    void layer_norm_backward(const matrix& grad_y, const matrix& x_hat, const vector& rstd, const vector& gamma,
                             matrix& grad_x, vector& grad_gamma, vector& grad_beta);
    void block_mean_accumulate(const matrix& src, std::size_t block, std::size_t offset, matrix& dst);
    void adam_update(matrix& param, const matrix& grad, matrix& m, matrix& v, const sams::adam_hyperparameters&);
    void adam_update(vector& param, const vector& grad, vector& m, vector& v, const sams::adam_hyperparameters&);
    double mse_loss(const matrix& pred, const vector& target, matrix& grad);
};
static_assert(sams::backend<my_backend>, "the documented skeleton must model sams::backend");

// The skeleton without one kernel does not.
struct no_layer_norm_backward : my_backend {
    void layer_norm_backward() = delete;
};

}  // namespace

TEST_CASE("backend concept: the Eigen backend models it, incomplete types do not") {
    static_assert(sams::backend<sams::eigen_backend<float>>);
    static_assert(sams::backend<sams::eigen_backend<double>>);
    static_assert(sams::backend_types<types_only>);
    static_assert(!sams::backend_storage<types_only>);
    static_assert(!sams::backend<types_only>);
    static_assert(!sams::backend<integer_backend>);
    static_assert(!sams::backend<int>);
    static_assert(sams::backend<my_backend>);
    static_assert(!sams::backend_kernels<no_layer_norm_backward>);
    static_assert(sams::backend_storage<no_layer_norm_backward>);
    CHECK(true);
}

TEST_CASE_TEMPLATE("eigen backend: resizing keeps capacity, preserve variants keep rows", T, float, double) {
    backend_t<T> be;
    sams::rng g(1);
    const auto values = random_values<T>(12, g);
    auto m = make_matrix(be, 4, 3, values);
    const T* storage = m.data();
    be.resize(m, 2, 3);
    CHECK(be.rows(m) == 2);
    CHECK(m.capacity() >= 12);
    be.resize(m, 3, 4);
    CHECK(m.data() == storage);  // 12 elements fit: no reallocation
    be.resize(m, 4, 3);
    be.upload(sams::matrix_view<const T>{values.data(), 4, 3, 3}, m);
    be.resize_rows_preserve(m, 10);
    CHECK(be.rows(m) == 10);
    CHECK(be.cols(m) == 3);
    for (std::size_t i = 0; i < 12; ++i) CHECK(m.data()[i] == values[i]);
    be.resize_rows_preserve(m, 2);
    for (std::size_t i = 0; i < 6; ++i) CHECK(m.data()[i] == values[i]);

    auto v = make_vector(be, values);
    be.resize_preserve(v, 30);
    CHECK(be.size(v) == 30);
    for (std::size_t i = 0; i < 12; ++i) CHECK(v[i] == values[i]);
    be.resize(v, 5);
    CHECK(be.size(v) == 5);

    be.fill(m, T(2.5));
    for (const T x : host(be, m)) CHECK(x == T(2.5));
    be.fill(v, T(-1));
    for (const T x : host(be, v)) CHECK(x == T(-1));
}

TEST_CASE_TEMPLATE("eigen backend: strided upload, download and copies", T, float, double) {
    backend_t<T> be;
    // 3x4 matrix inside rows of stride 6: element (r, c) = 10 r + c, padding = -99.
    std::vector<T> buf(18, T(-99));
    for (std::size_t r = 0; r < 3; ++r)
        for (std::size_t c = 0; c < 4; ++c) buf[r * 6 + c] = static_cast<T>(10 * r + c);
    sams::eigen_matrix<T> m;
    be.upload(sams::matrix_view<const T>{buf.data(), 3, 4, 6}, m);
    REQUIRE(be.rows(m) == 3);
    REQUIRE(be.cols(m) == 4);
    const auto h = host(be, m);
    for (std::size_t r = 0; r < 3; ++r)
        for (std::size_t c = 0; c < 4; ++c) CHECK(h[r * 4 + c] == static_cast<T>(10 * r + c));

    std::vector<T> wrong(5);
    CHECK_THROWS_AS(be.download(m, std::span<T>(wrong)), sams::invalid_argument);
    CHECK_THROWS_AS(be.upload(sams::matrix_view<const T>{buf.data(), 3, 4, 2}, m), sams::invalid_argument);

    sams::eigen_matrix<T> c;
    be.copy(m, c);
    CHECK(host(be, c) == h);
    sams::eigen_vector<T> flat;
    be.copy(m, flat);
    CHECK(host(be, flat) == h);
    sams::eigen_vector<T> flat2;
    be.copy(flat, flat2);
    CHECK(host(be, flat2) == h);
}

TEST_CASE_TEMPLATE("eigen backend: gather, set and scatter of rows and elements", T, float, double) {
    backend_t<T> be;
    sams::rng g(2);
    const std::size_t rows = 6, cols = 3;
    const auto src_values = random_values<T>(rows * cols, g);
    const auto src = make_matrix(be, rows, cols, src_values);
    const std::vector<std::size_t> idx{4, 0, 4, 5};

    sams::eigen_matrix<T> gathered;
    be.gather_rows(src, idx, gathered);
    REQUIRE(be.rows(gathered) == idx.size());
    const auto gh = host(be, gathered);
    for (std::size_t i = 0; i < idx.size(); ++i)
        for (std::size_t c = 0; c < cols; ++c) CHECK(gh[i * cols + c] == src_values[idx[i] * cols + c]);

    const auto vsrc_values = random_values<T>(rows, g);
    const auto vsrc = make_vector(be, vsrc_values);
    sams::eigen_vector<T> vg;
    be.gather(vsrc, idx, vg);
    for (std::size_t i = 0; i < idx.size(); ++i) CHECK(vg[i] == vsrc_values[idx[i]]);

    // set_rows: rows [2, 4) of a 6x3 matrix.
    auto dst_values = random_values<T>(rows * cols, g);
    auto dst = make_matrix(be, rows, cols, dst_values);
    const auto block_values = random_values<T>(2 * cols, g);
    const auto block = make_matrix(be, 2, cols, block_values);
    be.set_rows(dst, 2, block);
    auto expect = dst_values;
    for (std::size_t i = 0; i < 2 * cols; ++i) expect[2 * cols + i] = block_values[i];
    CHECK(host(be, dst) == expect);
    CHECK_THROWS_AS(be.set_rows(dst, 5, block), sams::invalid_argument);
    CHECK(host(be, dst) == expect);

    auto vdst_values = random_values<T>(rows, g);
    auto vdst = make_vector(be, vdst_values);
    const auto vpart = make_vector(be, std::vector<T>{T(7), T(8)});
    be.set_range(vdst, 3, vpart);
    vdst_values[3] = T(7);
    vdst_values[4] = T(8);
    CHECK(host(be, vdst) == vdst_values);
    CHECK_THROWS_AS(be.set_range(vdst, 5, vpart), sams::invalid_argument);

    // scatter_rows: dst.row(sidx[i]) = block.row(i).
    const std::vector<std::size_t> sidx{5, 1};
    auto sdst = make_matrix(be, rows, cols, dst_values);
    be.scatter_rows(block, sidx, sdst);
    auto sexpect = dst_values;
    for (std::size_t i = 0; i < sidx.size(); ++i)
        for (std::size_t c = 0; c < cols; ++c) sexpect[sidx[i] * cols + c] = block_values[i * cols + c];
    CHECK(host(be, sdst) == sexpect);
    const std::vector<std::size_t> bad{1, 6};
    CHECK_THROWS_AS(be.scatter_rows(block, bad, sdst), sams::invalid_argument);
    CHECK(host(be, sdst) == sexpect);
    CHECK_THROWS_AS(be.gather_rows(src, bad, gathered), sams::invalid_argument);

    auto vs = make_vector(be, std::vector<T>(rows, T(0)));
    be.scatter(vpart, sidx, vs);
    std::vector<T> vexpect(rows, T(0));
    vexpect[5] = T(7);
    vexpect[1] = T(8);
    CHECK(host(be, vs) == vexpect);
    CHECK_THROWS_AS(be.scatter(vpart, bad, vs), sams::invalid_argument);
    CHECK_THROWS_AS(be.gather(vsrc, bad, vg), sams::invalid_argument);
}

TEST_CASE_TEMPLATE("eigen backend: axpby", T, float, double) {
    backend_t<T> be;
    sams::rng g(3);
    const auto xv = random_values<T>(9, g);
    const auto yv = random_values<T>(9, g);
    auto x = make_vector(be, xv);
    const auto y = make_vector(be, yv);
    sams::eigen_vector<T> out;
    be.axpby(T(2), x, T(-0.5), y, out);
    std::vector<double> want(9);
    for (std::size_t i = 0; i < 9; ++i) want[i] = 2.0 * xv[i] - 0.5 * yv[i];
    check_close(host(be, out), want, tolerance<T>());
    be.axpby(T(2), x, T(-0.5), y, x);  // out aliases x
    check_close(host(be, x), want, tolerance<T>());
}

TEST_CASE_TEMPLATE("eigen backend: gemm with transposes, alpha and beta matches a triple loop", T, float, double) {
    backend_t<T> be;
    sams::rng g(4);
    struct dims {
        std::size_t m, k, n;
    };
    // Small sizes take Eigen's coefficient-based product, larger ones its blocked GEMM; the
    // last shape spans several of the backend's 256-wide, 64/128-deep GEMM tiles.
    for (const dims d : {dims{3, 4, 5}, dims{37, 29, 41}, dims{16, 1, 8}, dims{1, 33, 1}, dims{257, 140, 259}}) {
        for (const bool ta : {false, true}) {
            for (const bool tb : {false, true}) {
                const auto av = random_values<T>(d.m * d.k, g);
                const auto bv = random_values<T>(d.k * d.n, g);
                const auto cv = random_values<T>(d.m * d.n, g);
                // a is stored k x m when transposed, b n x k.
                const auto a = ta ? make_matrix(be, d.k, d.m, av) : make_matrix(be, d.m, d.k, av);
                const auto b = tb ? make_matrix(be, d.n, d.k, bv) : make_matrix(be, d.k, d.n, bv);
                auto aij = [&](std::size_t i, std::size_t l) {
                    return static_cast<double>(ta ? av[l * d.m + i] : av[i * d.k + l]);
                };
                auto blj = [&](std::size_t l, std::size_t j) {
                    return static_cast<double>(tb ? bv[j * d.k + l] : bv[l * d.n + j]);
                };
                for (const double beta : {0.0, 1.0, 0.5}) {
                    const double alpha = 1.5;
                    auto c = make_matrix(be, d.m, d.n, cv);
                    if (beta == 0.0) be.fill(c, std::numeric_limits<T>::quiet_NaN());  // must be ignored
                    be.gemm(ta ? sams::transpose::yes : sams::transpose::no,
                            tb ? sams::transpose::yes : sams::transpose::no, static_cast<T>(alpha), a, b,
                            static_cast<T>(beta), c);
                    std::vector<double> want(d.m * d.n);
                    for (std::size_t i = 0; i < d.m; ++i)
                        for (std::size_t j = 0; j < d.n; ++j) {
                            double s = 0.0;
                            for (std::size_t l = 0; l < d.k; ++l) s += aij(i, l) * blj(l, j);
                            want[i * d.n + j] = alpha * s + (beta == 0.0 ? 0.0 : beta * cv[i * d.n + j]);
                        }
                    CHECK(be.rows(c) == d.m);
                    CHECK(be.cols(c) == d.n);
                    check_close(host(be, c), want, std::is_same_v<T, float> ? 1e-4 : 1e-12);
                }
            }
        }
    }
    const auto a = make_matrix(be, 2, 3, random_values<T>(6, g));
    sams::eigen_matrix<T> c(3, 3);
    // Inner dimensions 3 and 2 differ.
    CHECK_THROWS_AS(be.gemm(sams::transpose::no, sams::transpose::no, T(1), a, a, T(0), c), sams::invalid_argument);
    // a·aᵀ is 2x2 but c is 3x3 and beta != 0.
    CHECK_THROWS_AS(be.gemm(sams::transpose::no, sams::transpose::yes, T(1), a, a, T(1), c), sams::invalid_argument);
    CHECK(be.rows(c) == 3);
}

TEST_CASE_TEMPLATE("eigen backend: column sums and bias add", T, float, double) {
    backend_t<T> be;
    sams::rng g(5);
    const std::size_t r = 7, c = 5;
    const auto av = random_values<T>(r * c, g);
    const auto a = make_matrix(be, r, c, av);
    sams::eigen_vector<T> sums;
    be.column_sums(a, sums);
    std::vector<double> want(c, 0.0);
    for (std::size_t i = 0; i < r; ++i)
        for (std::size_t j = 0; j < c; ++j) want[j] += av[i * c + j];
    check_close(host(be, sums), want, tolerance<T>());

    const auto bv = random_values<T>(c, g);
    const auto bias = make_vector(be, bv);
    auto z = make_matrix(be, r, c, av);
    be.add_bias(bias, z);
    std::vector<double> zwant(r * c);
    for (std::size_t i = 0; i < r; ++i)
        for (std::size_t j = 0; j < c; ++j) zwant[i * c + j] = static_cast<double>(av[i * c + j]) + bv[j];
    check_close(host(be, z), zwant, tolerance<T>());
    const auto wrong = make_vector(be, random_values<T>(c + 1, g));
    CHECK_THROWS_AS(be.add_bias(wrong, z), sams::invalid_argument);
}

TEST_CASE_TEMPLATE("eigen backend: activations forward and backward", T, float, double) {
    backend_t<T> be;
    sams::rng g(6);
    const std::size_t r = 5, c = 8;
    auto zv = random_values<T>(r * c, g, -4.0, 4.0);
    zv[3] = T(0);  // ReLU's derivative at 0 is 0, as in PyTorch
    const auto dav = random_values<T>(r * c, g);
    const auto bv = random_values<T>(c, g);
    for (const auto act : {sams::activation::relu, sams::activation::silu}) {
        CAPTURE(static_cast<int>(act));
        const auto z = make_matrix(be, r, c, zv);
        sams::eigen_matrix<T> a;
        be.activation_forward(act, z, a);
        std::vector<double> want(r * c);
        for (std::size_t i = 0; i < r * c; ++i) want[i] = act_value(act, zv[i]);
        check_close(host(be, a), want, tolerance<T>());

        // bias_activation: z += b, a = act(z).
        auto z2 = make_matrix(be, r, c, zv);
        be.bias_activation(act, make_vector(be, bv), z2, a);
        std::vector<double> zb(r * c), ab(r * c);
        for (std::size_t i = 0; i < r; ++i)
            for (std::size_t j = 0; j < c; ++j) {
                zb[i * c + j] = static_cast<double>(zv[i * c + j]) + bv[j];
                ab[i * c + j] = act_value(act, static_cast<double>(static_cast<T>(zb[i * c + j])));
            }
        check_close(host(be, z2), zb, tolerance<T>());
        check_close(host(be, a), ab, tolerance<T>());

        // Backward against central differences of the scalar activation.
        const auto da = make_matrix(be, r, c, dav);
        sams::eigen_matrix<T> dz;
        be.activation_backward(act, z, da, dz);
        const double h = 1e-6;
        std::vector<double> dwant(r * c);
        for (std::size_t i = 0; i < r * c; ++i) {
            const double zi = zv[i];
            const double slope = zi == 0.0 && act == sams::activation::relu
                                     ? 0.0
                                     : (act_value(act, zi + h) - act_value(act, zi - h)) / (2 * h);
            dwant[i] = dav[i] * slope;
        }
        check_close(host(be, dz), dwant, 1e-5);
        // In place: grad_z aliases grad_a.
        auto da2 = make_matrix(be, r, c, dav);
        be.activation_backward(act, z, da2, da2);
        CHECK(host(be, da2) == host(be, dz));
    }
}

TEST_CASE_TEMPLATE("eigen backend: elementwise add and multiply", T, float, double) {
    backend_t<T> be;
    sams::rng g(7);
    const auto av = random_values<T>(12, g);
    const auto bv = random_values<T>(12, g);
    auto a = make_matrix(be, 3, 4, av);
    const auto b = make_matrix(be, 3, 4, bv);
    sams::eigen_matrix<T> out;
    be.add(a, b, out);
    std::vector<double> sum(12), prod(12);
    for (std::size_t i = 0; i < 12; ++i) {
        sum[i] = static_cast<double>(av[i]) + bv[i];
        prod[i] = static_cast<double>(av[i]) * bv[i];
    }
    check_close(host(be, out), sum, tolerance<T>());
    be.multiply(a, b, out);
    check_close(host(be, out), prod, tolerance<T>());
    be.multiply(a, b, a);  // out aliases a
    check_close(host(be, a), prod, tolerance<T>());
    const auto c = make_matrix(be, 4, 3, av);
    CHECK_THROWS_AS(be.add(a, c, out), sams::invalid_argument);
}

TEST_CASE_TEMPLATE("eigen backend: dropout masks are counter-based, scaled and reproducible", T, float, double) {
    backend_t<T> be;
    const std::size_t r = 100, c = 100;
    const double p = 0.3;
    sams::eigen_matrix<T> m1(r, c), m2(r, c), m3(r, c);
    be.dropout_mask(m1, p, 42);
    be.dropout_mask(m2, p, 42);
    be.dropout_mask(m3, p, 43);
    CHECK(host(be, m1) == host(be, m2));
    CHECK(host(be, m1) != host(be, m3));
    const T keep = static_cast<T>(1.0 / (1.0 - p));
    std::size_t dropped = 0;
    double mean = 0.0;
    const auto h = host(be, m1);
    for (std::size_t k = 0; k < h.size(); ++k) {
        CHECK((h[k] == T(0) || h[k] == keep));
        // The documented contract every backend follows.
        CHECK((h[k] == T(0)) == (sams::detail::counter_uniform(42, k) < p));
        dropped += h[k] == T(0) ? 1 : 0;
        mean += static_cast<double>(h[k]);
    }
    // Binomial(10000, 0.3): standard deviation ≈ 46 drops.
    CHECK(std::abs(static_cast<double>(dropped) - 3000.0) < 5 * 46.0);
    CHECK(mean / 10000.0 == doctest::Approx(1.0).epsilon(0.05));
    be.dropout_mask(m1, 0.0, 7);
    for (const T x : host(be, m1)) CHECK(x == T(1));
    CHECK_THROWS_AS(be.dropout_mask(m1, 1.0, 7), sams::invalid_argument);
}

TEST_CASE_TEMPLATE("eigen backend: layer norm forward matches the definition", T, float, double) {
    backend_t<T> be;
    sams::rng g(8);
    const std::size_t r = 4, c = 7;
    const double eps = 1e-5;
    const auto xv = random_values<T>(r * c, g, -3.0, 3.0);
    const auto gv = random_values<T>(c, g, 0.5, 1.5);
    const auto bv = random_values<T>(c, g);
    const auto x = make_matrix(be, r, c, xv);
    sams::eigen_matrix<T> y, xh;
    sams::eigen_vector<T> rstd;
    be.layer_norm_forward(x, make_vector(be, gv), make_vector(be, bv), static_cast<T>(eps), y, xh, rstd);
    std::vector<double> ywant(r * c), xhwant(r * c), rwant(r);
    for (std::size_t i = 0; i < r; ++i) {
        double mean = 0.0, var = 0.0;
        for (std::size_t j = 0; j < c; ++j) mean += xv[i * c + j];
        mean /= static_cast<double>(c);
        for (std::size_t j = 0; j < c; ++j) var += (xv[i * c + j] - mean) * (xv[i * c + j] - mean);
        var /= static_cast<double>(c);  // biased, as PyTorch
        rwant[i] = 1.0 / std::sqrt(var + eps);
        for (std::size_t j = 0; j < c; ++j) {
            xhwant[i * c + j] = (xv[i * c + j] - mean) * rwant[i];
            ywant[i * c + j] = gv[j] * xhwant[i * c + j] + bv[j];
        }
    }
    const double tol = std::is_same_v<T, float> ? 1e-5 : 1e-12;
    check_close(host(be, y), ywant, tol);
    check_close(host(be, xh), xhwant, tol);
    check_close(host(be, rstd), rwant, tol);
    // Each normalised row has mean 0 and variance var/(var+eps) ≈ 1.
    for (std::size_t i = 0; i < r; ++i) {
        double s = 0.0;
        for (std::size_t j = 0; j < c; ++j) s += host(be, xh)[i * c + j];
        CHECK(std::abs(s) < 1e-4);
    }
}

TEST_CASE("eigen backend: layer norm backward matches central finite differences") {
    backend_t<double> be;
    sams::rng g(9);
    const std::size_t r = 3, c = 6;
    const double eps = 1e-6;
    auto xv = random_values<double>(r * c, g, -2.0, 2.0);
    auto gv = random_values<double>(c, g, 0.5, 1.5);
    auto bv = random_values<double>(c, g);
    const auto wv = random_values<double>(r * c, g);  // loss L = Σ w ∘ y, so ∂L/∂y = w
    auto loss = [&]() {
        sams::eigen_matrix<double> y, xh;
        sams::eigen_vector<double> rstd;
        be.layer_norm_forward(make_matrix(be, r, c, xv), make_vector(be, gv), make_vector(be, bv), eps, y, xh, rstd);
        const auto yh = host(be, y);
        double s = 0.0;
        for (std::size_t i = 0; i < yh.size(); ++i) s += wv[i] * yh[i];
        return s;
    };
    sams::eigen_matrix<double> y, xh, dx;
    sams::eigen_vector<double> rstd, dgamma, dbeta;
    const auto gamma = make_vector(be, gv);
    be.layer_norm_forward(make_matrix(be, r, c, xv), gamma, make_vector(be, bv), eps, y, xh, rstd);
    be.layer_norm_backward(make_matrix(be, r, c, wv), xh, rstd, gamma, dx, dgamma, dbeta);
    const double h = 1e-6;
    auto central = [&](double& v) {
        const double keep = v;
        v = keep + h;
        const double up = loss();
        v = keep - h;
        const double down = loss();
        v = keep;
        return (up - down) / (2 * h);
    };
    const auto dxh = host(be, dx);
    for (std::size_t i = 0; i < xv.size(); ++i) CHECK(dxh[i] == doctest::Approx(central(xv[i])).epsilon(1e-6));
    const auto dgh = host(be, dgamma);
    const auto dbh = host(be, dbeta);
    for (std::size_t j = 0; j < c; ++j) {
        CHECK(dgh[j] == doctest::Approx(central(gv[j])).epsilon(1e-6));
        CHECK(dbh[j] == doctest::Approx(central(bv[j])).epsilon(1e-6));
    }
}

TEST_CASE_TEMPLATE("eigen backend: block mean of concatenated layers, aligned or straddling", T, float, double) {
    backend_t<T> be;
    sams::rng g(10);
    const std::size_t n = 3;
    struct shape {
        std::size_t width, layers, block;
    };
    // 6 columns per layer in blocks of 4: the second block takes 2 columns of each layer.
    for (const shape s : {shape{6, 2, 4}, shape{8, 3, 4}, shape{5, 3, 5}, shape{4, 2, 8}}) {
        const std::size_t total = s.width * s.layers;
        const std::size_t e = total / s.block;
        std::vector<std::vector<T>> layer_values;
        sams::eigen_matrix<T> phi(n, e);
        be.fill(phi, T(0));
        for (std::size_t l = 0; l < s.layers; ++l) {
            layer_values.push_back(random_values<T>(n * s.width, g));
            be.block_mean_accumulate(make_matrix(be, n, s.width, layer_values.back()), s.block, l * s.width, phi);
        }
        std::vector<double> want(n * e, 0.0);
        for (std::size_t i = 0; i < n; ++i) {
            std::vector<double> concat;
            for (std::size_t l = 0; l < s.layers; ++l)
                for (std::size_t j = 0; j < s.width; ++j) concat.push_back(layer_values[l][i * s.width + j]);
            for (std::size_t b = 0; b < e; ++b) {
                double sum = 0.0;
                for (std::size_t j = 0; j < s.block; ++j) sum += concat[b * s.block + j];
                want[i * e + b] = sum / static_cast<double>(s.block);
            }
        }
        check_close(host(be, phi), want, std::is_same_v<T, float> ? 1e-5 : 1e-12);
    }
    sams::eigen_matrix<T> small(n, 1);
    CHECK_THROWS_AS(be.block_mean_accumulate(make_matrix(be, n, 8, random_values<T>(n * 8, g)), 4, 0, small),
                    sams::invalid_argument);
}

TEST_CASE_TEMPLATE("eigen backend: Adam with L2 weight decay over three steps", T, float, double) {
    backend_t<T> be;
    const double lr = 0.1, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.01;
    // Three parameters, a different gradient per step.
    std::vector<double> p{1.0, -2.0, 0.5};
    const std::vector<std::vector<double>> grads{{0.5, 0.1, -3.0}, {-0.25, 0.2, 1.0}, {1.0, -0.4, 0.0}};
    auto param = make_vector(be, std::vector<T>{T(1.0), T(-2.0), T(0.5)});
    sams::eigen_vector<T> m, v;
    be.resize(m, 3);
    be.resize(v, 3);
    be.fill(m, T(0));
    be.fill(v, T(0));
    // The same parameters as a 1x3 matrix must follow the same trajectory.
    auto pmat = make_matrix(be, 1, 3, std::vector<T>{T(1.0), T(-2.0), T(0.5)});
    sams::eigen_matrix<T> mm(1, 3), vm(1, 3);
    be.fill(mm, T(0));
    be.fill(vm, T(0));

    std::vector<double> hm(3, 0.0), hv(3, 0.0);
    for (std::uint64_t t = 1; t <= 3; ++t) {
        std::vector<T> gt(3);
        for (std::size_t i = 0; i < 3; ++i) gt[i] = static_cast<T>(grads[t - 1][i]);
        const sams::adam_hyperparameters hp{lr, b1, b2, eps, wd, t};
        be.adam_update(param, make_vector(be, gt), m, v, hp);
        be.adam_update(pmat, make_matrix(be, 1, 3, gt), mm, vm, hp);
        // Textbook Adam (Kingma & Ba) with the decay term added to the gradient:
        //   g' = g + wd·p, m = b1 m + (1-b1) g', v = b2 v + (1-b2) g'^2,
        //   m̂ = m / (1 - b1^t), v̂ = v / (1 - b2^t), p -= lr·m̂ / (√v̂ + eps).
        for (std::size_t i = 0; i < 3; ++i) {
            const double gd = grads[t - 1][i] + wd * p[i];
            hm[i] = b1 * hm[i] + (1 - b1) * gd;
            hv[i] = b2 * hv[i] + (1 - b2) * gd * gd;
            const double mhat = hm[i] / (1 - std::pow(b1, static_cast<double>(t)));
            const double vhat = hv[i] / (1 - std::pow(b2, static_cast<double>(t)));
            p[i] -= lr * mhat / (std::sqrt(vhat) + eps);
        }
        if (t == 1) {
            // Step 1 by hand for p = 1, g = 0.5: g' = 0.51, m = 0.051, v = 0.0002601,
            // m̂ = 0.51, v̂ = 0.2601, √v̂ = 0.51, so p = 1 - 0.1·0.51/(0.51 + 1e-8).
            CHECK(static_cast<double>(param[0]) ==
                  doctest::Approx(1.0 - 0.1 * 0.51 / (0.51 + 1e-8)).epsilon(std::is_same_v<T, float> ? 1e-6 : 1e-12));
            CHECK(static_cast<double>(m[0]) == doctest::Approx(0.051).epsilon(1e-6));
            CHECK(static_cast<double>(v[0]) == doctest::Approx(0.0002601).epsilon(1e-6));
        }
        const double tol = std::is_same_v<T, float> ? 1e-6 : 1e-12;
        check_close(host(be, param), p, tol);
        check_close(host(be, m), hm, tol);
        check_close(host(be, v), hv, tol);
        check_close(host(be, pmat), p, tol);
    }
    sams::eigen_vector<T> short_grad(2);
    CHECK_THROWS_AS(be.adam_update(param, short_grad, m, v, sams::adam_hyperparameters{}), sams::invalid_argument);
}

TEST_CASE_TEMPLATE("eigen backend: mean squared error and its gradient", T, float, double) {
    backend_t<T> be;
    sams::rng g(11);
    const std::size_t n = 9;
    const auto pv = random_values<T>(n, g);
    const auto yv = random_values<T>(n, g);
    const auto pred = make_matrix(be, n, 1, pv);
    sams::eigen_matrix<T> grad;
    const double loss = be.mse_loss(pred, make_vector(be, yv), grad);
    double want = 0.0;
    std::vector<double> gwant(n);
    for (std::size_t i = 0; i < n; ++i) {
        const double d = static_cast<double>(pv[i]) - yv[i];
        want += d * d / static_cast<double>(n);
        gwant[i] = 2.0 * d / static_cast<double>(n);
    }
    CHECK(loss == doctest::Approx(want).epsilon(1e-6));
    check_close(host(be, grad), gwant, tolerance<T>());
    CHECK_THROWS_AS(be.mse_loss(pred, make_vector(be, random_values<T>(n - 1, g)), grad), sams::invalid_argument);
    sams::eigen_matrix<T> empty(0, 1);
    CHECK_THROWS_AS(be.mse_loss(empty, sams::eigen_vector<T>{}, grad), sams::invalid_argument);
}

TEST_CASE_TEMPLATE("eigen backend: all_finite finds NaN and Inf", T, float, double) {
    backend_t<T> be;
    std::vector<T> v{T(1), T(2), T(3), T(4)};
    CHECK(be.all_finite(make_matrix(be, 2, 2, v)));
    CHECK(be.all_finite(make_vector(be, v)));
    v[2] = std::numeric_limits<T>::quiet_NaN();
    CHECK_FALSE(be.all_finite(make_matrix(be, 2, 2, v)));
    v[2] = std::numeric_limits<T>::infinity();
    CHECK_FALSE(be.all_finite(make_vector(be, v)));
}
