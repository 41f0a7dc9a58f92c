// The scheduler networks f1 and f2 on the Eigen backend: backprop against central finite
// differences, forward against a plain host implementation, initialisation, training,
// early stop, Adam state, determinism, state visiting and steady-state allocations.

// Lets the steady-state test forbid Eigen heap allocations (must precede every Eigen include).
#define EIGEN_RUNTIME_NO_MALLOC
#include <doctest/doctest.h>

#include <sams/backend/eigen/eigen_backend.hpp>
#include <sams/core/rng.hpp>
#include <sams/nn/exploit_net.hpp>
#include <sams/nn/explore_net.hpp>
#include <sams/nn/network_config.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <map>
#include <new>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

// Counts global operator new calls (the steady-state tests).
#include "support/allocation_counter.hpp"

namespace {

template <class T>
using backend_t = sams::eigen_backend<T>;
template <class T>
using matrix_t = sams::eigen_matrix<T>;
template <class T>
using vector_t = sams::eigen_vector<T>;

template <class T>
matrix_t<T> random_matrix(backend_t<T>& be, std::size_t r, std::size_t c, sams::rng& g, double lo = -1.0,
                          double hi = 1.0) {
    std::vector<T> v(r * c);
    for (auto& x : v) x = static_cast<T>(g.uniform(lo, hi));
    matrix_t<T> m;
    be.upload(sams::matrix_view<const T>{v.data(), r, c, c}, m);
    return m;
}

template <class T>
vector_t<T> random_vector(backend_t<T>& be, std::size_t n, sams::rng& g, double lo = -1.0, double hi = 1.0) {
    std::vector<T> v(n);
    for (auto& x : v) x = static_cast<T>(g.uniform(lo, hi));
    vector_t<T> out;
    be.upload(std::span<const T>(v), out);
    return out;
}

template <class T>
std::vector<double> to_host(const matrix_t<T>& m) {
    return std::vector<double>(m.data(), m.data() + m.size());
}
template <class T>
std::vector<double> to_host(const vector_t<T>& v) {
    return std::vector<double>(v.data(), v.data() + v.size());
}

/// A parameter or state tensor copied to the host, with its shape (vectors: cols = 0).
struct host_tensor {
    std::size_t rows = 0, cols = 0;
    std::vector<double> values;
    friend bool operator==(const host_tensor&, const host_tensor&) = default;
};

struct host_state {
    std::vector<std::string> names;  // visiting order
    std::map<std::string, host_tensor> tensors;
    std::uint64_t step = 0;
    const host_tensor& operator[](const std::string& name) const { return tensors.at(name); }
};

template <class Net>
host_state snapshot(const Net& net) {
    host_state s;
    net.visit_state([&](const char* name, const auto& t) {
        using U = std::remove_cvref_t<decltype(t)>;
        s.names.emplace_back(name);
        if constexpr (std::is_same_v<U, std::uint64_t>) {
            s.step = t;
        } else if constexpr (requires { t.cols(); }) {
            s.tensors[name] = host_tensor{t.rows(), t.cols(), to_host(t)};
        } else {
            s.tensors[name] = host_tensor{t.size(), 0, to_host(t)};
        }
    });
    return s;
}

template <class Net>
std::map<std::string, std::vector<double>> gradients(const Net& net) {
    std::map<std::string, std::vector<double>> g;
    net.visit_gradients([&](const char* name, const auto& t) { g[name] = to_host(t); });
    return g;
}

bool is_parameter(const std::string& name) { return name.rfind("adam", 0) != 0; }

// ---- a plain host implementation of both nets (double, loops) ---------------------------

using host_matrix = std::vector<std::vector<double>>;  // rows of values

double act_value(sams::activation a, double z) {
    return a == sams::activation::relu ? (z > 0 ? z : 0.0) : z / (1.0 + std::exp(-z));
}

host_matrix rows_of(const std::vector<double>& flat, std::size_t r, std::size_t c) {
    host_matrix m(r, std::vector<double>(c));
    for (std::size_t i = 0; i < r; ++i)
        for (std::size_t j = 0; j < c; ++j) m[i][j] = flat[i * c + j];
    return m;
}

// y = W x + b for one row, W stored out×in.
std::vector<double> linear(const host_tensor& w, const host_tensor& b, const std::vector<double>& x) {
    std::vector<double> y(w.rows);
    for (std::size_t o = 0; o < w.rows; ++o) {
        double s = b.values[o];
        for (std::size_t i = 0; i < w.cols; ++i) s += w.values[o * w.cols + i] * x[i];
        y[o] = s;
    }
    return y;
}

std::vector<double> layer_norm(const std::vector<double>& x, const host_tensor& gamma, const host_tensor& beta,
                               double eps) {
    const double n = static_cast<double>(x.size());
    double mean = 0.0, var = 0.0;
    for (double v : x) mean += v / n;
    for (double v : x) var += (v - mean) * (v - mean) / n;
    std::vector<double> y(x.size());
    for (std::size_t j = 0; j < x.size(); ++j)
        y[j] = gamma.values[j] * (x[j] - mean) / std::sqrt(var + eps) + beta.values[j];
    return y;
}

// f1 in eval mode for one row: returns the score and φ.
std::pair<double, std::vector<double>> reference_f1(const host_state& s, const sams::network_config& net,
                                                    const std::vector<double>& c) {
    auto x = linear(s["input.weight"], s["input.bias"], c);
    for (double& v : x) v = act_value(net.act, v);
    std::vector<double> phi_raw;
    for (std::size_t k = 1; k + 2 <= net.depth; ++k) {
        const std::string p = "block" + std::to_string(k);
        auto a = linear(s[p + ".linear.weight"], s[p + ".linear.bias"], x);
        for (double& v : a) v = act_value(net.act, v);
        phi_raw.insert(phi_raw.end(), a.begin(), a.end());
        for (std::size_t j = 0; j < a.size(); ++j) a[j] += x[j];
        x = layer_norm(a, s[p + ".norm.weight"], s[p + ".norm.bias"], net.layer_norm_eps);
    }
    const double out = linear(s["output.weight"], s["output.bias"], x)[0];
    std::vector<double> phi(phi_raw.size() / net.block_size, 0.0);
    for (std::size_t j = 0; j < phi_raw.size(); ++j)
        phi[j / net.block_size] += phi_raw[j] / static_cast<double>(net.block_size);
    return {out, phi};
}

double reference_f2(const host_state& s, const sams::network_config& net, const std::vector<double>& phi) {
    auto x = linear(s["input.weight"], s["input.bias"], phi);
    for (std::size_t j = 0; j < x.size(); ++j) x[j] = act_value(net.act, act_value(net.act, x[j]) + phi[j]);
    for (std::size_t k = 1; k + 2 <= net.explore_depth; ++k) {
        const std::string p = "block" + std::to_string(k);
        auto a = linear(s[p + ".linear.weight"], s[p + ".linear.bias"], x);
        for (std::size_t j = 0; j < a.size(); ++j) a[j] = act_value(net.act, a[j]) + phi[j];
        x = layer_norm(a, s[p + ".norm.weight"], s[p + ".norm.bias"], net.layer_norm_eps);
    }
    return linear(s["output.weight"], s["output.bias"], x)[0];
}

// ---- finite differences --------------------------------------------------------------------

// Checks every parameter gradient of `net` against central differences of `loss()`, which
// must recompute the loss (with any dropout masks held fixed) for the current parameters.
template <class Net, class Loss>
void check_gradients(Net& net, Loss&& loss) {
    const auto analytic = gradients(net);
    std::size_t checked = 0;
    net.visit_state([&](const char* name, auto& t) {
        using U = std::remove_cvref_t<decltype(t)>;
        if constexpr (!std::is_same_v<U, std::uint64_t>) {
            if (!is_parameter(name)) return;
            const auto& grad = analytic.at(name);
            REQUIRE(grad.size() == t.size());
            for (std::size_t i = 0; i < t.size(); ++i) {
                const double h = 1e-5;
                const double keep = t.data()[i];
                t.data()[i] = keep + h;
                const double up = loss();
                t.data()[i] = keep - h;
                const double down = loss();
                t.data()[i] = keep;
                const double fd = (up - down) / (2 * h);
                CAPTURE(name);
                CAPTURE(i);
                CHECK(grad[i] == doctest::Approx(fd).epsilon(1e-5).scale(1e-2));
                ++checked;
            }
        }
    });
    CHECK(checked == net.parameter_count());
}

sams::network_config small_net(sams::activation act, double dropout) {
    sams::network_config net;
    net.hidden = 6;
    net.depth = 4;
    net.block_size = 4;  // 12 block activations in blocks of 4: the middle block straddles two layers
    net.explore_depth = 4;
    net.act = act;
    net.dropout = dropout;
    net.layer_norm_eps = 1e-6;
    return net;
}

}  // namespace

