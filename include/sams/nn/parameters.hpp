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
#include <sams/core/config.hpp>
#include <sams/core/error.hpp>
#include <sams/core/limits.hpp>
#include <sams/core/rng.hpp>
#include <sams/core/views.hpp>

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

/// Checks the fields of network_config that the nets read (names as in scheduler_config).
inline void validate_network(const network_config& net, const char* where) {
    require(net.hidden > 0, where, "network_config.hidden must be > 0");
    require(net.depth >= 3, where,
            [&] { return "network_config.depth must be >= 3 (input layer, at least one residual block, output), got " +
                std::to_string(net.depth); });
    require(net.block_size > 0, where, "network_config.block_size must be > 0");
    // Caps (sams/core/limits.hpp) before the product, so it cannot wrap; a loop over depth stays short.
    require(net.hidden <= limits::max_width && net.depth <= limits::max_depth && net.explore_depth <= limits::max_depth,
            where, "network_config.hidden must be <= 2^20 and depth, explore_depth <= 1024");
    require((net.hidden * (net.depth - 2)) % net.block_size == 0, where,
            [&] { return "network_config.block_size must divide hidden*(depth-2) = " +
                std::to_string(net.hidden * (net.depth - 2)) + ", got " + std::to_string(net.block_size); });
    require(net.explore_depth >= 2, where, "network_config.explore_depth must be >= 2");
    require(net.act == activation::relu || net.act == activation::silu, where,
            "network_config.act must be relu or silu");
    require(std::isfinite(net.dropout) && net.dropout >= 0.0 && net.dropout < 1.0, where,
            "network_config.dropout must be in [0, 1)");
    require(std::isfinite(net.layer_norm_eps) && net.layer_norm_eps > 0.0, where,
            "network_config.layer_norm_eps must be finite and > 0");
}

inline void validate_optimizer(const optimizer_config& opt, const char* where) {
    require(std::isfinite(opt.learning_rate) && opt.learning_rate > 0.0, where,
            "optimizer_config.learning_rate must be finite and > 0");
    require(opt.beta1 >= 0.0 && opt.beta1 < 1.0, where, "optimizer_config.beta1 must be in [0, 1)");
    require(opt.beta2 >= 0.0 && opt.beta2 < 1.0, where, "optimizer_config.beta2 must be in [0, 1)");
    require(opt.beta1 == 0.0 || opt.beta1 * opt.beta1 < opt.beta2, where,
            "optimizer_config.beta2 must exceed beta1² (Adam's condition)");
    require(std::isfinite(opt.eps) && opt.eps > 0.0, where, "optimizer_config.eps must be finite and > 0");
    require(std::isfinite(opt.weight_decay) && opt.weight_decay >= 0.0, where,
            "optimizer_config.weight_decay must be finite and >= 0");
    require(std::isfinite(opt.early_stop_mse) && opt.early_stop_mse >= 0.0, where,
            "optimizer_config.early_stop_mse must be finite and >= 0");
}

/// Shape and finiteness checks shared by the nets' predict/train entry points.
template <backend Backend>
void check_net_input(Backend& be, const backend_matrix_t<Backend>& x, std::size_t input_dim,
                     const backend_vector_t<Backend>* y, const char* where) {
    if (be.cols(x) != input_dim)
        throw invalid_argument(std::string(where) + ": x has " + std::to_string(be.cols(x)) +
                               " columns, expected the input dimension " + std::to_string(input_dim));
    if (y != nullptr && be.size(*y) != be.rows(x))
        throw invalid_argument(std::string(where) + ": targets have size " + std::to_string(be.size(*y)) +
                               ", expected rows(x) = " + std::to_string(be.rows(x)));
    if (!be.all_finite(x)) throw invalid_argument(std::string(where) + ": x contains NaN or Inf");
    if (y != nullptr && !be.all_finite(*y)) throw invalid_argument(std::string(where) + ": targets contain NaN or Inf");
}

}  // namespace sams::detail
