// The benchmark's policy: an autoregressive MLP over [prompt, previous token, prefix mean,
// position] giving next-token logits, with an exact log π(y|x), a hand-written backward
// pass, per-layer hidden states for the context extractor, and a plain Adam.
#pragma once

#include <cmath>
#include <cstddef>
#include <span>
#include <vector>

#include <Eigen/Dense>

#include <sams/core/error.hpp>
#include <sams/core/rng.hpp>

#include "world.hpp"

namespace sams::bench {

/// The policy's inputs for a list of responses: one row per predicted position (row-major
/// rows × F), the class each row must predict, and where each response's rows start.
template <class T>
struct token_batch {
    std::size_t feature_dim = 0;
    std::vector<T> features;           ///< rows × feature_dim, row-major
    std::vector<int> target;           ///< per row: token index, or V for end-of-sequence
    std::vector<std::size_t> offset{0};  ///< response i owns rows [offset[i], offset[i+1])

    [[nodiscard]] std::size_t rows() const noexcept { return target.size(); }
    [[nodiscard]] std::size_t sequences() const noexcept { return offset.size() - 1; }

    void clear(std::size_t width) {
        feature_dim = width;
        features.clear();
        target.clear();
        offset.assign(1, 0);
    }

    /// Appends response y to prompt x: one row per position of world::positions(y).
    void add(const world& w, const double* x, const sequence& y) {
        const std::size_t n = w.positions(y);
        const std::size_t start = features.size();
        features.resize(start + n * feature_dim);
        for (std::size_t k = 0; k < n; ++k) {
            w.write_features(x, y, k, features.data() + start + k * feature_dim);
            target.push_back(k < y.size() ? y[k] : static_cast<int>(w.config().eos()));
        }
        offset.push_back(target.size());
    }
};

/// What the forward pass keeps for the backward pass; H1 and H2 are the per-token hidden
/// states of the two layers (rows × hidden), i.e. what a trainer hands to the extractor.
template <class T>
struct policy_cache {
    using matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;
    matrix h1, h2, prob;  ///< rows × H, rows × H, rows × C (softmax of the logits)
    std::vector<T> row_log_prob;
};

/// Autoregressive two-layer tanh MLP policy. All parameters live in one flat vector
/// (W1, b1, W2, b2, Wo, bo; matrices column-major), so the optimiser and finite-difference
/// checks treat them uniformly.
template <class T>
class policy {
public:
    using matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;
    using row_matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    using vector = Eigen::Matrix<T, Eigen::Dynamic, 1>;

    /// Initialised as PyTorch's nn.Linear (uniform in ±1/√fan_in); the output layer is
    /// scaled by `output_scale` so that the initial (reference) policy is close to uniform.
    policy(std::size_t input_dim, std::size_t hidden, std::size_t classes, rng& init, double output_scale = 0.1)
        : f_(input_dim), h_(hidden), c_(classes) {
        sams::detail::require(input_dim > 0 && hidden > 0 && classes >= 2, "sams::bench::policy",
                        "input_dim and hidden must be > 0 and classes >= 2");
        theta_.resize(detail::eidx(size()));
        std::size_t at = 0;
        const auto fill = [&](std::size_t count, std::size_t fan_in, double scale) {
            const double bound = scale / std::sqrt(static_cast<double>(fan_in));
            for (std::size_t i = 0; i < count; ++i) theta_(detail::eidx(at++)) = static_cast<T>(init.uniform(-bound, bound));
        };
        fill(h_ * f_ + h_, f_, 1.0);
        fill(h_ * h_ + h_, h_, 1.0);
        fill(c_ * h_ + c_, h_, output_scale);
    }

    [[nodiscard]] std::size_t size() const noexcept { return h_ * f_ + h_ + h_ * h_ + h_ + c_ * h_ + c_; }
    [[nodiscard]] std::size_t hidden() const noexcept { return h_; }
    [[nodiscard]] std::size_t input_dim() const noexcept { return f_; }
    [[nodiscard]] std::size_t classes() const noexcept { return c_; }
    [[nodiscard]] vector& parameters() noexcept { return theta_; }
    [[nodiscard]] const vector& parameters() const noexcept { return theta_; }