TEST_CASE("exploit_net: backprop matches central finite differences for every parameter") {
    backend_t<double> be;
    for (const auto act : {sams::activation::relu, sams::activation::silu}) {
        for (const double dropout : {0.0, 0.3}) {
            CAPTURE(static_cast<int>(act));
            CAPTURE(dropout);
            const auto net_cfg = small_net(act, dropout);
            sams::rng init(1);
            sams::exploit_net<backend_t<double>> net(be, 5, net_cfg, sams::optimizer_config{}, init);
            sams::rng data(2);
            const auto x = random_matrix(be, 7, 5, data, -2.0, 2.0);
            const auto y = random_vector(be, 7, data);
            const sams::rng dropout_rng(3);
            sams::rng r = dropout_rng;
            net.compute_gradients(x, y, r);
            // Re-running from a copy of the same rng replays the same dropout masks.
            check_gradients(net, [&] {
                sams::rng rr = dropout_rng;
                return net.compute_gradients(x, y, rr);
            });
        }
    }
}

TEST_CASE("explore_net: backprop matches central finite differences for every parameter") {
    backend_t<double> be;
    for (const auto act : {sams::activation::relu, sams::activation::silu}) {
        for (const std::size_t depth : {2u, 3u, 4u}) {
            CAPTURE(static_cast<int>(act));
            CAPTURE(depth);
            auto net_cfg = small_net(act, 0.0);
            net_cfg.explore_depth = depth;
            sams::rng init(4);
            sams::explore_net<backend_t<double>> net(be, 5, net_cfg, sams::optimizer_config{}, init);
            sams::rng data(5);
            const auto phi = random_matrix(be, 6, 5, data, -2.0, 2.0);
            const auto y = random_vector(be, 6, data);
            net.compute_gradients(phi, y);
            check_gradients(net, [&] { return net.compute_gradients(phi, y); });
        }
    }
}

