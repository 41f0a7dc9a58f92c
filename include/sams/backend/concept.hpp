// The `backend` concept: the storage and the kernels that the scheduler networks, the replay
// pool and the reward code are written against. This file is the contract a new backend
// (e.g. thrust + cuBLAS) implements; sams::eigen_backend is the reference model.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include <sams/backend/types.hpp>
#include <sams/core/error.hpp>
#include <sams/core/views.hpp>

namespace sams {

/// The uniform draw in [0, 1) for element `index` of a dropout mask generated from `seed`:
/// splitmix64's finaliser over seed + (index + 1)·φ64, top 53 bits. A counter-based
/// function, so a GPU backend produces the same mask as the CPU one without a host round
/// trip; every backend must use exactly this formula.
constexpr double counter_uniform(std::uint64_t seed, std::uint64_t index) noexcept {
    std::uint64_t z = seed + (index + 1) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return static_cast<double>(z >> 11) * 0x1.0p-53;
}

namespace detail {
using sams::counter_uniform;  // the name the shipped backends use
}  // namespace detail

template <class Backend>
using backend_value_t = typename Backend::value_type;
template <class Backend>
using backend_matrix_t = typename Backend::matrix;
template <class Backend>
using backend_vector_t = typename Backend::vector;

/// The backend's types. `value_type` is float or double; `matrix` is an owning, resizable,
/// row-major rows×cols array (rows = samples); `vector` an owning resizable 1-D array. Both
/// live wherever the backend computes (host memory for Eigen, device memory for CUDA).
///
/// Storage rule: resizing to an element count that fits the storage already held must not
/// allocate or release memory, so a net whose batch shrinks and grows again allocates only
/// when it exceeds its largest batch so far ("steady state allocates nothing").
template <class B>
concept backend_types = requires {
    typename B::value_type;
    typename B::matrix;
    typename B::vector;
} && std::floating_point<typename B::value_type> && std::default_initializable<typename B::matrix> &&
                        std::default_initializable<typename B::vector> && std::movable<typename B::matrix> &&
                        std::movable<typename B::vector>;

/// Shapes, resizing, fills and copies.
///  - rows(m), cols(m), size(v): the current shape.
///  - resize(m, r, c), resize(v, n): new shape, contents unspecified.
///  - resize_rows_preserve(m, r): keeps cols; rows [0, min(old, r)) keep their values, new
///    rows are unspecified (replay-pool growth). resize_preserve(v, n): the same for vectors.
///  - fill(m, x), fill(v, x): every element = x.
///  - copy(src, dst): dst = src, resized. copy(const matrix&, vector&) flattens row-major
///    (dst.size = rows·cols), e.g. an n×1 network output into a score vector.
template <class B>
concept backend_storage =
    backend_types<B> && requires(B& be, const B& cbe, backend_matrix_t<B>& m, const backend_matrix_t<B>& cm,
                                 backend_vector_t<B>& v, const backend_vector_t<B>& cv, std::size_t n,
                                 backend_value_t<B> x) {
        { cbe.rows(cm) } -> std::same_as<std::size_t>;
        { cbe.cols(cm) } -> std::same_as<std::size_t>;
        { cbe.size(cv) } -> std::same_as<std::size_t>;
        be.resize(m, n, n);
        be.resize(v, n);
        be.resize_rows_preserve(m, n);
        be.resize_preserve(v, n);
        be.fill(m, x);
        be.fill(v, x);
        be.copy(cm, m);
        be.copy(cv, v);
        be.copy(cm, v);
    };

/// Host <-> backend transfers. All of them throw sams::invalid_argument on a size mismatch.
///  - upload(matrix_view<const T> src, dst): dst resized to src.rows×src.cols; src may be
///    strided (row_stride ≥ cols).
///  - upload(span<const T> src, dst): dst resized to src.size().
///  - download(src, span<T> dst): dst.size() must equal rows·cols (row-major) or size.
///  - all_finite(m), all_finite(v): false when any element is NaN or ±Inf.
template <class B>
concept backend_transfer =
    backend_types<B> && requires(B& be, backend_matrix_t<B>& m, const backend_matrix_t<B>& cm,
                                 backend_vector_t<B>& v, const backend_vector_t<B>& cv,
                                 matrix_view<const backend_value_t<B>> host_m,
                                 std::span<const backend_value_t<B>> host_in, std::span<backend_value_t<B>> host_out) {
        be.upload(host_m, m);
        be.upload(host_in, v);
        be.download(cm, host_out);
        be.download(cv, host_out);
        { be.all_finite(cm) } -> std::same_as<bool>;
        { be.all_finite(cv) } -> std::same_as<bool>;
    };

/// Row and element movement (replay pool, batch assembly). Indices are host spans; every
/// index is checked against the indexed operand and the call throws sams::invalid_argument
/// before writing anything if one is out of range or a shape does not match.
///  - gather_rows(src, idx, dst): dst resized to idx.size()×cols(src); dst.row(i) = src.row(idx[i]).
///  - gather(src, idx, dst): dst resized to idx.size(); dst[i] = src[idx[i]].
///  - set_rows(dst, first, src): dst rows [first, first + rows(src)) = src; cols must match; no resize.
///  - set_range(dst, first, src): dst[first, first + size(src)) = src; no resize.
///  - scatter_rows(src, idx, dst): dst.row(idx[i]) = src.row(i); idx.size() = rows(src);
///    indices must be distinct (which duplicate wins is unspecified); no resize.
///  - scatter(src, idx, dst): dst[idx[i]] = src[i]; same rules.
///  - axpby(a, x, b, y, out): out = a·x + b·y, out resized; out may alias x or y.
/// src and dst of the row/element movers must be different objects.
template <class B>
concept backend_indexing =
    backend_types<B> && requires(B& be, backend_matrix_t<B>& m, const backend_matrix_t<B>& cm,
                                 backend_vector_t<B>& v, const backend_vector_t<B>& cv,
                                 std::span<const std::size_t> idx, std::size_t n, backend_value_t<B> x) {
        be.gather_rows(cm, idx, m);
        be.gather(cv, idx, v);
        be.set_rows(m, n, cm);
        be.set_range(v, n, cv);
        be.scatter_rows(cm, idx, m);
        be.scatter(cv, idx, v);
        be.axpby(x, cv, x, cv, v);
    };