    /// log π(y_i|x_i) for every response of the batch into `log_prob` (length sequences()).
    void forward(const token_batch<T>& b, policy_cache<T>& cache, std::span<T> log_prob) const {
        sams::detail::require(b.feature_dim == f_, "sams::bench::policy::forward", "feature width does not match the policy");
        sams::detail::require(log_prob.size() == b.sequences(), "sams::bench::policy::forward",
                        "log_prob must have one entry per response");
        const auto n = detail::eidx(b.rows());
        const Eigen::Map<const row_matrix> x(b.features.data(), n, detail::eidx(f_));
        cache.h1.noalias() = x * w1().transpose();
        cache.h1.rowwise() += b1().transpose();
        cache.h1 = cache.h1.array().tanh();
        cache.h2.noalias() = cache.h1 * w2().transpose();
        cache.h2.rowwise() += b2().transpose();
        cache.h2 = cache.h2.array().tanh();
        matrix& logits = cache.prob;
        logits.noalias() = cache.h2 * wo().transpose();
        logits.rowwise() += bo().transpose();
        cache.row_log_prob.resize(b.rows());
        for (Eigen::Index r = 0; r < n; ++r) {
            const T m = logits.row(r).maxCoeff();
            logits.row(r).array() -= m;
            const T lse = std::log(logits.row(r).array().exp().sum());
            cache.row_log_prob[static_cast<std::size_t>(r)] = logits(r, b.target[static_cast<std::size_t>(r)]) - lse;
            logits.row(r) = (logits.row(r).array() - lse).exp().matrix();
        }
        for (std::size_t i = 0; i < b.sequences(); ++i) {
            T s = 0;
            for (std::size_t r = b.offset[i]; r < b.offset[i + 1]; ++r) s += cache.row_log_prob[r];
            log_prob[i] = s;
        }
    }

    /// grad = ∂(Σ_i g_i log π(y_i|x_i))/∂θ, from the cache of forward() on the same batch.
    void backward(const token_batch<T>& b, const policy_cache<T>& cache, std::span<const T> g, vector& grad) const {
        sams::detail::require(g.size() == b.sequences(), "sams::bench::policy::backward",
                        "g must have one entry per response");
        const auto n = detail::eidx(b.rows());
        const Eigen::Map<const row_matrix> x(b.features.data(), n, detail::eidx(f_));
        // ∂ log softmax(z)[y] / ∂z = onehot(y) - softmax(z).
        matrix dz = -cache.prob;
        for (std::size_t i = 0; i < b.sequences(); ++i)
            for (std::size_t r = b.offset[i]; r < b.offset[i + 1]; ++r) {
                const auto row = static_cast<Eigen::Index>(r);
                dz(row, b.target[r]) += T(1);
                dz.row(row) *= g[i];
            }
        grad.setZero(detail::eidx(size()));
        const auto h = detail::eidx(h_);
        auto gw1 = map(grad, off_w1(), h, detail::eidx(f_));
        auto gb1 = map(grad, off_b1(), h, 1);
        auto gw2 = map(grad, off_w2(), h, h);
        auto gb2 = map(grad, off_b2(), h, 1);
        auto gwo = map(grad, off_wo(), detail::eidx(c_), h);
        auto gbo = map(grad, off_bo(), detail::eidx(c_), 1);
        gwo.noalias() = dz.transpose() * cache.h2;
        gbo = dz.colwise().sum().transpose();
        matrix d2 = (dz * wo()).array() * (T(1) - cache.h2.array().square());
        gw2.noalias() = d2.transpose() * cache.h1;
        gb2 = d2.colwise().sum().transpose();
        matrix d1 = (d2 * w2()).array() * (T(1) - cache.h1.array().square());
        gw1.noalias() = d1.transpose() * x;
        gb1 = d1.colwise().sum().transpose();
    }

    /// grad = ∇θ(log π(y_i|x_i) − log π(y_j|x_j)) for responses i and j of a batch, from the
    /// forward cache: the per-pair gradient of h = a_w − a_l that guided selection sketches.
    /// With `last_layer_only` only the output layer's entries (Wo, bo) are computed and the
    /// rest of `grad` is zero.
    void pair_gradient(const token_batch<T>& b, const policy_cache<T>& cache, std::size_t i, std::size_t j,
                       vector& grad, bool last_layer_only = false) const {
        sams::detail::require(i < b.sequences() && j < b.sequences(), "sams::bench::policy::pair_gradient",
                              "response index out of range");
        const auto ni = detail::eidx(b.offset[i + 1] - b.offset[i]);
        const auto nj = detail::eidx(b.offset[j + 1] - b.offset[j]);
        const auto n = ni + nj;
        const auto f = detail::eidx(f_), h = detail::eidx(h_), c = detail::eidx(c_);
        // The rows of both responses, side by side: i's with weight +1, j's with −1.
        matrix x(n, f), h1(n, h), h2(n, h), dz(n, c);
        const Eigen::Map<const row_matrix> all_x(b.features.data(), detail::eidx(b.rows()), f);
        const auto take = [&](std::size_t seq, Eigen::Index at, Eigen::Index rows, T sign) {
            const auto r0 = detail::eidx(b.offset[seq]);
            x.middleRows(at, rows) = all_x.middleRows(r0, rows);
            h1.middleRows(at, rows) = cache.h1.middleRows(r0, rows);
            h2.middleRows(at, rows) = cache.h2.middleRows(r0, rows);
            dz.middleRows(at, rows) = -cache.prob.middleRows(r0, rows);
            for (Eigen::Index r = 0; r < rows; ++r) {
                dz(at + r, b.target[b.offset[seq] + static_cast<std::size_t>(r)]) += T(1);
                dz.row(at + r) *= sign;
            }
        };
        take(i, 0, ni, T(1));
        take(j, ni, nj, T(-1));
        grad.setZero(detail::eidx(size()));
        map(grad, off_wo(), c, h).noalias() = dz.transpose() * h2;
        map(grad, off_bo(), c, 1) = dz.colwise().sum().transpose();
        if (last_layer_only) return;
        const matrix d2 = (dz * wo()).array() * (T(1) - h2.array().square());
        map(grad, off_w2(), h, h).noalias() = d2.transpose() * h1;
        map(grad, off_b2(), h, 1) = d2.colwise().sum().transpose();
        const matrix d1 = (d2 * w2()).array() * (T(1) - h1.array().square());
        map(grad, off_w1(), h, f).noalias() = d1.transpose() * x;
        map(grad, off_b1(), h, 1) = d1.colwise().sum().transpose();
    }