TEST_CASE("nets: PyTorch default initialisation bounds, LayerNorm identity, zero Adam state") {
    backend_t<double> be;
    sams::network_config cfg;
    cfg.hidden = 40;
    cfg.depth = 4;
    cfg.block_size = 8;
    cfg.explore_depth = 3;
    const std::size_t d = 50;
    sams::rng init(6);
    sams::exploit_net<backend_t<double>> f1(be, d, cfg, sams::optimizer_config{}, init);
    sams::explore_net<backend_t<double>> f2(be, f1.feature_dim(), cfg, sams::optimizer_config{}, init);
    auto check_uniform = [](const host_tensor& t, double bound) {
        double lo = 0.0, hi = 0.0, mean = 0.0;
        for (double v : t.values) {
            lo = std::min(lo, v);
            hi = std::max(hi, v);
            mean += v / static_cast<double>(t.values.size());
        }
        CHECK(hi <= bound);
        CHECK(lo >= -bound);
        if (t.values.size() >= 400) {
            // Many U(-b, b) draws come close to both ends, and their mean is near 0.
            CHECK(hi > 0.95 * bound);
            CHECK(lo < -0.95 * bound);
            CHECK(std::abs(mean) < 0.1 * bound);
        }
    };
    const auto s1 = snapshot(f1);
    check_uniform(s1["input.weight"], 1.0 / std::sqrt(50.0));
    check_uniform(s1["input.bias"], 1.0 / std::sqrt(50.0));
    for (const char* name : {"block1.linear.weight", "block1.linear.bias", "block2.linear.weight",
                             "block2.linear.bias", "output.weight", "output.bias"})
        check_uniform(s1[name], 1.0 / std::sqrt(40.0));
    CHECK(s1["input.weight"].rows == 40);
    CHECK(s1["input.weight"].cols == 50);
    CHECK(s1["output.weight"].rows == 1);
    for (const char* name : {"block1.norm.weight", "block2.norm.weight"})
        for (double v : s1[name].values) CHECK(v == 1.0);
    for (const char* name : {"block1.norm.bias", "block2.norm.bias"})
        for (double v : s1[name].values) CHECK(v == 0.0);
    for (const auto& [name, t] : s1.tensors)
        if (!is_parameter(name))
            for (double v : t.values) CHECK(v == 0.0);
    CHECK(s1.step == 0);

    CHECK(f1.feature_dim() == 10);  // 40·2/8
    const auto s2 = snapshot(f2);
    check_uniform(s2["input.weight"], 1.0 / std::sqrt(10.0));
    check_uniform(s2["block1.linear.weight"], 1.0 / std::sqrt(10.0));
    check_uniform(s2["output.weight"], 1.0 / std::sqrt(10.0));
    CHECK(s2["block1.linear.weight"].rows == 10);
}