    /// The compute kernels of the scheduler networks. Shapes are checked (sams::invalid_argument);
    /// NaN is neither checked nor masked. "n×h" below means rows(m) = n, cols(m) = h; a bias or
    /// LayerNorm parameter vector has size h and is broadcast over rows.
    ///  - gemm(ta, tb, alpha, a, b, beta, c): c = alpha·op(a)·op(b) + beta·c, op per ta / tb.
    ///    beta == 0: c is resized to the product's shape and its old contents are ignored (NaN
    ///    included); otherwise c must already have that shape. c must not alias a or b.
    ///  - column_sums(a, out): out[j] = Σ_i a(i, j); out resized to cols(a) (bias gradients).
    ///  - add_bias(bias, z): z(i, j) += bias[j].
    ///  - bias_activation(act, bias, z, a): z(i, j) += bias[j], then a = act(z); a resized.
    ///    Keeping the pre-activation z is what activation_backward needs.
    ///  - activation_forward(act, z, a): a = act(z), a resized.
    ///  - activation_backward(act, z, grad_a, grad_z): grad_z = grad_a ∘ act'(z), resized.
    ///    ReLU: act'(z) = 1 for z > 0, else 0 (PyTorch's choice at 0). SiLU: z·σ(z), derivative
    ///    σ(z)·(1 + z·(1 − σ(z))).
    ///  - add(a, b, out): out = a + b; multiply(a, b, out): out = a ∘ b; out resized.
    ///    These elementwise kernels allow out to alias any input.
    ///  - dropout_mask(mask, p, seed): fills mask in its current shape: element k = r·cols + c is
    ///    0 when sams::counter_uniform(seed, k) < p and 1/(1 − p) otherwise (inverted dropout),
    ///    so that multiply(a, mask, a) is PyTorch's training-mode dropout. Identical on every backend.
    ///  - layer_norm_forward(x, gamma, beta, eps, y, x_hat, rstd): per row, μ = mean, σ² = biased
    ///    variance, rstd = 1/√(σ² + eps), x_hat = (x − μ)·rstd, y = gamma ∘ x_hat + beta.
    ///    y, x_hat (n×h) and rstd (n) are resized; outputs must not alias x or each other.
    ///  - layer_norm_backward(grad_y, x_hat, rstd, gamma, grad_x, grad_gamma, grad_beta): with
    ///    g = grad_y ∘ gamma, per row grad_x = rstd·(g − mean(g) − x_hat·mean(g ∘ x_hat));
    ///    grad_gamma = column sums of grad_y ∘ x_hat, grad_beta = column sums of grad_y
    ///    (overwritten, not accumulated). Outputs resized; they must not alias inputs.
    ///  - block_mean_accumulate(src, block, offset, dst): for every row i and column j of src,
    ///    dst(i, (offset + j) / block) += src(i, j) / block. Treats src as the columns
    ///    [offset, offset + cols) of a wider concatenated row, so calling it once per hidden
    ///    layer (offset = k·h) on a zero-filled dst computes the block mean of the
    ///    concatenation, even when blocks straddle two layers. dst must have rows(src) rows
    ///    and at least (offset + cols(src) + block − 1) / block columns; block > 0.
    ///  - adam_update(param, grad, m, v, hyper): the update documented at adam_hyperparameters,
    ///    for a matrix or a vector parameter; all four operands have the same shape.
    ///  - mse_loss(pred, target, grad) -> double: pred is n×1, target has size n > 0;
    ///    returns (1/n)·Σ(pred_i − target_i)² and sets grad (n×1, resized) = (2/n)(pred − target).
    template <class B>
    concept backend_kernels = backend_types<B> &&
        requires(B& be, backend_matrix_t<B>& m, const backend_matrix_t<B>& cm, backend_vector_t<B>& v,
                 const backend_vector_t<B>& cv, backend_value_t<B> x, transpose t, activation act, double p,
                 std::uint64_t seed, std::size_t n, const adam_hyperparameters& hyper) {
        be.gemm(t, t, x, cm, cm, x, m);
        be.column_sums(cm, v);
        be.add_bias(cv, m);
        be.bias_activation(act, cv, m, m);
        be.activation_forward(act, cm, m);
        be.activation_backward(act, cm, cm, m);
        be.add(cm, cm, m);
        be.multiply(cm, cm, m);
        be.dropout_mask(m, p, seed);
        be.layer_norm_forward(cm, cv, cv, x, m, m, v);
        be.layer_norm_backward(cm, cm, cv, cv, m, v, v);
        be.block_mean_accumulate(cm, n, n, m);
        be.adam_update(m, cm, m, m, hyper);
        be.adam_update(v, cv, v, v, hyper);
        { be.mse_loss(cm, cv, m) } -> std::same_as<double>;
    };

/// A compute backend: everything above. Algorithm code keeps a `Backend&` and touches data
/// only through it, so the same scheduler runs on the CPU (sams::eigen_backend) and on a GPU.
/// See docs/concepts.md for a skeleton.
template <class B>
concept backend = backend_storage<B> && backend_transfer<B> && backend_indexing<B> && backend_kernels<B>;

}  // namespace sams
