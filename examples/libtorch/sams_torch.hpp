// The LibTorch bridge: views of torch::Tensors (log-probs, contexts, hidden states, masks) as
// the library's batch and hidden-state views, zero-copy where the layout allows, and the two
// ways of handing a sams::decision back to autograd. Works with LibTorch 1.13 and 2.x.
#pragma once

#include <torch/torch.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <sams/context/hidden_states.hpp>
#include <sams/context/mean_pool.hpp>
#include <sams/core/decision.hpp>
#include <sams/core/error.hpp>
#include <sams/core/views.hpp>
#include <sams/loss/loss_config.hpp>

namespace sams::libtorch {

// Conversions, in one place. Every conversion below is one copy, made only when needed:
//  - dtype: the scheduler works in float32. float32 is read in place; bfloat16, float16 and
//    float64 are converted to float32 (exact for bfloat16 and float16).
//  - device: the CPU (Eigen) backend reads host memory. CUDA tensors are copied to the CPU.
//    For hidden states on a GPU, pool them on the device first (pool_hidden_states) so that
//    only the B×D contexts cross the bus, plus the 4B log-prob scalars.
//  - layout: log-probs and lengths must be contiguous [B]; contexts need unit column stride
//    (any row stride); hidden states and masks are read through their strides as they are.

namespace detail {

inline std::string shape_text(const torch::Tensor& t) {
    std::string s = "[";
    for (std::int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
    return s + "]";
}

inline std::string describe(const torch::Tensor& t) {
    return "shape " + shape_text(t) + ", dtype " + std::string(c10::toString(t.scalar_type())) + ", device " +
           t.device().str();
}

[[noreturn]] inline void reject(const char* where, const std::string& name, const std::string& what) {
    throw sams::invalid_argument(std::string(where) + ": " + name + " " + what);
}

inline bool is_float_like(const torch::Tensor& t) { return t.is_floating_point(); }

inline bool is_index_like(const torch::Tensor& t) {
    const auto s = t.scalar_type();
    return s == torch::kByte || s == torch::kChar || s == torch::kShort || s == torch::kInt || s == torch::kLong;
}

/// `t` as float32 on the CPU with the strides it has (a copy only for another dtype or device).
/// Detached: reading values must not touch the autograd graph.
inline torch::Tensor host_float(const torch::Tensor& t, bool& copied) {
    torch::Tensor d = t.detach();
    if (d.device().is_cpu() && d.scalar_type() == torch::kFloat) return d;
    copied = true;
    return d.to(torch::kCPU, torch::kFloat);
}

/// A 1-D [B] tensor as a contiguous float32 host tensor. Integer dtypes are accepted only
/// where `counts` (response lengths).
inline torch::Tensor host_vector(const torch::Tensor& t, const char* where, const std::string& name,
                                 std::int64_t batch, bool counts, bool& copied) {
    if (!t.defined()) reject(where, name, "is undefined");
    if (t.dim() != 1 || (batch >= 0 && t.size(0) != batch))
        reject(where, name,
               "has shape " + shape_text(t) + ", expected [" + (batch >= 0 ? std::to_string(batch) : "B") +
                   "] (one value per pair" + (batch >= 0 ? ", like policy_chosen)" : ")"));
    if (!is_float_like(t) && !(counts && is_index_like(t)))
        reject(where, name,
               "has dtype " + std::string(c10::toString(t.scalar_type())) + ", expected float32 (or bfloat16, "
                   "float16, float64, converted once)" + (counts ? " or an integer count" : ""));
    torch::Tensor h = host_float(t, copied);
    if (!h.is_contiguous()) {
        copied = true;
        h = h.contiguous();
    }
    return h;
}

inline std::span<const float> span_of(const torch::Tensor& h) {
    if (!h.defined()) return {};
    return {h.data_ptr<float>(), static_cast<std::size_t>(h.numel())};
}

}  // namespace detail

/// The per-pair tensors of one batch of B pairs, as the host's forward passes produce them.
/// Log-prob tensors may require grad (they are read detached). Optional fields stay undefined.
struct batch_tensors {
    torch::Tensor policy_chosen;       ///< [B] a_w, summed response log-probs under the policy
    torch::Tensor policy_rejected;     ///< [B] a_l
    torch::Tensor reference_chosen;    ///< [B] r_w; undefined for reference-free losses
    torch::Tensor reference_rejected;  ///< [B] r_l
    torch::Tensor chosen_length;       ///< [B] n_w (float or integer); for length-normalised losses
    torch::Tensor rejected_length;     ///< [B] n_l
    torch::Tensor contexts;            ///< [B, D] arm contexts; undefined when given as a view instead
    torch::Tensor ids;                 ///< [B] int64 dataset indices; optional
};

/// batch_tensors from the [2B] summed log-probs of a concatenated forward pass (as TRL runs
/// it: chosen rows first, or interleaved): views into `policy` and `reference`, no copies.
/// `reference` may be undefined (reference-free losses).
[[nodiscard]] inline batch_tensors split_log_probs(const torch::Tensor& policy, const torch::Tensor& reference,
                                                   pair_order order = pair_order::chosen_first) {
    constexpr const char* where = "sams::libtorch::split_log_probs";
    const auto half = [&](const torch::Tensor& t, const char* name, bool chosen) {
        if (!t.defined() || t.dim() != 1 || t.size(0) % 2 != 0)
            detail::reject(where, name,
                           "has " + (t.defined() ? detail::describe(t) : std::string("no value")) +
                               ", expected [2B] (chosen and rejected sequences of B pairs)");
        const std::int64_t b = t.size(0) / 2;
        if (order == pair_order::chosen_first) return t.narrow(0, chosen ? 0 : b, b);
        return t.slice(0, chosen ? 0 : 1, 2 * b, 2);
    };
    batch_tensors out;
    out.policy_chosen = half(policy, "policy log-probs", true);
    out.policy_rejected = half(policy, "policy log-probs", false);
    if (reference.defined()) {
        if (reference.sizes() != policy.sizes())
            detail::reject(where, "reference log-probs",
                           "have shape " + detail::shape_text(reference) + ", expected the policy's " +
                               detail::shape_text(policy));
        out.reference_chosen = half(reference, "reference log-probs", true);
        out.reference_rejected = half(reference, "reference log-probs", false);
    }
    return out;
}

/// A sams::pair_batch<float> over batch_tensors. It owns whatever it had to convert, so the
/// spans stay valid for its lifetime; for contiguous float32 CPU tensors nothing is copied
/// and the spans point into the tensors' own storage. Not copyable (the spans point into it).
class host_batch {
public:
    /// Validates shapes and dtypes (messages name the tensor and what was expected). When
    /// `contexts` has data it is used as the batch's contexts (e.g. an extractor's output)
    /// and `tensors.contexts` must be undefined.
    explicit host_batch(const batch_tensors& tensors, matrix_view<const float> contexts = {}) {
        constexpr const char* where = "sams::libtorch::host_batch";
        const torch::Tensor& a_w = tensors.policy_chosen;
        if (!a_w.defined()) detail::reject(where, "policy_chosen", "is undefined, expected a [B] tensor");
        if (a_w.dim() != 1) detail::reject(where, "policy_chosen", "has shape " + detail::shape_text(a_w) + ", expected [B]");
        const std::int64_t b = a_w.size(0);
        policy_chosen_ = detail::host_vector(a_w, where, "policy_chosen", b, false, copied_);
        policy_rejected_ = detail::host_vector(tensors.policy_rejected, where, "policy_rejected", b, false, copied_);
        const bool has_ref = tensors.reference_chosen.defined() || tensors.reference_rejected.defined();
        if (has_ref) {
            reference_chosen_ = detail::host_vector(tensors.reference_chosen, where, "reference_chosen", b, false, copied_);
            reference_rejected_ =
                detail::host_vector(tensors.reference_rejected, where, "reference_rejected", b, false, copied_);
        }
        if (tensors.chosen_length.defined() || tensors.rejected_length.defined()) {
            chosen_length_ = detail::host_vector(tensors.chosen_length, where, "chosen_length", b, true, copied_);
            rejected_length_ = detail::host_vector(tensors.rejected_length, where, "rejected_length", b, true, copied_);
        }
        if (tensors.contexts.defined()) {
            if (contexts.data != nullptr)
                detail::reject(where, "contexts", "were given both as a tensor and as a view, expected one of them");
            const torch::Tensor& c = tensors.contexts;
            if (c.dim() != 2 || c.size(0) != b)
                detail::reject(where, "contexts",
                               "has shape " + detail::shape_text(c) + ", expected [" + std::to_string(b) + ", D]");
            if (!detail::is_float_like(c))
                detail::reject(where, "contexts",
                               "has dtype " + std::string(c10::toString(c.scalar_type())) + ", expected a floating type");
            contexts_ = detail::host_float(c, copied_);
            if (contexts_.size(1) > 1 && contexts_.stride(1) != 1) {
                copied_ = true;
                contexts_ = contexts_.contiguous();
            }
            contexts = {contexts_.data_ptr<float>(), static_cast<std::size_t>(contexts_.size(0)),
                        static_cast<std::size_t>(contexts_.size(1)),
                        static_cast<std::size_t>(contexts_.size(1) > 0 ? contexts_.stride(0) : 0)};
        }
        if (tensors.ids.defined()) {
            const torch::Tensor& id = tensors.ids;
            if (id.dim() != 1 || id.size(0) != b || id.scalar_type() != torch::kLong)
                detail::reject(where, "ids", "has " + detail::describe(id) + ", expected int64 [" + std::to_string(b) + "]");
            ids_ = id.detach();
            if (!ids_.device().is_cpu() || !ids_.is_contiguous()) {
                copied_ = true;
                ids_ = ids_.to(torch::kCPU).contiguous();
            }
        }
        batch_.policy_chosen = detail::span_of(policy_chosen_);
        batch_.policy_rejected = detail::span_of(policy_rejected_);
        batch_.reference_chosen = detail::span_of(reference_chosen_);
        batch_.reference_rejected = detail::span_of(reference_rejected_);
        batch_.chosen_length = detail::span_of(chosen_length_);
        batch_.rejected_length = detail::span_of(rejected_length_);
        batch_.contexts = contexts;
        if (ids_.defined()) batch_.ids = {ids_.data_ptr<std::int64_t>(), static_cast<std::size_t>(ids_.numel())};
    }