TEST_CASE("nets: parameter_count has the closed form") {
    backend_t<float> be;
    sams::network_config cfg;
    cfg.hidden = 12;
    cfg.depth = 5;
    cfg.block_size = 4;
    cfg.explore_depth = 4;
    sams::rng init(7);
    const std::size_t d = 9, h = 12, blocks = 3;
    sams::exploit_net<backend_t<float>> f1(be, d, cfg, sams::optimizer_config{}, init);
    CHECK(f1.parameter_count() == d * h + h + blocks * (h * h + h + 2 * h) + h + 1);
    const std::size_t e = f1.feature_dim();
    CHECK(e == h * blocks / 4);
    sams::explore_net<backend_t<float>> f2(be, e, cfg, sams::optimizer_config{}, init);
    CHECK(f2.parameter_count() == e * e + e + 2 * (e * e + e + 2 * e) + e + 1);
}

TEST_CASE_TEMPLATE("exploit_net: predict matches a plain host implementation, and the train-mode loss at p = 0",
                   T, float, double) {
    backend_t<T> be;
    for (const auto act : {sams::activation::relu, sams::activation::silu}) {
        const auto cfg = small_net(act, 0.0);
        sams::rng init(8);
        sams::exploit_net<backend_t<T>> net(be, 5, cfg, sams::optimizer_config{}, init);
        sams::rng data(9);
        const std::size_t n = 11;
        const auto x = random_matrix(be, n, 5, data, -2.0, 2.0);
        const auto y = random_vector(be, n, data);
        vector_t<T> scores;
        matrix_t<T> phi;
        net.predict(x, scores, phi);
        REQUIRE(scores.size() == n);
        REQUIRE(phi.rows() == n);
        REQUIRE(phi.cols() == net.feature_dim());
        const auto state = snapshot(net);
        const auto xh = rows_of(to_host(x), n, 5);
        const double tol = std::is_same_v<T, float> ? 1e-4 : 1e-10;
        double mse = 0.0;
        for (std::size_t i = 0; i < n; ++i) {
            const auto [score, feat] = reference_f1(state, cfg, xh[i]);
            CHECK(scores[i] == doctest::Approx(score).epsilon(tol));
            for (std::size_t j = 0; j < feat.size(); ++j) CHECK(phi(i, j) == doctest::Approx(feat[j]).epsilon(tol));
            mse += (scores[i] - y[i]) * (scores[i] - y[i]) / static_cast<double>(n);
        }
        // Without dropout, training mode computes the same forward as predict().
        sams::rng r(10);
        CHECK(net.compute_gradients(x, y, r) == doctest::Approx(mse).epsilon(tol));
        CHECK(net.train(x, y, 1, r) == doctest::Approx(mse).epsilon(tol));
    }
}

TEST_CASE_TEMPLATE("explore_net: predict matches a plain host implementation", T, float, double) {
    backend_t<T> be;
    for (const std::size_t depth : {2u, 4u}) {
        auto cfg = small_net(sams::activation::silu, 0.0);
        cfg.explore_depth = depth;
        sams::rng init(11);
        sams::explore_net<backend_t<T>> net(be, 4, cfg, sams::optimizer_config{}, init);
        sams::rng data(12);
        const std::size_t n = 9;
        const auto phi = random_matrix(be, n, 4, data);
        vector_t<T> scores;
        net.predict(phi, scores);
        REQUIRE(scores.size() == n);
        const auto state = snapshot(net);
        const auto ph = rows_of(to_host(phi), n, 4);
        for (std::size_t i = 0; i < n; ++i)
            CHECK(scores[i] == doctest::Approx(reference_f2(state, cfg, ph[i])).epsilon(std::is_same_v<T, float> ? 1e-4 : 1e-10));
    }
}