    /// Where the output layer (Wo then bo) starts in the flat parameter vector, and its size.
    [[nodiscard]] std::size_t output_layer_offset() const noexcept { return off_wo(); }
    [[nodiscard]] std::size_t output_layer_size() const noexcept { return c_ * h_ + c_; }

private:
    std::size_t off_w1() const noexcept { return 0; }
    std::size_t off_b1() const noexcept { return h_ * f_; }
    std::size_t off_w2() const noexcept { return off_b1() + h_; }
    std::size_t off_b2() const noexcept { return off_w2() + h_ * h_; }
    std::size_t off_wo() const noexcept { return off_b2() + h_; }
    std::size_t off_bo() const noexcept { return off_wo() + c_ * h_; }

    static Eigen::Map<matrix> map(vector& v, std::size_t off, Eigen::Index rows, Eigen::Index cols) {
        return Eigen::Map<matrix>(v.data() + off, rows, cols);
    }
    Eigen::Map<const matrix> cmap(std::size_t off, std::size_t rows, std::size_t cols) const {
        return Eigen::Map<const matrix>(theta_.data() + off, detail::eidx(rows), detail::eidx(cols));
    }
    Eigen::Map<const vector> vmap(std::size_t off, std::size_t n) const {
        return Eigen::Map<const vector>(theta_.data() + off, detail::eidx(n));
    }
    Eigen::Map<const matrix> w1() const { return cmap(off_w1(), h_, f_); }
    Eigen::Map<const vector> b1() const { return vmap(off_b1(), h_); }
    Eigen::Map<const matrix> w2() const { return cmap(off_w2(), h_, h_); }
    Eigen::Map<const vector> b2() const { return vmap(off_b2(), h_); }
    Eigen::Map<const matrix> wo() const { return cmap(off_wo(), c_, h_); }
    Eigen::Map<const vector> bo() const { return vmap(off_bo(), c_); }

    std::size_t f_, h_, c_;
    vector theta_;
};

/// Adam (Kingma & Ba) with bias correction, no weight decay: the policy's own optimiser,
/// identical for every method of a comparison.
template <class T>
class adam {
public:
    using vector = Eigen::Matrix<T, Eigen::Dynamic, 1>;

    adam(std::size_t n, double learning_rate, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8)
        : lr_(learning_rate), b1_(beta1), b2_(beta2), eps_(eps), m_(vector::Zero(detail::eidx(n))),
          v_(vector::Zero(detail::eidx(n))) {
        sams::detail::require(std::isfinite(learning_rate) && learning_rate > 0.0, "sams::bench::adam",
                        "learning_rate must be > 0");
    }

    void step(vector& theta, const vector& grad) {
        sams::detail::require(theta.size() == m_.size() && grad.size() == m_.size(), "sams::bench::adam::step",
                        "theta and grad must have the optimiser's size");
        ++t_;
        m_ = static_cast<T>(b1_) * m_ + static_cast<T>(1 - b1_) * grad;
        v_ = static_cast<T>(b2_) * v_ + static_cast<T>(1 - b2_) * grad.cwiseAbs2();
        const double c1 = 1.0 - std::pow(b1_, static_cast<double>(t_));
        const double c2 = 1.0 - std::pow(b2_, static_cast<double>(t_));
        theta.array() -= static_cast<T>(lr_ / c1) * m_.array() /
                         ((v_.array() / static_cast<T>(c2)).sqrt() + static_cast<T>(eps_));
    }

private:
    double lr_, b1_, b2_, eps_;
    vector m_, v_;
    std::size_t t_ = 0;
};

}  // namespace sams::bench
