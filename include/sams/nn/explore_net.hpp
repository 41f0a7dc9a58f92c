// f2, the exploration net of SamS (docs/algorithm.md): reads f1's block-averaged activations φ and
// predicts f1's error; every block's skip connection adds the network input φ. Written once
// against the backend concept.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <sams/backend/concept.hpp>
#include <sams/core/error.hpp>
#include <sams/core/rng.hpp>
#include <sams/nn/network_config.hpp>
#include <sams/nn/parameters.hpp>

namespace sams {

/// The exploration net f2: input φ of dimension E, width E, depth N2 = explore_depth:
///
///     x_0 = act(act(W_0 φ + b_0) + φ)
///     x_k = LayerNorm_k(act(W_k x_{k−1} + b_k) + φ),  k = 1 … N2−2
///     f2  = W_out x_{N2−2} + b_out
///
/// No dropout. Initialisation, optimiser, state visiting and allocation behaviour as
/// sams::exploit_net.
template <backend Backend>
class explore_net {
public:
    using backend_type = Backend;
    using value_type = backend_value_t<Backend>;
    using matrix = backend_matrix_t<Backend>;
    using vector = backend_vector_t<Backend>;

    /// Builds the net (width = input_dim = E) with PyTorch's default init drawn from
    /// `init_rng` (see exploit_net). Throws sams::invalid_argument on invalid settings.
    explore_net(Backend& be, std::size_t input_dim, const network_config& net, const optimizer_config& opt,
                rng& init_rng)
        : be_(&be), input_dim_(input_dim), net_(net), opt_(opt) {
        constexpr const char* where = "explore_net";
        detail::require(input_dim > 0, where, "input_dim must be > 0");
        net.validate("explore_net: network_config");
        opt.validate("explore_net: optimizer_config");
        const std::size_t e = input_dim;
        input_ = add_linear("input", e, e, init_rng);
        for (std::size_t k = 1; k + 2 <= net.explore_depth; ++k) {
            const std::string prefix = "block" + std::to_string(k);
            block b;
            b.linear = add_linear(prefix + ".linear", e, e, init_rng);
            b.gamma = params_.add_vector(be, prefix + ".norm.weight", e);
            b.beta = params_.add_vector(be, prefix + ".norm.bias", e);
            params_.init_constant(be, b.gamma, value_type(1));
            blocks_.push_back(b);
        }
        output_ = add_linear("output", 1, e, init_rng);
        buffers_.resize(blocks_.size());
    }

    [[nodiscard]] std::size_t input_dim() const noexcept { return input_dim_; }
    [[nodiscard]] std::size_t parameter_count() const { return params_.count(*be_); }
    [[nodiscard]] const network_config& network() const noexcept { return net_; }
    [[nodiscard]] const optimizer_config& optimizer() const noexcept { return opt_; }
    [[nodiscard]] std::uint64_t optimizer_steps() const noexcept { return params_.step(); }

    /// f2(φ) for the n rows of phi (n×E); scores is resized to n.
    void predict(const matrix& phi, vector& scores) {
        detail::check_net_input<Backend>(*be_, phi, input_dim_, nullptr, "explore_net::predict");
        if (be_->rows(phi) == 0) {
            be_->resize(scores, 0);
            return;
        }
        forward(phi);
        be_->copy(out_, scores);
    }

    /// Up to `steps` full-batch Adam steps on the MSE between f2(φ) and y2, with the same
    /// early stop, return value and Adam-state rules as exploit_net::train (never resets the
    /// optimiser itself). steps == 0 or n == 0: no-op, returns 0.
    double train(const matrix& phi, const vector& y2, std::size_t steps) {
        detail::check_net_input<Backend>(*be_, phi, input_dim_, &y2, "explore_net::train");
        if (steps == 0 || be_->rows(phi) == 0) return 0.0;
        return detail::train_on_mse(
            *be_, params_, opt_, steps, out_, y2, grad_out_, [&] { forward(phi); }, [&] { backward(phi); });
    }

    /// Forward and backward without a step; returns the MSE, gradients via visit_gradients().
    double compute_gradients(const matrix& phi, const vector& y2) {
        detail::check_net_input<Backend>(*be_, phi, input_dim_, &y2, "explore_net::compute_gradients");
        detail::require(be_->rows(phi) > 0, "explore_net::compute_gradients",
                        "phi must have at least one row");
        forward(phi);
        const double loss = be_->mse_loss(out_, y2, grad_out_);
        backward(phi);
        return loss;
    }

    void reset_optimizer() { params_.reset_optimizer(*be_); }