TEST_CASE("exploit_net: dropout makes the train-mode forward differ from predict") {
    backend_t<double> be;
    const auto cfg = small_net(sams::activation::relu, 0.5);
    sams::rng init(13);
    sams::exploit_net<backend_t<double>> net(be, 5, cfg, sams::optimizer_config{}, init);
    sams::rng data(14);
    const auto x = random_matrix(be, 20, 5, data);
    const auto y = random_vector(be, 20, data);
    vector_t<double> scores;
    matrix_t<double> phi;
    net.predict(x, scores, phi);
    double mse = 0.0;
    for (std::size_t i = 0; i < 20; ++i) mse += (scores[i] - y[i]) * (scores[i] - y[i]) / 20.0;
    sams::rng r(15);
    CHECK(net.compute_gradients(x, y, r) != doctest::Approx(mse));
}

TEST_CASE_TEMPLATE("nets: training reduces the MSE on a smooth regression problem", T, float, double) {
    backend_t<T> be;
    sams::network_config cfg;
    cfg.hidden = 32;
    cfg.depth = 4;
    cfg.block_size = 8;
    cfg.explore_depth = 3;
    cfg.dropout = 0.1;
    sams::optimizer_config opt;
    opt.learning_rate = 3e-3;
    opt.early_stop_mse = 0.0;
    const std::size_t n = 64, d = 3;
    sams::rng data(16);
    const auto x = random_matrix(be, n, d, data);
    std::vector<T> yv(n);
    for (std::size_t i = 0; i < n; ++i) {
        const double a = x(i, 0), b = x(i, 1), c = x(i, 2);
        yv[i] = static_cast<T>(0.5 * std::sin(3.0 * a) + 0.3 * b * c + 0.2);
    }
    vector_t<T> y;
    be.upload(std::span<const T>(yv), y);

    sams::rng init(17), drop(18);
    sams::exploit_net<backend_t<T>> f1(be, d, cfg, opt, init);
    const double first = f1.train(x, y, 1, drop);
    const double last = f1.train(x, y, 300, drop);
    CHECK(last < 0.1 * first);
    CHECK(f1.optimizer_steps() == 301);

    // f2 fits the same targets from φ features.
    vector_t<T> scores;
    matrix_t<T> phi;
    f1.predict(x, scores, phi);
    sams::explore_net<backend_t<T>> f2(be, f1.feature_dim(), cfg, opt, init);
    const double first2 = f2.train(phi, y, 1);
    const double last2 = f2.train(phi, y, 300);
    CHECK(last2 < 0.2 * first2);
}

TEST_CASE("nets: early stop, zero steps and empty batches leave the nets untouched") {
    backend_t<double> be;
    const auto cfg = small_net(sams::activation::relu, 0.2);
    sams::optimizer_config opt;
    opt.early_stop_mse = 1e9;  // every forward is below: stop before the first step
    sams::rng init(19);
    sams::exploit_net<backend_t<double>> f1(be, 5, cfg, opt, init);
    sams::explore_net<backend_t<double>> f2(be, 5, cfg, opt, init);
    sams::rng data(20);
    const auto x = random_matrix(be, 8, 5, data);
    const auto y = random_vector(be, 8, data);
    const auto before1 = snapshot(f1);
    const auto before2 = snapshot(f2);
    sams::rng drop(21);
    sams::rng probe = drop;
    const double expect = f1.compute_gradients(x, y, probe);  // the first train-mode forward
    const double got = f1.train(x, y, 5, drop);
    CHECK(got == expect);
    CHECK(drop == probe);  // exactly one forward pass drew its dropout seeds
    CHECK(f2.train(x, y, 5) > 0.0);
    CHECK(snapshot(f1).tensors == before1.tensors);
    CHECK(snapshot(f2).tensors == before2.tensors);
    CHECK(f1.optimizer_steps() == 0);
    CHECK(f2.optimizer_steps() == 0);

    CHECK(f1.train(x, y, 0, drop) == 0.0);
    matrix_t<double> empty(0, 5);
    vector_t<double> empty_y;
    CHECK(f1.train(empty, empty_y, 3, drop) == 0.0);
    CHECK(f2.train(empty, empty_y, 3) == 0.0);
    CHECK(snapshot(f1).tensors == before1.tensors);
    vector_t<double> scores;
    matrix_t<double> phi;
    f1.predict(empty, scores, phi);
    CHECK(scores.size() == 0);
    CHECK(phi.rows() == 0);
    CHECK(phi.cols() == f1.feature_dim());

    // A threshold between the initial and the reachable loss: training stops early.
    sams::optimizer_config mid;
    mid.learning_rate = 1e-2;
    mid.weight_decay = 0.0;
    sams::rng init2(19);
    auto cfg0 = cfg;
    cfg0.dropout = 0.0;
    sams::exploit_net<backend_t<double>> g(be, 5, cfg0, mid, init2);
    sams::rng d2(22);
    const double initial = g.compute_gradients(x, y, d2);
    mid.early_stop_mse = 0.5 * initial;
    sams::rng init3(19);
    sams::exploit_net<backend_t<double>> h(be, 5, cfg0, mid, init3);
    const double final_loss = h.train(x, y, 1000, d2);
    CHECK(final_loss < 0.5 * initial);
    CHECK(h.optimizer_steps() > 0);
    CHECK(h.optimizer_steps() < 1000);
}

