// The named parameter tensors of a scheduler network with their gradients and Adam moments:
// one list in a fixed order that serves visiting (checkpoints, tests), initialisation,
// the optimiser step and the optimiser reset, so these cannot drift apart.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <sams/backend/concept.hpp>
#include <sams/core/error.hpp>
#include <sams/core/limits.hpp>
#include <sams/core/rng.hpp>
#include <sams/core/views.hpp>
#include <sams/nn/network_config.hpp>

namespace sams::detail {

/// One trainable tensor: its value, the gradient of the last backward pass, Adam's moments.
template <class Tensor>
struct parameter {
    Tensor value;
    Tensor grad;
    Tensor adam_m;
    Tensor adam_v;
};

struct matrix_id {
    std::size_t index;
};
struct vector_id {
    std::size_t index;
};

template <backend Backend>
class parameter_store {
public:
    using value_type = backend_value_t<Backend>;
    using matrix = backend_matrix_t<Backend>;
    using vector = backend_vector_t<Backend>;

    /// Adds a rows×cols parameter with zero gradient and moments; value left for init_*.
    matrix_id add_matrix(Backend& be, std::string name, std::size_t rows, std::size_t cols) {
        parameter<matrix> p;
        for (matrix* t : {&p.value, &p.grad, &p.adam_m, &p.adam_v}) {
            be.resize(*t, rows, cols);
            be.fill(*t, value_type(0));
        }
        matrices_.push_back(std::move(p));
        entries_.push_back(entry{true, matrices_.size() - 1, std::move(name)});
        return matrix_id{matrices_.size() - 1};
    }
    vector_id add_vector(Backend& be, std::string name, std::size_t n) {
        parameter<vector> p;
        for (vector* t : {&p.value, &p.grad, &p.adam_m, &p.adam_v}) {
            be.resize(*t, n);
            be.fill(*t, value_type(0));
        }
        vectors_.push_back(std::move(p));
        entries_.push_back(entry{false, vectors_.size() - 1, std::move(name)});
        return vector_id{vectors_.size() - 1};
    }

    parameter<matrix>& operator[](matrix_id id) noexcept { return matrices_[id.index]; }
    const parameter<matrix>& operator[](matrix_id id) const noexcept { return matrices_[id.index]; }
    parameter<vector>& operator[](vector_id id) noexcept { return vectors_[id.index]; }
    const parameter<vector>& operator[](vector_id id) const noexcept { return vectors_[id.index]; }

    /// Fills a parameter with U(-bound, bound) draws in row-major order (PyTorch's nn.Linear
    /// default init uses bound = 1/√fan_in for weights and biases).
    void init_uniform(Backend& be, matrix_id id, double bound, rng& g) {
        matrix& t = matrices_[id.index].value;
        const std::size_t r = be.rows(t), c = be.cols(t);
        std::vector<value_type> host(r * c);
        for (auto& x : host) x = static_cast<value_type>(g.uniform(-bound, bound));
        be.upload(matrix_view<const value_type>{host.data(), r, c, c}, t);
    }
    void init_uniform(Backend& be, vector_id id, double bound, rng& g) {
        vector& t = vectors_[id.index].value;
        std::vector<value_type> host(be.size(t));
        for (auto& x : host) x = static_cast<value_type>(g.uniform(-bound, bound));
        be.upload(std::span<const value_type>(host), t);
    }
    void init_constant(Backend& be, vector_id id, value_type value) { be.fill(vectors_[id.index].value, value); }

    [[nodiscard]] std::size_t count(const Backend& be) const {
        std::size_t n = 0;
        for (const auto& p : matrices_) n += be.rows(p.value) * be.cols(p.value);
        for (const auto& p : vectors_) n += be.size(p.value);
        return n;
    }