    host_batch(const host_batch&) = delete;
    host_batch& operator=(const host_batch&) = delete;

    /// The batch to pass to a scheduler's step(); valid while this object lives.
    [[nodiscard]] const pair_batch<float>& view() const noexcept { return batch_; }
    /// True when at least one tensor had to be converted or copied.
    [[nodiscard]] bool copied() const noexcept { return copied_; }

private:
    torch::Tensor policy_chosen_, policy_rejected_, reference_chosen_, reference_rejected_;
    torch::Tensor chosen_length_, rejected_length_, contexts_, ids_;
    pair_batch<float> batch_{};
    bool copied_ = false;
};

/// Hidden states of a combined batch of 2B sequences as the context extractors' views, read
/// through the tensors' strides: zero-copy for float32 CPU tensors, one conversion otherwise.
/// Not copyable (the views point into it).
class hidden_states {
public:
    /// A stacked tensor [layers][2B][T][d] (any strides).
    explicit hidden_states(const torch::Tensor& stacked, pair_order order = pair_order::chosen_first)
        : order_(order) {
        constexpr const char* where = "sams::libtorch::hidden_states";
        if (!stacked.defined()) detail::reject(where, "hidden states", "are undefined");
        if (stacked.dim() != 4 || stacked.size(1) % 2 != 0)
            detail::reject(where, "hidden states",
                           "have shape " + detail::shape_text(stacked) +
                               ", expected [layers, 2B, T, d] (chosen and rejected sequences of B pairs)");
        check_dtype(stacked, "hidden states");
        torch::Tensor h = readable(detail::host_float(stacked, copied_));
        layers_.push_back(h);
        view_ = {h.data_ptr<float>(),
                 static_cast<std::size_t>(h.size(0)),
                 static_cast<std::size_t>(h.size(1)),
                 static_cast<std::size_t>(h.size(2)),
                 static_cast<std::size_t>(h.size(3)),
                 static_cast<std::ptrdiff_t>(h.stride(0)),
                 static_cast<std::ptrdiff_t>(h.stride(1)),
                 static_cast<std::ptrdiff_t>(h.stride(2)),
                 static_cast<std::ptrdiff_t>(h.stride(3)),
                 {},
                 0};
    }