TEST_CASE("nets: Adam state persists across train calls unless reset") {
    backend_t<double> be;
    const auto cfg = small_net(sams::activation::silu, 0.2);
    sams::optimizer_config opt;
    opt.learning_rate = 1e-2;
    opt.early_stop_mse = 0.0;
    sams::rng data(23);
    const auto x = random_matrix(be, 10, 5, data);
    const auto y = random_vector(be, 10, data);

    sams::rng ia(24), ib(24), ic(24);
    sams::exploit_net<backend_t<double>> a(be, 5, cfg, opt, ia);
    sams::exploit_net<backend_t<double>> b(be, 5, cfg, opt, ib);
    sams::exploit_net<backend_t<double>> c(be, 5, cfg, opt, ic);
    sams::rng da(25), db(25), dc(25);
    a.train(x, y, 6, da);  // one call
    b.train(x, y, 3, db);  // two calls, state kept
    b.train(x, y, 3, db);
    c.train(x, y, 3, dc);  // two calls, optimiser reset in between
    c.reset_optimizer();
    CHECK(c.optimizer_steps() == 0);
    for (const auto& [name, t] : snapshot(c).tensors)
        if (!is_parameter(name))
            for (double v : t.values) CHECK(v == 0.0);
    c.train(x, y, 3, dc);

    const auto sa = snapshot(a), sb = snapshot(b), sc = snapshot(c);
    CHECK(sa.tensors == sb.tensors);
    CHECK(sa.step == 6);
    CHECK(sb.step == 6);
    CHECK(sc.step == 3);
    CHECK(sa["input.weight"].values != sc["input.weight"].values);
    CHECK(sa["adam_v.input.weight"].values != sc["adam_v.input.weight"].values);
}

TEST_CASE("nets: same seeds give bit-identical states, different seeds do not") {
    backend_t<float> be;
    const auto cfg = small_net(sams::activation::relu, 0.3);
    sams::optimizer_config opt;
    opt.early_stop_mse = 0.0;
    sams::rng data(26);
    const auto x = random_matrix(be, 12, 5, data);
    const auto y = random_vector(be, 12, data);
    auto run = [&](std::uint64_t init_seed, std::uint64_t dropout_seed) {
        sams::rng init(init_seed), drop(dropout_seed);
        sams::exploit_net<backend_t<float>> f1(be, 5, cfg, opt, init);
        sams::explore_net<backend_t<float>> f2(be, f1.feature_dim(), cfg, opt, init);
        f1.train(x, y, 4, drop);
        vector_t<float> scores;
        matrix_t<float> phi;
        f1.predict(x, scores, phi);
        f2.train(phi, y, 4);
        return std::make_pair(snapshot(f1), snapshot(f2));
    };
    const auto first = run(1, 2), second = run(1, 2);
    CHECK(first.first.tensors == second.first.tensors);
    CHECK(first.second.tensors == second.second.tensors);
    CHECK(run(1, 3).first.tensors != first.first.tensors);  // other dropout masks
    CHECK(run(4, 2).first.tensors != first.first.tensors);  // other init
}