    /// v(name, tensor) for every value in order, then every Adam first moment ("adam_m.<name>"),
    /// every second moment ("adam_v.<name>"), and last v("adam.step", step count).
    /// Self is parameter_store or const parameter_store.
    template <class Self, class Visitor>
    static void visit_state(Self& self, Visitor& v) {
        for (const slot s : {slot::value, slot::adam_m, slot::adam_v}) {
            for (const auto& e : self.entries_) {
                const char* name = s == slot::value ? e.name.c_str() : s == slot::adam_m ? e.m_name.c_str() : e.v_name.c_str();
                if (e.is_matrix)
                    v(name, pick(self.matrices_[e.index], s));
                else
                    v(name, pick(self.vectors_[e.index], s));
            }
        }
        v("adam.step", self.step_);
    }
    /// v(name, const tensor&) for every gradient, with the parameter's own name, in order.
    template <class Visitor>
    void visit_gradients(Visitor& v) const {
        for (const auto& e : entries_) {
            if (e.is_matrix)
                v(e.name.c_str(), static_cast<const matrix&>(matrices_[e.index].grad));
            else
                v(e.name.c_str(), static_cast<const vector&>(vectors_[e.index].grad));
        }
    }

    /// One Adam step over every parameter from the stored gradients.
    void adam_step(Backend& be, const optimizer_config& opt) {
        ++step_;
        const adam_hyperparameters h{opt.learning_rate, opt.beta1, opt.beta2, opt.eps, opt.weight_decay, step_};
        for (auto& p : matrices_) be.adam_update(p.value, p.grad, p.adam_m, p.adam_v, h);
        for (auto& p : vectors_) be.adam_update(p.value, p.grad, p.adam_m, p.adam_v, h);
    }
    void reset_optimizer(Backend& be) {
        for (auto& p : matrices_) {
            be.fill(p.adam_m, value_type(0));
            be.fill(p.adam_v, value_type(0));
        }
        for (auto& p : vectors_) {
            be.fill(p.adam_m, value_type(0));
            be.fill(p.adam_v, value_type(0));
        }
        step_ = 0;
    }
    [[nodiscard]] std::uint64_t step() const noexcept { return step_; }

private:
    struct entry {
        entry(bool matrix_entry, std::size_t i, std::string n)
            : is_matrix(matrix_entry), index(i), name(std::move(n)), m_name("adam_m." + name),
              v_name("adam_v." + name) {}
        bool is_matrix;
        std::size_t index;
        std::string name;
        std::string m_name;
        std::string v_name;
    };

    enum class slot { value, adam_m, adam_v };
    template <class P>
    static auto& pick(P& p, slot s) noexcept {
        return s == slot::value ? p.value : s == slot::adam_m ? p.adam_m : p.adam_v;
    }

    std::vector<parameter<matrix>> matrices_;
    std::vector<parameter<vector>> vectors_;
    std::vector<entry> entries_;
    std::uint64_t step_ = 0;
};

/// The training loop of both nets: up to `steps` full-batch Adam steps on the MSE between
/// the net's output `out` and `y`. Each step runs `forward()` (train mode, writes `out`);
/// when that MSE is below opt.early_stop_mse training stops without stepping; otherwise
/// `backward()` (reads `grad_out`) and one Adam step. Returns the last forward's MSE.
template <backend Backend, class Out, class Grad, class Forward, class Backward>
double train_on_mse(Backend& be, parameter_store<Backend>& params, const optimizer_config& opt,
                    std::size_t steps, const Out& out, const backend_vector_t<Backend>& y, Grad& grad_out,
                    Forward&& forward, Backward&& backward) {
    double loss = 0.0;
    for (std::size_t s = 0; s < steps; ++s) {
        forward();
        loss = be.mse_loss(out, y, grad_out);
        if (loss < opt.early_stop_mse) break;
        backward();
        params.adam_step(be, opt);
    }
    return loss;
}

/// Shape and finiteness checks shared by the nets' predict/train entry points.
template <backend Backend>
void check_net_input(Backend& be, const backend_matrix_t<Backend>& x, std::size_t input_dim,
                     const backend_vector_t<Backend>* y, const char* where) {
    if (be.cols(x) != input_dim)
        detail::fail(where, "x has " + std::to_string(be.cols(x)) +
                                " columns, expected the input dimension " + std::to_string(input_dim));
    if (y != nullptr && be.size(*y) != be.rows(x))
        detail::fail(where, "targets have size " + std::to_string(be.size(*y)) +
                                ", expected rows(x) = " + std::to_string(be.rows(x)));
    if (!be.all_finite(x)) detail::fail(where, "x contains NaN or Inf");
    if (y != nullptr && !be.all_finite(*y)) detail::fail(where, "targets contain NaN or Inf");
}

}  // namespace sams::detail