    /// One tensor per layer, each [2B][T][d] (as a model's forward returns them); no stacking
    /// copy. Layers whose strides differ from the first layer's are made contiguous.
    explicit hidden_states(const std::vector<torch::Tensor>& per_layer, pair_order order = pair_order::chosen_first)
        : order_(order) {
        constexpr const char* where = "sams::libtorch::hidden_states";
        if (per_layer.empty()) detail::reject(where, "hidden states", "are an empty list, expected one tensor per layer");
        for (std::size_t l = 0; l < per_layer.size(); ++l) {
            const std::string name = "hidden states of layer " + std::to_string(l);
            const torch::Tensor& t = per_layer[l];
            if (!t.defined()) detail::reject(where, name, "are undefined");
            if (t.dim() != 3 || t.size(0) % 2 != 0)
                detail::reject(where, name, "have shape " + detail::shape_text(t) + ", expected [2B, T, d]");
            if (l > 0 && t.sizes() != per_layer[0].sizes())
                detail::reject(where, name,
                               "have shape " + detail::shape_text(t) + ", expected " +
                                   detail::shape_text(per_layer[0]) + " like layer 0");
            check_dtype(t, name);
            layers_.push_back(readable(detail::host_float(t, copied_)));
        }
        // One set of strides serves every layer: when the layers disagree, make them all contiguous.
        for (const auto& h : layers_)
            if (h.strides() != layers_[0].strides()) {
                copied_ = true;
                for (auto& each : layers_) each = each.contiguous();
                break;
            }
        for (const auto& h : layers_) pointers_.push_back(h.data_ptr<float>());
        const torch::Tensor& h0 = layers_[0];
        view_ = {pointers_[0],
                 layers_.size(),
                 static_cast<std::size_t>(h0.size(0)),
                 static_cast<std::size_t>(h0.size(1)),
                 static_cast<std::size_t>(h0.size(2)),
                 0,
                 static_cast<std::ptrdiff_t>(h0.stride(0)),
                 static_cast<std::ptrdiff_t>(h0.stride(1)),
                 static_cast<std::ptrdiff_t>(h0.stride(2)),
                 std::span<const float* const>(pointers_),
                 0};
    }