TEST_CASE("nets: visit_state order and names are fixed") {
    backend_t<float> be;
    const auto cfg = small_net(sams::activation::relu, 0.0);
    sams::rng init(27);
    sams::exploit_net<backend_t<float>> f1(be, 5, cfg, sams::optimizer_config{}, init);
    const std::vector<std::string> params{"input.weight",        "input.bias",        "block1.linear.weight",
                                          "block1.linear.bias",  "block1.norm.weight", "block1.norm.bias",
                                          "block2.linear.weight", "block2.linear.bias", "block2.norm.weight",
                                          "block2.norm.bias",    "output.weight",     "output.bias"};
    std::vector<std::string> expected = params;
    for (const auto& p : params) expected.push_back("adam_m." + p);
    for (const auto& p : params) expected.push_back("adam_v." + p);
    expected.emplace_back("adam.step");
    CHECK(snapshot(f1).names == expected);
    // The non-const overload visits the same sequence, and again after training.
    std::vector<std::string> mutable_names;
    f1.visit_state([&](const char* name, auto&) { mutable_names.emplace_back(name); });
    CHECK(mutable_names == expected);
    sams::rng data(28), drop(29);
    f1.train(random_matrix(be, 4, 5, data), random_vector(be, 4, data), 2, drop);
    CHECK(snapshot(f1).names == expected);
    std::vector<std::string> grad_names;
    f1.visit_gradients([&](const char* name, const auto&) { grad_names.emplace_back(name); });
    CHECK(grad_names == params);

    auto cfg2 = cfg;
    cfg2.explore_depth = 3;
    sams::explore_net<backend_t<float>> f2(be, 3, cfg2, sams::optimizer_config{}, init);
    const std::vector<std::string> params2{"input.weight",       "input.bias",         "block1.linear.weight",
                                           "block1.linear.bias", "block1.norm.weight", "block1.norm.bias",
                                           "output.weight",      "output.bias"};
    std::vector<std::string> expected2 = params2;
    for (const auto& p : params2) expected2.push_back("adam_m." + p);
    for (const auto& p : params2) expected2.push_back("adam_v." + p);
    expected2.emplace_back("adam.step");
    CHECK(snapshot(f2).names == expected2);
}

TEST_CASE("nets: invalid arguments throw and change nothing") {
    backend_t<double> be;
    const auto cfg = small_net(sams::activation::relu, 0.1);
    sams::rng init(30);
    auto bad = cfg;
    bad.depth = 2;
    CHECK_THROWS_AS(sams::exploit_net<backend_t<double>>(be, 5, bad, sams::optimizer_config{}, init),
                    sams::invalid_argument);
    bad = cfg;
    bad.block_size = 5;  // does not divide 6·2
    CHECK_THROWS_AS(sams::exploit_net<backend_t<double>>(be, 5, bad, sams::optimizer_config{}, init),
                    sams::invalid_argument);
    sams::optimizer_config bad_opt;
    bad_opt.learning_rate = -1.0;
    CHECK_THROWS_AS(sams::exploit_net<backend_t<double>>(be, 5, cfg, bad_opt, init), sams::invalid_argument);
    CHECK_THROWS_AS(sams::exploit_net<backend_t<double>>(be, 0, cfg, sams::optimizer_config{}, init),
                    sams::invalid_argument);
    bad = cfg;
    bad.explore_depth = 1;
    CHECK_THROWS_AS(sams::explore_net<backend_t<double>>(be, 3, bad, sams::optimizer_config{}, init),
                    sams::invalid_argument);

    sams::exploit_net<backend_t<double>> f1(be, 5, cfg, sams::optimizer_config{}, init);
    sams::explore_net<backend_t<double>> f2(be, 3, cfg, sams::optimizer_config{}, init);
    sams::rng data(31);
    const auto x = random_matrix(be, 6, 5, data);
    const auto wrong_cols = random_matrix(be, 6, 4, data);
    const auto y = random_vector(be, 6, data);
    const auto short_y = random_vector(be, 5, data);
    auto nan_x = random_matrix(be, 6, 5, data);
    nan_x(2, 3) = std::numeric_limits<double>::quiet_NaN();
    auto inf_y = random_vector(be, 6, data);
    inf_y[1] = std::numeric_limits<double>::infinity();
    const auto before = snapshot(f1);
    sams::rng drop(32);
    const sams::rng drop_before = drop;
    vector_t<double> scores;
    matrix_t<double> phi;
    CHECK_THROWS_AS(f1.train(wrong_cols, y, 2, drop), sams::invalid_argument);
    CHECK_THROWS_AS(f1.train(x, short_y, 2, drop), sams::invalid_argument);
    CHECK_THROWS_AS(f1.train(nan_x, y, 2, drop), sams::invalid_argument);
    CHECK_THROWS_AS(f1.train(x, inf_y, 2, drop), sams::invalid_argument);
    CHECK_THROWS_AS(f1.predict(wrong_cols, scores, phi), sams::invalid_argument);
    CHECK_THROWS_AS(f1.predict(nan_x, scores, phi), sams::invalid_argument);
    CHECK_THROWS_AS(f2.predict(x, scores), sams::invalid_argument);
    CHECK_THROWS_AS(f2.train(x, y, 1), sams::invalid_argument);
    CHECK(snapshot(f1).tensors == before.tensors);
    CHECK(drop == drop_before);
    try {
        f1.train(wrong_cols, y, 2, drop);
    } catch (const sams::invalid_argument& e) {
        CHECK(std::string(e.what()).find("exploit_net::train: x has 4 columns, expected the input dimension 5") !=
              std::string::npos);
    }
}