    /// Same protocol and naming as exploit_net::visit_state (input.*, blockk.linear.*,
    /// blockk.norm.*, output.*, adam_m.*, adam_v.*, adam.step).
    template <class Visitor>
    void visit_state(Visitor&& v) {
        detail::parameter_store<Backend>::visit_state(params_, v);
    }
    template <class Visitor>
    void visit_state(Visitor&& v) const {
        detail::parameter_store<Backend>::visit_state(params_, v);
    }
    template <class Visitor>
    void visit_gradients(Visitor&& v) const {
        params_.visit_gradients(v);
    }

private:
    struct linear_ids {
        detail::matrix_id weight;
        detail::vector_id bias;
    };
    struct block {
        linear_ids linear;
        detail::vector_id gamma;
        detail::vector_id beta;
    };
    struct block_buffers {
        matrix z;      // pre-activation W_k x_{k−1} + b_k
        matrix x;      // LayerNorm output x_k
        matrix x_hat;
        vector rstd;
    };

    linear_ids add_linear(const std::string& name, std::size_t out, std::size_t in, rng& g) {
        const linear_ids ids{params_.add_matrix(*be_, name + ".weight", out, in),
                             params_.add_vector(*be_, name + ".bias", out)};
        const double bound = 1.0 / std::sqrt(static_cast<double>(in));
        params_.init_uniform(*be_, ids.weight, bound, g);
        params_.init_uniform(*be_, ids.bias, bound, g);
        return ids;
    }

    const matrix& weight(linear_ids l) const { return params_[l.weight].value; }
    const vector& bias(linear_ids l) const { return params_[l.bias].value; }

    void forward(const matrix& phi) {
        Backend& be = *be_;
        const activation act = net_.act;
        const auto eps = static_cast<value_type>(net_.layer_norm_eps);
        be.gemm(transpose::no, transpose::yes, value_type(1), phi, weight(input_), value_type(0), z0_);
        be.bias_activation(act, bias(input_), z0_, sum_);
        be.add(sum_, phi, s0_);
        be.activation_forward(act, s0_, x0_);
        const matrix* prev = &x0_;
        for (std::size_t k = 0; k < blocks_.size(); ++k) {
            const block& blk = blocks_[k];
            block_buffers& buf = buffers_[k];
            be.gemm(transpose::no, transpose::yes, value_type(1), *prev, weight(blk.linear), value_type(0), buf.z);
            be.bias_activation(act, bias(blk.linear), buf.z, sum_);
            be.add(sum_, phi, sum_);
            be.layer_norm_forward(sum_, params_[blk.gamma].value, params_[blk.beta].value, eps, buf.x, buf.x_hat,
                                  buf.rstd);
            prev = &buf.x;
        }
        be.gemm(transpose::no, transpose::yes, value_type(1), *prev, weight(output_), value_type(0), out_);
        be.add_bias(bias(output_), out_);
    }

    // φ is an input (f1's activations, not trained through f2), so its gradient is not formed.
    void backward(const matrix& phi) {
        Backend& be = *be_;
        const activation act = net_.act;
        const matrix& last = blocks_.empty() ? x0_ : buffers_.back().x;
        be.gemm(transpose::yes, transpose::no, value_type(1), grad_out_, last, value_type(0),
                params_[output_.weight].grad);
        be.column_sums(grad_out_, params_[output_.bias].grad);
        be.gemm(transpose::no, transpose::no, value_type(1), grad_out_, weight(output_), value_type(0), grad_x_);
        for (std::size_t k = blocks_.size(); k-- > 0;) {
            const block& blk = blocks_[k];
            block_buffers& buf = buffers_[k];
            const matrix& prev = k == 0 ? x0_ : buffers_[k - 1].x;
            be.layer_norm_backward(grad_x_, buf.x_hat, buf.rstd, params_[blk.gamma].value, grad_s_,
                                   params_[blk.gamma].grad, params_[blk.beta].grad);
            be.activation_backward(act, buf.z, grad_s_, grad_z_);
            be.gemm(transpose::yes, transpose::no, value_type(1), grad_z_, prev, value_type(0),
                    params_[blk.linear.weight].grad);
            be.column_sums(grad_z_, params_[blk.linear.bias].grad);
            be.gemm(transpose::no, transpose::no, value_type(1), grad_z_, weight(blk.linear), value_type(0), grad_x_);
        }
        be.activation_backward(act, s0_, grad_x_, grad_s_);
        be.activation_backward(act, z0_, grad_s_, grad_z_);
        be.gemm(transpose::yes, transpose::no, value_type(1), grad_z_, phi, value_type(0), params_[input_.weight].grad);
        be.column_sums(grad_z_, params_[input_.bias].grad);
    }

    Backend* be_;
    std::size_t input_dim_;
    network_config net_;
    optimizer_config opt_;
    detail::parameter_store<Backend> params_;
    linear_ids input_{};
    std::vector<block> blocks_;
    linear_ids output_{};

    matrix z0_, s0_, x0_, sum_, out_;
    std::vector<block_buffers> buffers_;
    matrix grad_out_, grad_x_, grad_s_, grad_z_;
};

}  // namespace sams