    hidden_states(const hidden_states&) = delete;
    hidden_states& operator=(const hidden_states&) = delete;

    /// All 2B sequences.
    [[nodiscard]] const hidden_states_view<float>& view() const noexcept { return view_; }
    /// The chosen and rejected B-row views the extractors take.
    [[nodiscard]] chosen_rejected<hidden_states_view<float>> split() const {
        return split_chosen_rejected(view_, order_);
    }
    [[nodiscard]] bool copied() const noexcept { return copied_; }

private:
    static void check_dtype(const torch::Tensor& t, const std::string& name) {
        if (!detail::is_float_like(t))
            detail::reject("sams::libtorch::hidden_states", name,
                           "have dtype " + std::string(c10::toString(t.scalar_type())) + ", expected a floating type");
    }
    // A stride of 0 on a longer axis (an expand()ed tensor) is rejected by the extractors as
    // "strides unset": materialise such a tensor once.
    torch::Tensor readable(torch::Tensor h) {
        for (std::int64_t i = 0; i < h.dim(); ++i)
            if (h.size(i) > 1 && h.stride(i) == 0) {
                copied_ = true;
                return h.contiguous();
            }
        return h;
    }

    std::vector<torch::Tensor> layers_;
    std::vector<const float*> pointers_;
    hidden_states_view<float> view_{};
    pair_order order_;
    bool copied_ = false;
};

/// A token mask [2B][T] (bool, uint8 or any other numeric type: nonzero = valid token) as
/// the extractors' views. bool and uint8 CPU masks are read in place through their strides;
/// others are converted once to uint8. Not copyable.
class token_mask {
public:
    explicit token_mask(const torch::Tensor& mask, pair_order order = pair_order::chosen_first) : order_(order) {
        constexpr const char* where = "sams::libtorch::token_mask";
        if (!mask.defined()) detail::reject(where, "mask", "is undefined");
        if (mask.dim() != 2 || mask.size(0) % 2 != 0)
            detail::reject(where, "mask", "has shape " + detail::shape_text(mask) + ", expected [2B, T]");
        torch::Tensor m = mask.detach();
        const bool byte_like = m.scalar_type() == torch::kBool || m.scalar_type() == torch::kByte;
        if (!m.device().is_cpu() || !byte_like) {
            copied_ = true;
            m = m.ne(0).to(torch::kCPU, torch::kByte);
        }
        mask_ = m;
        // bool and uint8 share size and representation (0/1), and a byte type may alias anything.
        const auto* data = static_cast<const std::uint8_t*>(mask_.data_ptr());
        view_ = {data, static_cast<std::size_t>(m.size(0)), static_cast<std::size_t>(m.size(1)),
                 static_cast<std::ptrdiff_t>(m.stride(0)), static_cast<std::ptrdiff_t>(m.stride(1))};
    }