TEST_CASE("nets: steady-state training and prediction allocate nothing") {
    backend_t<float> be;
    const auto cfg = small_net(sams::activation::silu, 0.2);
    sams::optimizer_config opt;
    opt.early_stop_mse = 0.0;
    sams::rng init(33), data(34), drop(35);
    sams::exploit_net<backend_t<float>> f1(be, 5, cfg, opt, init);
    sams::explore_net<backend_t<float>> f2(be, f1.feature_dim(), cfg, opt, init);
    const auto x16 = random_matrix(be, 16, 5, data);
    const auto y16 = random_vector(be, 16, data);
    const auto x8 = random_matrix(be, 8, 5, data);
    const auto y8 = random_vector(be, 8, data);
    vector_t<float> scores;
    matrix_t<float> phi16, phi8;
    // Warm-up at the largest batch sizes buffers and outputs.
    f1.train(x16, y16, 2, drop);
    f1.predict(x16, scores, phi16);
    f1.predict(x8, scores, phi8);
    f2.train(phi16, y16, 2);
    f2.predict(phi16, scores);

    const std::size_t allocations_before = sams_test::allocations();
    Eigen::internal::set_is_malloc_allowed(false);
    f1.train(x8, y8, 3, drop);
    f1.train(x16, y16, 3, drop);
    f1.predict(x8, scores, phi8);
    f1.predict(x16, scores, phi16);
    f2.train(phi8, y8, 3);
    f2.train(phi16, y16, 3);
    f2.predict(phi8, scores);
    Eigen::internal::set_is_malloc_allowed(true);
    CHECK(sams_test::allocations() - allocations_before == 0);
}

TEST_CASE("nets: products larger than one GEMM tile allocate nothing either") {
    // 260 rows and width 264 exceed the 256-wide tiles of the Eigen backend's GEMM; untiled,
    // Eigen would pack these operands into heap blocks.
    backend_t<float> be;
    sams::network_config cfg;
    cfg.hidden = 264;
    cfg.depth = 3;
    cfg.block_size = 8;
    sams::optimizer_config opt;
    opt.early_stop_mse = 0.0;
    sams::rng init(36), data(37), drop(38);
    sams::exploit_net<backend_t<float>> f1(be, 8, cfg, opt, init);
    const auto x = random_matrix(be, 260, 8, data);
    const auto y = random_vector(be, 260, data);
    vector_t<float> scores;
    matrix_t<float> phi;
    f1.train(x, y, 1, drop);
    f1.predict(x, scores, phi);
    const auto before = snapshot(f1);

    const std::size_t allocations_before = sams_test::allocations();
    Eigen::internal::set_is_malloc_allowed(false);
    f1.train(x, y, 1, drop);
    f1.predict(x, scores, phi);
    Eigen::internal::set_is_malloc_allowed(true);
    CHECK(sams_test::allocations() - allocations_before == 0);
    CHECK(snapshot(f1)["block1.linear.weight"].values != before["block1.linear.weight"].values);
}