    token_mask(const token_mask&) = delete;
    token_mask& operator=(const token_mask&) = delete;

    [[nodiscard]] const token_mask_view<std::uint8_t>& view() const noexcept { return view_; }
    [[nodiscard]] chosen_rejected<token_mask_view<std::uint8_t>> split() const {
        return split_chosen_rejected(view_, order_);
    }
    [[nodiscard]] bool copied() const noexcept { return copied_; }

private:
    torch::Tensor mask_;
    token_mask_view<std::uint8_t> view_{};
    pair_order order_;
    bool copied_ = false;
};

/// sams::mean_pool_extractor's computation written with torch ops, for hidden states that
/// live on a GPU: the pooling runs on the device and only the [B, D] contexts are copied to
/// the host. Same options and the same projection matrix as the library's extractor (float32
/// sums instead of double ones, so results agree to float rounding).
class device_mean_pool {
public:
    explicit device_mean_pool(mean_pool_options options = {}) : extractor_(std::move(options)) {}

    [[nodiscard]] const mean_pool_options& options() const noexcept { return extractor_.options(); }
    [[nodiscard]] std::size_t output_dim(std::size_t layers, std::size_t dim) const {
        return extractor_.output_dim(layers, dim);
    }

    /// Contexts [B, D] (float32, on the hidden states' device) from per-layer hidden states
    /// [2B, T, d] and a token mask [2B, T] (nonzero = valid), detached from the graph.
    [[nodiscard]] torch::Tensor operator()(const std::vector<torch::Tensor>& per_layer, const torch::Tensor& mask,
                                           pair_order order = pair_order::chosen_first) {
        constexpr const char* where = "sams::libtorch::device_mean_pool";
        if (per_layer.empty()) detail::reject(where, "hidden states", "are an empty list, expected one tensor per layer");
        const torch::Tensor& h0 = per_layer[0];
        if (!h0.defined() || h0.dim() != 3 || h0.size(0) % 2 != 0)
            detail::reject(where, "hidden states of layer 0",
                           "have " + (h0.defined() ? detail::describe(h0) : std::string("no value")) +
                               ", expected [2B, T, d]");
        for (std::size_t l = 1; l < per_layer.size(); ++l)
            if (!per_layer[l].defined() || per_layer[l].sizes() != h0.sizes())
                detail::reject(where, "hidden states of layer " + std::to_string(l),
                               "must have layer 0's shape " + detail::shape_text(h0));
        if (!mask.defined() || mask.dim() != 2 || mask.size(0) != h0.size(0) || mask.size(1) != h0.size(1))
            detail::reject(where, "mask",
                           "has " + (mask.defined() ? detail::describe(mask) : std::string("no value")) +
                               ", expected [" + std::to_string(h0.size(0)) + ", " + std::to_string(h0.size(1)) + "]");
        const auto layers = per_layer.size();
        const auto dim = static_cast<std::size_t>(h0.size(2));
        (void)extractor_.output_dim(layers, dim);  // checks the layer selection against the hidden states
        const mean_pool_options& o = extractor_.options();

        torch::NoGradGuard no_grad;
        const torch::Tensor valid = mask.to(h0.device()).ne(0).unsqueeze(-1);  // [2B, T, 1]
        const torch::Tensor padding = valid.logical_not();
        const torch::Tensor count = valid.sum(1).to(torch::kFloat);           // [2B, 1]
        if (count.min().item<float>() <= 0.0f)
            detail::reject(where, "mask", "has a sequence without any valid token (a masked mean over zero tokens)");
        const std::int64_t b = h0.size(0) / 2;
        std::vector<std::size_t> selected = o.layers;
        if (selected.empty())
            for (std::size_t l = 0; l < layers; ++l) selected.push_back(l);
        if (o.reduce == layer_reduction::last_layer) selected = {selected.back()};

        std::vector<torch::Tensor> per_layer_ctx;
        for (const std::size_t l : selected) {
            // masked_fill, not a product with the mask: padding may hold NaN, and NaN·0 is NaN.
            const torch::Tensor pooled =
                per_layer[l].detach().to(torch::kFloat).masked_fill(padding, 0.0).sum(1) / count;  // [2B, d]
            torch::Tensor chosen, rejected;
            if (order == pair_order::chosen_first) {
                chosen = pooled.narrow(0, 0, b);
                rejected = pooled.narrow(0, b, b);
            } else {
                chosen = pooled.slice(0, 0, 2 * b, 2);
                rejected = pooled.slice(0, 1, 2 * b, 2);
            }
            per_layer_ctx.push_back(o.combine == context_combine::concatenate ? torch::cat({chosen, rejected}, 1)
                                                                               : 0.5 * (chosen + rejected));
        }
        torch::Tensor out;
        switch (o.reduce) {
            case layer_reduction::mean_layers: out = torch::stack(per_layer_ctx, 0).mean(0); break;
            case layer_reduction::last_layer: out = per_layer_ctx[0]; break;
            case layer_reduction::flatten_layers: out = torch::cat(per_layer_ctx, 1); break;
            case layer_reduction::random_projection: {
                const std::size_t n = extractor_.flattened_dim(layers, dim);
                if (!projection_.defined() || projection_.size(0) != static_cast<std::int64_t>(n) ||
                    projection_.device() != h0.device()) {
                    extractor_.prepare(layers, 1, dim);  // draws the library's N×D' matrix
                    const matrix_view<const float> r = extractor_.projection();
                    projection_ = torch::from_blob(const_cast<float*>(r.data),
                                                   {static_cast<std::int64_t>(r.rows), static_cast<std::int64_t>(r.cols)},
                                                   torch::kFloat)
                                      .to(h0.device(), torch::kFloat, false, /*copy=*/true);
                }
                out = torch::cat(per_layer_ctx, 1).matmul(projection_);
                break;
            }
        }
        return out;
    }

private:
    mean_pool_extractor<float> extractor_;
    torch::Tensor projection_;
};

// ---------------------------------------------------------------------------------------
// From a decision back to autograd.

/// `values` (B entries, e.g. d.weight) as a float32 tensor on `device`.
[[nodiscard]] inline torch::Tensor to_tensor(std::span<const float> values, torch::Device device = torch::kCPU) {
    torch::Tensor t = torch::empty({static_cast<std::int64_t>(values.size())}, torch::kFloat);
    std::copy(values.begin(), values.end(), t.data_ptr<float>());
    return device.is_cpu() ? t : t.to(device);
}

/// The selected pair indices (ascending) as an int64 tensor on `device`: index_select them
/// from [B]-shaped tensors, or pick the 2K sequences of the memory-saving backward pass.
[[nodiscard]] inline torch::Tensor selected_indices(const decision<float>& d, torch::Device device = torch::kCPU) {
    torch::Tensor t = torch::empty({static_cast<std::int64_t>(d.selected.size())}, torch::kLong);
    auto* out = t.data_ptr<std::int64_t>();
    for (std::size_t j = 0; j < d.selected.size(); ++j) out[j] = static_cast<std::int64_t>(d.selected[j]);
    return device.is_cpu() ? t : t.to(device);
}

namespace detail {

/// Per-pair values of a decision matched to a tensor of the host: all B values when the
/// tensor has B entries, the K selected ones when it has K (the memory-saving mode, where
/// only the selected pairs are run with grad). B == K means both.
inline torch::Tensor per_pair(const decision<float>& d, std::span<const float> values, const torch::Tensor& like,
                              const char* where, const char* name) {
    const auto b = static_cast<std::int64_t>(d.mask.size());
    const auto k = static_cast<std::int64_t>(d.selected.size());
    if (!like.defined() || like.dim() != 1 || (like.size(0) != b && like.size(0) != k))
        reject(where, name,
               "has " + (like.defined() ? describe(like) : std::string("no value")) + ", expected [" +
                   std::to_string(b) + "] (every pair of the decision) or [" + std::to_string(k) +
                   "] (the selected pairs, in d.selected's order)");
    torch::Tensor all = to_tensor(values);
    if (like.size(0) != b) all = all.index_select(0, selected_indices(d));
    return all.to(like.device(), like.scalar_type());
}

inline torch::Tensor as_float(const torch::Tensor& t) {
    return t.scalar_type() == torch::kFloat ? t : t.to(torch::kFloat);
}

inline torch::Tensor log_sigmoid(const torch::Tensor& z) { return torch::log_sigmoid(z); }

}  // namespace detail

/// The per-pair loss ℓ_i of `config` (docs/losses.md) as a torch expression of the tensors,
/// in float32: differentiable in the policy log-probs. Mirrors sams/loss/losses.hpp.
[[nodiscard]] inline torch::Tensor pair_losses(const loss_config& config, const batch_tensors& t) {
    constexpr const char* where = "sams::libtorch::pair_losses";
    config.validate();
    if (!t.policy_chosen.defined() || !t.policy_rejected.defined())
        detail::reject(where, "policy_chosen/policy_rejected", "must both be defined");
    const torch::Tensor a_w = detail::as_float(t.policy_chosen);
    const torch::Tensor a_l = detail::as_float(t.policy_rejected);
    const double beta = config.beta;
    const double eps = config.label_smoothing;
    torch::Tensor u_w, u_l, n_w, n_l;
    if (config.needs_reference()) {
        if (!t.reference_chosen.defined() || !t.reference_rejected.defined())
            detail::reject(where, "reference_chosen/reference_rejected", "are needed by this loss but undefined");
        u_w = a_w - detail::as_float(t.reference_chosen).detach();
        u_l = a_l - detail::as_float(t.reference_rejected).detach();
    }
    if (config.needs_lengths()) {
        if (!t.chosen_length.defined() || !t.rejected_length.defined())
            detail::reject(where, "chosen_length/rejected_length", "are needed by this loss but undefined");
        n_w = t.chosen_length.detach().to(a_w.device(), torch::kFloat);
        n_l = t.rejected_length.detach().to(a_w.device(), torch::kFloat);
    }
    // −(1−ε) log σ(z) − ε log σ(−z), the label-smoothed logistic loss.
    const auto smoothed = [eps](const torch::Tensor& z) {
        return -(1.0 - eps) * detail::log_sigmoid(z) - eps * detail::log_sigmoid(-z);
    };
    switch (config.kind) {
        case loss_kind::sigmoid: return smoothed(beta * (u_w - u_l));
        case loss_kind::robust: {
            const torch::Tensor z = beta * (u_w - u_l);
            return (-(1.0 - eps) * detail::log_sigmoid(z) + eps * detail::log_sigmoid(-z)) / (1.0 - 2.0 * eps);
        }
        case loss_kind::ipo: {
            const torch::Tensor h = config.length_normalize ? u_w / n_w - u_l / n_l : u_w - u_l;
            return (h - 1.0 / (2.0 * beta)).pow(2);
        }
        case loss_kind::hinge: return torch::relu(1.0 - beta * (u_w - u_l));
        case loss_kind::sigmoid_norm: return smoothed(beta * (u_w / n_w - u_l / n_l));
        case loss_kind::simpo: return smoothed(beta * (a_w / n_w - a_l / n_l) - config.simpo_gamma);
        case loss_kind::nca_pair: {
            const torch::Tensor rho_w = beta * u_w, rho_l = beta * u_l;
            return -detail::log_sigmoid(rho_w) - 0.5 * detail::log_sigmoid(-rho_w) - 0.5 * detail::log_sigmoid(-rho_l);
        }
        case loss_kind::apo_zero: return torch::sigmoid(-beta * u_w) + torch::sigmoid(beta * u_l);
        case loss_kind::sppo_hard: {
            const double target = 1.0 / (2.0 * beta);
            return (u_w - target).pow(2) + (u_l + target).pow(2);
        }
    }
    detail::reject(where, "config.kind", "is not a loss_kind enumerator");
}

/// Way (a): Σ_i w_i ℓ_i with the decision's weights, as a scalar tensor connected to the
/// graph of the policy log-probs; call .backward() on it. The tensors hold either all B
/// pairs of the decision or only its K selected pairs (in d.selected's order).
[[nodiscard]] inline torch::Tensor weighted_loss(const loss_config& config, const decision<float>& d,
                                                 const batch_tensors& t) {
    const torch::Tensor losses = pair_losses(config, t);
    const torch::Tensor w = detail::per_pair(d, d.weight, losses, "sams::libtorch::weighted_loss", "the loss vector");
    return (w * losses).sum();
}

/// Way (b): injects ∂(Σ w ℓ)/∂a_w and ∂(Σ w ℓ)/∂a_l from the decision as the gradients of the
/// policy log-prob tensors (one autograd backward call). [B] or [K] tensors as in
/// weighted_loss. Accumulates into the parameters' .grad like loss.backward() does.
inline void backward(const decision<float>& d, const torch::Tensor& policy_chosen,
                     const torch::Tensor& policy_rejected) {
    constexpr const char* where = "sams::libtorch::backward";
    if (!policy_chosen.defined() || !policy_chosen.requires_grad())
        detail::reject(where, "policy_chosen", "must be defined and require grad (the policy's forward with grad)");
    if (!policy_rejected.defined() || !policy_rejected.requires_grad())
        detail::reject(where, "policy_rejected", "must be defined and require grad (the policy's forward with grad)");
    torch::Tensor g_w = detail::per_pair(d, d.d_policy_chosen, policy_chosen, where, "policy_chosen");
    torch::Tensor g_l = detail::per_pair(d, d.d_policy_rejected, policy_rejected, where, "policy_rejected");
    torch::autograd::backward({policy_chosen, policy_rejected}, {g_w, g_l});
}

}  // namespace sams::libtorch
