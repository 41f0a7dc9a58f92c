// The end-to-end example's machinery, shared by the program (dpo_sams.cpp) and its test: a
// made-up preference task with a hidden rule, a small decoder-only transformer, SFT, and a
// DPO trainer that asks a sams scheduler (SamS, a uniform K-subset, or all pairs) which pairs
// to train on, with the memory-saving variant that runs the grad pass on the K pairs only.
#pragma once

#include <c10/core/CPUAllocator.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <numeric>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <sams/backend/eigen/eigen_backend.hpp>
#include <sams/context/context_matrix.hpp>
#include <sams/context/mean_pool.hpp>
#include <sams/scheduler/scheduler_config.hpp>
#include <sams/core/decision.hpp>
#include <sams/core/rng.hpp>
#include <sams/guided/guided_scheduler.hpp>
#include <sams/guided/sketch.hpp>
#include <sams/loss/evaluate.hpp>
#include <sams/scheduler/baselines.hpp>
#include <sams/scheduler/decision_fill.hpp>
#include <sams/scheduler/sams_scheduler.hpp>
#include <sams/scheduler/selection.hpp>

#include "sams_torch.hpp"
// The thrust session (CMake defines SAMS_LIBTORCH_HAS_THRUST where it is built): SamS on
// sams::thrust_backend<float>, reading contexts on the tensors' device.
#if defined(SAMS_LIBTORCH_HAS_THRUST) && SAMS_LIBTORCH_HAS_THRUST
#include "sams_torch_thrust.hpp"
#define SAMS_DPO_THRUST 1
#else
#define SAMS_DPO_THRUST 0
#endif

namespace dpo_demo {

// ---------------------------------------------------------------------------------------
// Peak tensor memory on the CPU.
//
// LibTorch has no allocator statistics for CPU tensors (CUDA has max_memory_allocated), so
// the example installs a pass-through CPU allocator that counts the bytes of live tensors and
// their peak. It wraps the default allocator (alloc and free are unchanged) and tracks only
// allocations whose context is the data pointer, which is what the default CPU allocator
// returns. Memory that does not come from tensors (the Eigen scheduler, BLAS workspaces,
// libtorch's own bookkeeping) is not in these numbers.

/// Counts live CPU tensor bytes. install() once, before the first tensor is created.
class memory_meter final : public c10::Allocator {
public:
    /// Wraps the current CPU allocator (idempotent). The meter is never destroyed: tensors
    /// freed during static destruction still call into it.
    static memory_meter& install() {
        static memory_meter* meter = [] {
            auto* m = new memory_meter(c10::GetCPUAllocator());
            c10::SetCPUAllocator(m, /*priority=*/100);
            return m;
        }();
        return *meter;
    }
    /// The meter if install() was called, else nullptr.
    static memory_meter* installed() noexcept { return instance(); }

    [[nodiscard]] std::size_t current() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return current_;
    }
    [[nodiscard]] std::size_t peak() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return peak_;
    }
    /// Starts a new peak measurement from the bytes live now.
    void reset_peak() {
        std::lock_guard<std::mutex> lock(mutex_);
        peak_ = current_;
    }

    // LibTorch before 2.3 declares `allocate(size_t) const`, later versions `allocate(size_t)`:
    // both are defined (without `override`) so that whichever the base declares is overridden.
    c10::DataPtr allocate(std::size_t n) const { return wrap(n); }
    c10::DataPtr allocate(std::size_t n) { return wrap(n); }
    // Pure virtual since LibTorch 2.3, an unused extra member before.
    void copy_data(void* dest, const void* src, std::size_t count) const { std::memcpy(dest, src, count); }
    c10::DeleterFnPtr raw_deleter() const { return &release; }

private:
    explicit memory_meter(c10::Allocator* inner) : inner_(inner), inner_deleter_(inner->raw_deleter()) {
        instance() = this;
    }

    static memory_meter*& instance() noexcept {
        static memory_meter* self = nullptr;
        return self;
    }

    c10::DataPtr wrap(std::size_t n) const {
        c10::DataPtr d = inner_->allocate(n);
        void* p = d.get_context();
        // Only simple allocations (context == data, freed by the raw deleter) can be re-wrapped.
        if (p == nullptr || inner_deleter_ == nullptr || d.get_deleter() != inner_deleter_ ||
            static_cast<const void*>(d.get()) != static_cast<const void*>(p))
            return d;
        const c10::Device device = d.device();
        (void)d.release_context();
        {
            std::lock_guard<std::mutex> lock(mutex_);
            sizes_[p] = n;
            current_ += n;
            peak_ = std::max(peak_, current_);
        }
        return c10::DataPtr(p, p, &release, device);
    }

    static void release(void* p) {
        memory_meter* self = instance();
        {
            std::lock_guard<std::mutex> lock(self->mutex_);
            const auto it = self->sizes_.find(p);
            if (it != self->sizes_.end()) {
                self->current_ -= it->second;
                self->sizes_.erase(it);
            }
        }
        self->inner_deleter_(p);
    }

    c10::Allocator* inner_;
    c10::DeleterFnPtr inner_deleter_;
    mutable std::mutex mutex_;
    mutable std::unordered_map<void*, std::size_t> sizes_;
    mutable std::size_t current_ = 0;
    mutable std::size_t peak_ = 0;
};

// ---------------------------------------------------------------------------------------
// The task. A prompt is a string of digits; a response has the prompt's length. Four response
// styles exist: the digits sorted ascending, sorted descending, copied, reversed. The hidden
// rule: a response is preferred when it is sorted ascending if the prompt's first digit is
// below 5, and sorted descending otherwise. SFT sees all four styles equally often (so the
// reference model has no preference); DPO pairs put the rule's response against another style
// or a near miss (the rule's response with two unequal neighbours swapped).

inline constexpr std::int64_t separator_token = 10;
inline constexpr std::int64_t vocab_size = 11;

enum class style { ascending, descending, copy, reverse };

using tokens = std::vector<std::int64_t>;

inline tokens random_prompt(std::int64_t length, sams::rng& g) {
    tokens p(static_cast<std::size_t>(length));
    for (auto& t : p) t = static_cast<std::int64_t>(g.below(10));
    return p;
}

inline tokens respond(const tokens& prompt, style s) {
    tokens r = prompt;
    switch (s) {
        case style::ascending: std::sort(r.begin(), r.end()); break;
        case style::descending: std::sort(r.begin(), r.end(), std::greater<>()); break;
        case style::copy: break;
        case style::reverse: std::reverse(r.begin(), r.end()); break;
    }
    return r;
}

inline style preferred_style(const tokens& prompt) { return prompt[0] < 5 ? style::ascending : style::descending; }

/// One preference pair. `flipped`: the labels were swapped (the chosen response breaks the rule).
struct preference_pair {
    tokens prompt, chosen, rejected;
    bool flipped = false;
};

/// A clean pair: chosen follows the rule; rejected is the other sort order (40 %), the copy
/// (20 %), the reversal (20 %) or a near miss (20 %), always different from chosen.
inline preference_pair make_clean_pair(std::int64_t prompt_length, sams::rng& g) {
    for (;;) {
        preference_pair p;
        p.prompt = random_prompt(prompt_length, g);
        p.chosen = respond(p.prompt, preferred_style(p.prompt));
        const double u = g.uniform();
        if (u < 0.4) {
            p.rejected = respond(p.prompt, preferred_style(p.prompt) == style::ascending ? style::descending
                                                                                         : style::ascending);
        } else if (u < 0.6) {
            p.rejected = respond(p.prompt, style::copy);
        } else if (u < 0.8) {
            p.rejected = respond(p.prompt, style::reverse);
        } else {
            p.rejected = p.chosen;
            std::vector<std::size_t> swappable;
            for (std::size_t i = 0; i + 1 < p.rejected.size(); ++i)
                if (p.rejected[i] != p.rejected[i + 1]) swappable.push_back(i);
            if (!swappable.empty()) {
                const std::size_t i = swappable[g.below(swappable.size())];
                std::swap(p.rejected[i], p.rejected[i + 1]);
            }
        }
        if (p.rejected != p.chosen) return p;
    }
}

/// `n` pairs of which exactly round(η·n), chosen uniformly, have their labels swapped.
inline std::vector<preference_pair> make_pairs(std::size_t n, std::int64_t prompt_length, double eta, sams::rng& g) {
    std::vector<preference_pair> pairs;
    pairs.reserve(n);
    for (std::size_t i = 0; i < n; ++i) pairs.push_back(make_clean_pair(prompt_length, g));
    std::vector<std::size_t> order(n);
    std::iota(order.begin(), order.end(), std::size_t{0});
    for (std::size_t i = n; i > 1; --i) std::swap(order[i - 1], order[g.below(i)]);
    const auto flips = static_cast<std::size_t>(std::llround(eta * static_cast<double>(n)));
    for (std::size_t j = 0; j < flips && j < n; ++j) {
        preference_pair& p = pairs[order[j]];
        std::swap(p.chosen, p.rejected);
        p.flipped = true;
    }
    return pairs;
}

/// Sequences `prompt SEP response` as next-token inputs and targets. `mask` is 1 where the
/// target is a response token: the tokens whose log-probs are summed, and the positions whose
/// hidden states the context extractor averages (the states that predict the response).
struct token_batch {
    torch::Tensor inputs;   ///< [N, T-1] int64
    torch::Tensor targets;  ///< [N, T-1] int64
    torch::Tensor mask;     ///< [N, T-1] float32
};

inline token_batch encode(const std::vector<const tokens*>& prompts, const std::vector<const tokens*>& responses,
                          torch::Device device) {
    const auto n = static_cast<std::int64_t>(prompts.size());
    const auto p = static_cast<std::int64_t>(prompts.front()->size());
    const auto r = static_cast<std::int64_t>(responses.front()->size());
    const std::int64_t t = p + 1 + r;
    torch::Tensor seq = torch::empty({n, t}, torch::kLong);
    auto* s = seq.data_ptr<std::int64_t>();
    for (std::int64_t i = 0; i < n; ++i) {
        std::int64_t* row = s + i * t;
        std::copy(prompts[static_cast<std::size_t>(i)]->begin(), prompts[static_cast<std::size_t>(i)]->end(), row);
        row[p] = separator_token;
        std::copy(responses[static_cast<std::size_t>(i)]->begin(), responses[static_cast<std::size_t>(i)]->end(),
                  row + p + 1);
    }
    torch::Tensor mask = torch::zeros({n, t - 1}, torch::kFloat);
    mask.narrow(1, p, r).fill_(1.0);
    return {seq.narrow(1, 0, t - 1).contiguous().to(device), seq.narrow(1, 1, t - 1).contiguous().to(device),
            mask.to(device)};
}

/// Chosen sequences in rows [0, B), rejected in [B, 2B) (pair_order::chosen_first).
inline token_batch encode_pairs(const std::vector<const preference_pair*>& pairs, torch::Device device) {
    std::vector<const tokens*> prompts, responses;
    for (const auto* q : pairs) prompts.push_back(&q->prompt), responses.push_back(&q->chosen);
    for (const auto* q : pairs) prompts.push_back(&q->prompt), responses.push_back(&q->rejected);
    return encode(prompts, responses, device);
}

// ---------------------------------------------------------------------------------------
// The model: a pre-LayerNorm decoder-only transformer with learned positions, causal
// self-attention written out with matmuls (the same code on LibTorch 1.13 and 2.x).

struct model_config {
    std::int64_t vocab = vocab_size;
    std::int64_t max_length = 64;
    std::int64_t d_model = 64;
    std::int64_t heads = 4;
    std::int64_t layers = 2;
    std::int64_t mlp = 128;
};

class block_impl : public torch::nn::Module {
public:
    block_impl(std::int64_t d_model, std::int64_t heads, std::int64_t mlp) : heads_(heads) {
        norm1_ = register_module("norm1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d_model})));
        norm2_ = register_module("norm2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d_model})));
        qkv_ = register_module("qkv", torch::nn::Linear(d_model, 3 * d_model));
        proj_ = register_module("proj", torch::nn::Linear(d_model, d_model));
        fc1_ = register_module("fc1", torch::nn::Linear(d_model, mlp));
        fc2_ = register_module("fc2", torch::nn::Linear(mlp, d_model));
    }

    /// x [N, T, d]; `blocked` [T, T] bool, true above the diagonal.
    torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& blocked) {
        const std::int64_t n = x.size(0), t = x.size(1), d = x.size(2), hd = d / heads_;
        const auto qkv = qkv_->forward(norm1_->forward(x)).chunk(3, -1);
        const auto heads = [&](const torch::Tensor& z) { return z.view({n, t, heads_, hd}).transpose(1, 2); };
        torch::Tensor att = heads(qkv[0]).matmul(heads(qkv[1]).transpose(-2, -1)) / std::sqrt(static_cast<double>(hd));
        att = torch::softmax(att.masked_fill(blocked, -std::numeric_limits<float>::infinity()), -1);
        const torch::Tensor y = att.matmul(heads(qkv[2])).transpose(1, 2).contiguous().view({n, t, d});
        const torch::Tensor h = x + proj_->forward(y);
        return h + fc2_->forward(torch::gelu(fc1_->forward(norm2_->forward(h))));
    }

private:
    std::int64_t heads_;
    torch::nn::LayerNorm norm1_{nullptr}, norm2_{nullptr};
    torch::nn::Linear qkv_{nullptr}, proj_{nullptr}, fc1_{nullptr}, fc2_{nullptr};
};

class tiny_lm : public torch::nn::Module {
public:
    struct output {
        torch::Tensor logits;               ///< [N, T, vocab]
        std::vector<torch::Tensor> hidden;  ///< per block: [N, T, d] (the residual stream after it)
        torch::Tensor embedded;             ///< [N, T, d], the first block's input
        torch::Tensor pre_head;             ///< [N, T, d], the head's input (final LayerNorm of the last block)
    };

    explicit tiny_lm(const model_config& c) : config_(c) {
        token_ = register_module("token", torch::nn::Embedding(c.vocab, c.d_model));
        position_ = register_module("position", torch::nn::Embedding(c.max_length, c.d_model));
        for (std::int64_t l = 0; l < c.layers; ++l)
            blocks_.push_back(register_module("block" + std::to_string(l),
                                              std::make_shared<block_impl>(c.d_model, c.heads, c.mlp)));
        norm_ = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.d_model})));
        head_ = register_module("head", torch::nn::Linear(c.d_model, c.vocab));
    }

    /// `inputs` [N, T] int64. With `keep_embedding_grad`, out.embedded.grad() is filled by the
    /// backward pass (the test uses it to see which sequences received a gradient).
    output forward(const torch::Tensor& inputs, bool keep_embedding_grad = false) {
        const std::int64_t t = inputs.size(1);
        const auto device = inputs.device();
        const torch::Tensor positions = torch::arange(t, torch::TensorOptions().dtype(torch::kLong).device(device));
        output out;
        out.embedded = token_->forward(inputs) + position_->forward(positions).unsqueeze(0);
        if (keep_embedding_grad && out.embedded.requires_grad()) out.embedded.retain_grad();
        const torch::Tensor blocked =
            torch::ones({t, t}, torch::TensorOptions().dtype(torch::kBool).device(device)).triu(1);
        torch::Tensor x = out.embedded;
        for (auto& block : blocks_) {
            x = block->forward(x, blocked);
            out.hidden.push_back(x);
        }
        out.pre_head = norm_->forward(x);
        out.logits = head_->forward(out.pre_head);
        return out;
    }

    [[nodiscard]] const model_config& config() const noexcept { return config_; }
    /// The output projection (LM head): logits = head(final).
    [[nodiscard]] torch::nn::Linear& head() noexcept { return head_; }

private:
    model_config config_;
    torch::nn::Embedding token_{nullptr}, position_{nullptr};
    std::vector<std::shared_ptr<block_impl>> blocks_;
    torch::nn::LayerNorm norm_{nullptr};
    torch::nn::Linear head_{nullptr};
};

/// A new model with `source`'s weights (the policy and the frozen reference start from SFT).
inline std::shared_ptr<tiny_lm> clone_model(tiny_lm& source, torch::Device device) {
    auto copy = std::make_shared<tiny_lm>(source.config());
    copy->to(device);
    torch::NoGradGuard no_grad;
    const auto from = source.parameters();
    auto to = copy->parameters();
    for (std::size_t i = 0; i < from.size(); ++i) to[i].copy_(from[i]);
    return copy;
}

/// Σ over response tokens of log p(target): [N].
inline torch::Tensor response_logps(const torch::Tensor& logits, const token_batch& b) {
    const torch::Tensor lp = torch::log_softmax(logits, -1).gather(2, b.targets.unsqueeze(-1)).squeeze(-1);
    return (lp * b.mask).sum(1);
}

// ---------------------------------------------------------------------------------------
// Guided selection's host side: per-pair gradients of h = a_w − a_l with respect to the LM
// head only, in closed form from the forward pass, and their CountSketch.

/// Per pair, ∇ of h_i = log π(y_w,i) − log π(y_l,i) with respect to the head's weight W [V, d]
/// and bias [V], flattened as [W row-major, bias] (P = V·d + V): since ∂ log p(y_t)/∂logits_t
/// = onehot(y_t) − softmax_t and logits_t = W h_t + b, the gradient is Σ_t (onehot(y_t) −
/// softmax_t) ⊗ h_t (and Σ_t (onehot − softmax) for b) over the response tokens, chosen minus
/// rejected. `logits` and `pre_head` are the forward pass's [2B, T, V] and [2B, T, d] (chosen
/// rows first); no autograd is involved. Returns [B, P] float on the tensors' device.
inline torch::Tensor head_pair_gradients(const torch::Tensor& logits, const torch::Tensor& pre_head,
                                         const token_batch& tb) {
    torch::NoGradGuard no_grad;
    const torch::Tensor z = logits.detach().to(torch::kFloat);
    const std::int64_t n = z.size(0), v = z.size(2), b = n / 2;
    torch::Tensor e = -torch::softmax(z, -1);
    e.scatter_add_(2, tb.targets.unsqueeze(-1), torch::ones_like(tb.targets, z.options()).unsqueeze(-1));
    e.mul_(tb.mask.to(z.options()).unsqueeze(-1));                              // [2B, T, V]
    const torch::Tensor gw = torch::bmm(e.transpose(1, 2), pre_head.detach().to(torch::kFloat));  // [2B, V, d]
    const torch::Tensor g = torch::cat({gw.reshape({n, -1}), e.sum(1).reshape({n, v})}, 1);    // [2B, P]
    return g.narrow(0, 0, b) - g.narrow(0, b, b);
}

/// sams::count_sketch as a torch operation: the bucket and sign of every parameter index are
/// taken from the library's hash once, and a [N, P] gradient sketches with one index_add on
/// whatever device it lives (equal to count_sketch::apply row by row).
class torch_count_sketch {
public:
    torch_count_sketch(std::size_t width, std::uint64_t seed, std::int64_t parameters, torch::Device device)
        : sketch_(width, seed) {
        torch::Tensor bucket = torch::empty({parameters}, torch::kLong);
        torch::Tensor sign = torch::empty({parameters}, torch::kFloat);
        auto* bp = bucket.data_ptr<std::int64_t>();
        auto* sp = sign.data_ptr<float>();
        for (std::int64_t j = 0; j < parameters; ++j) {
            bp[j] = static_cast<std::int64_t>(sketch_.bucket(static_cast<std::uint64_t>(j)));
            sp[j] = static_cast<float>(sketch_.sign(static_cast<std::uint64_t>(j)));
        }
        bucket_ = bucket.to(device);
        sign_ = sign.to(device);
    }
    [[nodiscard]] const sams::count_sketch& sketch() const noexcept { return sketch_; }
    [[nodiscard]] std::size_t width() const noexcept { return sketch_.width(); }

    /// [N, P] → [N, k], on the input's device.
    [[nodiscard]] torch::Tensor operator()(const torch::Tensor& g) const {
        torch::NoGradGuard no_grad;
        torch::Tensor out = torch::zeros({g.size(0), static_cast<std::int64_t>(width())}, g.options());
        return out.index_add_(1, bucket_, g * sign_);
    }

private:
    sams::count_sketch sketch_;
    torch::Tensor bucket_, sign_;
};

/// The equal-count control of guided selection: at step t, a uniformly random subset of as
/// many pairs as guided selection trained on at step t of the same seed.
class count_matched_selector {
public:
    count_matched_selector(const sams::loss_config& loss, std::vector<std::size_t> counts, std::uint64_t seed)
        : loss_(loss), counts_(std::move(counts)), gen_(seed, /*stream=*/8) {}
    void step(const sams::pair_batch<float>& batch, sams::decision<float>& d) {
        sams::detail::require(t_ < counts_.size(), "dpo_demo::count_matched_selector",
                              "more steps than recorded counts");
        sams::evaluate_loss(loss_, batch, stats_);
        const std::size_t b = batch.size();
        sams::select_uniform(b, std::min(std::max<std::size_t>(counts_[t_++], 1), b), gen_, selected_);
        sams::detail::fill_decision(stats_, std::span<const std::size_t>(selected_), sams::weight_scaling::per_selected,
                                    d);
    }

private:
    sams::loss_config loss_;
    std::vector<std::size_t> counts_;
    std::size_t t_ = 0;
    sams::rng gen_;
    sams::pair_stats<float> stats_;
    std::vector<std::size_t> selected_;
};

// ---------------------------------------------------------------------------------------
// Configuration of a run.

enum class method { dpo, sams, uniform, guided, matched };

/// Where SamS (method sams, with or without -lowmem) runs: the Eigen backend on the host, or
/// the thrust session on the tensors' device. `automatic`: thrust when the model runs on CUDA
/// and the session was built for CUDA, else Eigen.
enum class scheduler_backend_kind { automatic, eigen, thrust };

/// True when this build has the thrust session.
inline constexpr bool has_thrust_session = SAMS_DPO_THRUST != 0;

/// The device type the thrust session reads (CPU when it runs on thrust's CPP system or is absent).
inline c10::DeviceType thrust_session_device_type() {
#if SAMS_DPO_THRUST
    return sams::libtorch::thrust_session_device_type();
#else
    return c10::DeviceType::CPU;
#endif
}

/// A method and whether it runs in the memory-saving mode: score all pairs with a no-grad
/// forward, then run the grad forward and backward on the K selected pairs only.
struct method_spec {
    method kind = method::dpo;
    bool low_memory = false;

    [[nodiscard]] std::string name() const {
        const char* base = kind == method::dpo       ? "dpo"
                           : kind == method::sams    ? "sams"
                           : kind == method::uniform ? "uniform"
                           : kind == method::guided  ? "guided"
                                                     : "matched";
        return std::string(base) + (low_memory ? "-lowmem" : "");
    }
    /// "dpo", "sams", "uniform", "guided", "matched", optionally with "-lowmem".
    static std::optional<method_spec> parse(std::string_view s) {
        method_spec m;
        constexpr std::string_view suffix = "-lowmem";
        if (s.size() > suffix.size() && s.substr(s.size() - suffix.size()) == suffix) {
            m.low_memory = true;
            s.remove_suffix(suffix.size());
        }
        if (s == "dpo") m.kind = method::dpo;
        else if (s == "sams") m.kind = method::sams;
        else if (s == "uniform") m.kind = method::uniform;
        else if (s == "guided") m.kind = method::guided;
        else if (s == "matched") m.kind = method::matched;
        else return std::nullopt;
        return m;
    }
};

struct run_config {
    std::int64_t prompt_length = 6;
    std::size_t train_pairs = 2048;
    std::size_t test_pairs = 512;
    double eta = 0.2;  ///< fraction of training pairs with swapped labels

    model_config model{};
    std::size_t sft_steps = 300;
    std::size_t sft_batch = 64;
    double sft_lr = 3e-3;

    std::size_t dpo_steps = 150;
    std::size_t batch = 32;  ///< B, pairs per DPO step
    double dpo_lr = 1e-3;
    sams::loss_config loss{};  ///< sigmoid DPO, β = 0.1
    double ratio = 0.5;        ///< ρ: K = ρB for SamS and uniform

    sams::network_config scheduler_net{};
    std::size_t replay_batches = 8;
    /// The library's default (1e-4, the paper's) is meant for many thousands of updates; a
    /// run of a few hundred steps needs the nets to learn faster.
    double scheduler_lr = 1e-3;
    sams::mean_pool_options context{};

    // Guided selection: T clean trusted pairs of their own prompts, the LM head's gradient
    // CountSketched to k, the trusted direction refreshed every `refresh` steps.
    std::size_t trusted_pairs = 256;
    std::size_t sketch_width = 256;
    std::size_t refresh = 1;
    std::uint64_t sketch_seed = 0x5eed;

    [[nodiscard]] sams::guided_config guided() const {
        sams::guided_config c;
        c.loss = loss;
        c.sketch_dim = sketch_width;
        c.refresh_interval = refresh;
        return c;
    }

    torch::Device device = torch::kCPU;
    scheduler_backend_kind scheduler_backend = scheduler_backend_kind::automatic;

    /// scheduler_backend with `automatic` decided.
    [[nodiscard]] scheduler_backend_kind resolved_scheduler_backend() const {
        if (scheduler_backend != scheduler_backend_kind::automatic) return scheduler_backend;
        return has_thrust_session && device.is_cuda() && thrust_session_device_type() == c10::DeviceType::CUDA
                   ? scheduler_backend_kind::thrust
                   : scheduler_backend_kind::eigen;
    }

    run_config() {
        scheduler_net.hidden = 128;
        scheduler_net.depth = 3;
        scheduler_net.block_size = 16;
        scheduler_net.explore_depth = 3;
        // Concatenated, not averaged: the average of chosen and rejected is the same for a
        // pair and its flipped twin, so it could not tell a mislabelled pair apart.
        context.combine = sams::context_combine::concatenate;
        context.reduce = sams::layer_reduction::flatten_layers;
    }

    [[nodiscard]] sams::scheduler_config scheduler() const {
        sams::scheduler_config c;
        c.loss = loss;
        c.net = scheduler_net;
        c.pool.replay_batches = replay_batches;
        c.opt.learning_rate = scheduler_lr;
        c.select.ratio = ratio;
        return c;
    }
};

/// SFT on all four styles equally (so the reference has no preference between them):
/// teacher-forced next-token loss on the response tokens. Returns the last step's loss.
inline double train_sft(tiny_lm& model, const run_config& cfg, sams::rng& g) {
    model.train();
    torch::optim::Adam opt(model.parameters(), torch::optim::AdamOptions(cfg.sft_lr));
    double last = 0.0;
    for (std::size_t step = 0; step < cfg.sft_steps; ++step) {
        std::vector<tokens> prompts, responses;
        for (std::size_t i = 0; i < cfg.sft_batch; ++i) {
            prompts.push_back(random_prompt(cfg.prompt_length, g));
            responses.push_back(respond(prompts.back(), static_cast<style>(g.below(4))));
        }
        std::vector<const tokens*> pp, rr;
        for (std::size_t i = 0; i < prompts.size(); ++i) pp.push_back(&prompts[i]), rr.push_back(&responses[i]);
        const token_batch b = encode(pp, rr, cfg.device);
        const torch::Tensor logits = model.forward(b.inputs).logits;
        const torch::Tensor nll = -response_logps(logits, b).sum() / b.mask.sum();
        opt.zero_grad();
        nll.backward();
        opt.step();
        last = nll.item<double>();
    }
    return last;
}

/// Preference accuracy on clean held-out pairs.
struct evaluation {
    double reward_accuracy = 0.0;  ///< fraction with implicit reward margin (a_w − r_w) − (a_l − r_l) > 0
    double logp_accuracy = 0.0;    ///< fraction with a_w > a_l (the policy alone ranks them right)
};

/// What one DPO step did; the test checks the plumbing with it.
struct step_report {
    sams::decision<float> decision;
    std::vector<std::uint8_t> flipped;  ///< per pair of the batch
    double loss = 0.0;                  ///< Σ w ℓ as torch computed it (the loss trained on)
    torch::Tensor sequence_grad;        ///< [2B] ‖∂loss/∂embedding‖ per sequence (with trace_gradients)
    double step_ms = 0.0;               ///< forwards, scheduler, backward and optimiser step
    double scheduler_ms = 0.0;          ///< context extraction (or, guided: sketches and the trusted refresh) and step()
    std::size_t peak_bytes = 0;         ///< peak live CPU tensor bytes during the step (0 without a meter)
    std::size_t start_bytes = 0;        ///< live CPU tensor bytes when the step began
};

/// DPO from an SFT model with one of the methods. The policy starts as a copy of the SFT
/// model and the reference is another, frozen copy.
class dpo_trainer {
public:
    /// `matched_counts`: for method::matched, the number of pairs guided selection trained on
    /// at each step of the same seed (one entry per step).
    dpo_trainer(const run_config& cfg, method_spec m, tiny_lm& sft, std::uint64_t seed,
                std::vector<std::size_t> matched_counts = {})
        : cfg_(cfg),
          method_(m),
          policy_(clone_model(sft, cfg.device)),
          reference_(clone_model(sft, cfg.device)),
          optimizer_(policy_->parameters(), torch::optim::AdamOptions(cfg.dpo_lr)),
          extractor_(cfg.context),
          device_pool_(cfg.context),
          batch_rng_(seed, /*stream=*/7) {
        reference_->eval();
        for (auto& p : reference_->parameters()) p.set_requires_grad(false);
        const sams::scheduler_config sc = cfg.scheduler();
        sams::selection_config select = sc.select;
        switch (m.kind) {
            case method::dpo: {
                auto s = std::make_shared<sams::full_batch<float>>(sc.loss, select);
                step_ = [s](const sams::pair_batch<float>& b, sams::decision<float>& d) { s->step(b, d); };
                break;
            }
            case method::uniform: {
                auto s = std::make_shared<sams::uniform_selector<float>>(sc.loss, select, seed);
                step_ = [s](const sams::pair_batch<float>& b, sams::decision<float>& d) { s->step(b, d); };
                break;
            }
            case method::sams: {
                const auto dim = extractor_.output_dim(static_cast<std::size_t>(cfg.model.layers),
                                                       static_cast<std::size_t>(cfg.model.d_model));
                if (cfg.resolved_scheduler_backend() == scheduler_backend_kind::thrust) {
#if SAMS_DPO_THRUST
                    session_ = std::make_shared<sams::libtorch::thrust_session>(
                        sams::libtorch::make_thrust_session(sc, dim, seed, cfg.device));
                    break;
#else
                    throw sams::invalid_argument(
                        "dpo_demo::dpo_trainer: scheduler_backend is thrust, but this build has no thrust session");
#endif
                }
                auto s = std::make_shared<sams::sams_scheduler<sams::eigen_backend<float>>>(sc, dim, seed);
                step_ = [s](const sams::pair_batch<float>& b, sams::decision<float>& d) { s->step(b, d); };
                break;
            }
            case method::guided: {
                guided_ = std::make_shared<sams::guided_scheduler<float>>(cfg.guided());
                step_ = [s = guided_](const sams::pair_batch<float>& b, sams::decision<float>& d) { s->step(b, d); };
                const std::int64_t v = cfg.model.vocab, dm = cfg.model.d_model;
                head_sketch_.emplace(cfg.sketch_width, cfg.sketch_seed, v * dm + v, cfg.device);
                // The trusted set: clean pairs of their own prompts (stream 11, apart from the
                // training and test data), labelled like clean training pairs.
                sams::rng trusted_rng(seed, /*stream=*/11);
                trusted_ = make_pairs(cfg.trusted_pairs, cfg.prompt_length, 0.0, trusted_rng);
                std::vector<const preference_pair*> tp;
                for (const auto& p : trusted_) tp.push_back(&p);
                trusted_tokens_ = encode_pairs(tp, cfg.device);
                torch::NoGradGuard no_grad;
                trusted_reference_ = response_logps(reference_->forward(trusted_tokens_.inputs).logits, trusted_tokens_);
                break;
            }
            case method::matched: {
                sams::detail::require(matched_counts.size() >= cfg.dpo_steps, "dpo_demo::dpo_trainer: matched_counts",
                                      "method matched needs one count per step (from a guided run of the same seed)");
                auto s = std::make_shared<count_matched_selector>(sc.loss, std::move(matched_counts), seed);
                step_ = [s](const sams::pair_batch<float>& b, sams::decision<float>& d) { s->step(b, d); };
                break;
            }
        }
    }

    /// The guided scheduler (method::guided only, else nullptr).
    [[nodiscard]] const sams::guided_scheduler<float>* guided() const noexcept { return guided_.get(); }

    [[nodiscard]] const method_spec& spec() const noexcept { return method_; }
    /// True when SamS runs in the thrust session (on the tensors' device).
    [[nodiscard]] bool uses_thrust_session() const noexcept {
#if SAMS_DPO_THRUST
        return session_ != nullptr;
#else
        return false;
#endif
    }
#if SAMS_DPO_THRUST
    /// The thrust session (method sams with scheduler_backend thrust, else nullptr).
    [[nodiscard]] const sams::libtorch::thrust_session* session() const noexcept { return session_.get(); }
#endif
    [[nodiscard]] tiny_lm& policy() noexcept { return *policy_; }

    /// Record per-sequence gradient norms in step_report::sequence_grad (costs a little).
    bool trace_gradients = false;

    /// One DPO step on the next B pairs of `data` (reshuffled every epoch).
    step_report step(const std::vector<preference_pair>& data) {
        using clock = std::chrono::steady_clock;
        step_report rep;
        memory_meter* meter = memory_meter::installed();
        if (meter != nullptr) {
            meter->reset_peak();
            rep.start_bytes = meter->current();
        }
        const auto t0 = clock::now();

        const std::vector<const preference_pair*> pairs = next_batch(data);
        const auto b = static_cast<std::int64_t>(pairs.size());
        for (const auto* p : pairs) rep.flipped.push_back(p->flipped ? 1 : 0);
        ids_ = torch::empty({b}, torch::kLong);
        for (std::int64_t i = 0; i < b; ++i)
            ids_.data_ptr<std::int64_t>()[i] = static_cast<std::int64_t>(pairs[static_cast<std::size_t>(i)] - data.data());
        const token_batch tb = encode_pairs(pairs, cfg_.device);

        torch::Tensor ref;
        {
            torch::NoGradGuard no_grad;
            ref = response_logps(reference_->forward(tb.inputs).logits, tb);
        }
        sams::libtorch::batch_tensors t;
        t.reference_chosen = ref.narrow(0, 0, b);
        t.reference_rejected = ref.narrow(0, b, b);

        // The scoring forward: with grad (standard) or without (memory-saving mode).
        policy_->train();
        std::optional<torch::NoGradGuard> scoring_no_grad;
        if (method_.low_memory) scoring_no_grad.emplace();
        tiny_lm::output out = policy_->forward(tb.inputs, trace_gradients && !method_.low_memory);
        const torch::Tensor logps = response_logps(out.logits, tb);
        t.policy_chosen = logps.narrow(0, 0, b);
        t.policy_rejected = logps.narrow(0, b, b);
        scoring_no_grad.reset();

        const auto s0 = clock::now();
        decide(out, tb, t, rep.decision);
        const auto s1 = clock::now();

        torch::Tensor loss;
        if (!method_.low_memory) {
            loss = sams::libtorch::weighted_loss(cfg_.loss, rep.decision, t);
            optimizer_.zero_grad();
            loss.backward();
            if (trace_gradients) rep.sequence_grad = sequence_norms(out.embedded.grad());
        } else {
            out = {};  // the scoring pass's activations are no longer needed
            // The grad pass on the 2K sequences of the selected pairs only.
            // [sams-lowmem-begin]
            const torch::Tensor sel = sams::libtorch::selected_indices(rep.decision, cfg_.device);
            const torch::Tensor rows = torch::cat({sel, sel + b});
            const token_batch sub{tb.inputs.index_select(0, rows), tb.targets.index_select(0, rows),
                                  tb.mask.index_select(0, rows)};
            tiny_lm::output sub_out = policy_->forward(sub.inputs, trace_gradients);
            const torch::Tensor sub_logps = response_logps(sub_out.logits, sub);
            const std::int64_t k = sel.size(0);
            sams::libtorch::batch_tensors st;
            st.policy_chosen = sub_logps.narrow(0, 0, k);
            st.policy_rejected = sub_logps.narrow(0, k, k);
            st.reference_chosen = t.reference_chosen.index_select(0, sel);
            st.reference_rejected = t.reference_rejected.index_select(0, sel);
            loss = sams::libtorch::weighted_loss(cfg_.loss, rep.decision, st);  // weights of the K pairs
            optimizer_.zero_grad();
            loss.backward();
            // [sams-lowmem-end]
            if (trace_gradients) {
                rep.sequence_grad = torch::zeros({2 * b}, torch::kFloat);
                rep.sequence_grad.index_copy_(0, rows.cpu(), sequence_norms(sub_out.embedded.grad()));
            }
        }
        optimizer_.step();
        rep.loss = loss.item<double>();

        const auto t1 = clock::now();
        rep.step_ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
        rep.scheduler_ms = std::chrono::duration<double, std::milli>(s1 - s0).count();
        if (meter != nullptr) rep.peak_bytes = meter->peak();
        return rep;
    }

    /// Accuracy on clean held-out pairs (no grad, in chunks).
    evaluation evaluate(const std::vector<preference_pair>& test) {
        torch::NoGradGuard no_grad;
        policy_->eval();
        std::size_t reward_hits = 0, logp_hits = 0;
        constexpr std::size_t chunk = 256;
        for (std::size_t first = 0; first < test.size(); first += chunk) {
            std::vector<const preference_pair*> pairs;
            for (std::size_t i = first; i < std::min(test.size(), first + chunk); ++i) pairs.push_back(&test[i]);
            const auto b = static_cast<std::int64_t>(pairs.size());
            const token_batch tb = encode_pairs(pairs, cfg_.device);
            const torch::Tensor a = response_logps(policy_->forward(tb.inputs).logits, tb).cpu();
            const torch::Tensor r = response_logps(reference_->forward(tb.inputs).logits, tb).cpu();
            const torch::Tensor margin = (a.narrow(0, 0, b) - r.narrow(0, 0, b)) - (a.narrow(0, b, b) - r.narrow(0, b, b));
            reward_hits += static_cast<std::size_t>(margin.gt(0).sum().item<std::int64_t>());
            logp_hits += static_cast<std::size_t>(a.narrow(0, 0, b).gt(a.narrow(0, b, b)).sum().item<std::int64_t>());
        }
        policy_->train();
        const auto n = static_cast<double>(test.size());
        return {static_cast<double>(reward_hits) / n, static_cast<double>(logp_hits) / n};
    }

private:
    std::vector<const preference_pair*> next_batch(const std::vector<preference_pair>& data) {
        if (order_.size() != data.size() || cursor_ + cfg_.batch > order_.size()) {
            order_.resize(data.size());
            std::iota(order_.begin(), order_.end(), std::size_t{0});
            for (std::size_t i = order_.size(); i > 1; --i) std::swap(order_[i - 1], order_[batch_rng_.below(i)]);
            cursor_ = 0;
        }
        std::vector<const preference_pair*> out;
        for (std::size_t i = 0; i < cfg_.batch; ++i) out.push_back(&data[order_[cursor_ + i]]);
        cursor_ += cfg_.batch;
        return out;
    }

    // [2B] norms of the per-sequence embedding gradients.
    static torch::Tensor sequence_norms(const torch::Tensor& grad) {
        return grad.defined() ? grad.detach().pow(2).sum({1, 2}).sqrt().to(torch::kCPU, torch::kFloat) : torch::Tensor();
    }

    // Contexts (SamS only; the baselines do not read them) and the scheduler's decision.
    void decide(const tiny_lm::output& out, const token_batch& tb, const sams::libtorch::batch_tensors& t,
                sams::decision<float>& d) {
        if (method_.kind == method::guided) {
            guided_step(out, tb, t, d);
            return;
        }
        if (method_.kind != method::sams) {
            const sams::libtorch::host_batch hb(t);
            step_(hb.view(), d);
            return;
        }
#if SAMS_DPO_THRUST
        if (session_) {
            // [sams-thrust-begin]
            // Pooled where the hidden states are and read there by the scheduler: the contexts
            // never leave the device; only the 4B log-prob scalars are staged to the host.
            sams::libtorch::batch_tensors with_contexts = t;
            with_contexts.contexts = device_pool_(out.hidden, tb.mask);  // [B, D] on cfg_.device
            sams::libtorch::thrust_step(*session_, with_contexts, d);
            // [sams-thrust-end]
            return;
        }
#endif
        if (cfg_.device.is_cpu()) {
            // Zero copy: the extractor reads the per-layer hidden states and the mask in place.
            const sams::libtorch::hidden_states hs(out.hidden);
            const sams::libtorch::token_mask mask(tb.mask);
            const auto h = hs.split();
            const auto m = mask.split();
            contexts_.rows = h.chosen.pairs;
            contexts_.cols = extractor_.output_dim(h.chosen.layers, h.chosen.dim);
            contexts_.values.resize(contexts_.rows * contexts_.cols);
            extractor_.extract(h.chosen, h.rejected, m.chosen, m.rejected, contexts_.view());
            const sams::libtorch::host_batch hb(t, contexts_.view());
            step_(hb.view(), d);
        } else {
            // On a GPU the pooling runs there; only the [B, D] contexts and 4B scalars move.
            sams::libtorch::batch_tensors with_contexts = t;
            with_contexts.contexts = device_pool_(out.hidden, tb.mask);
            const sams::libtorch::host_batch hb(with_contexts);
            step_(hb.view(), d);
        }
    }

    // [sams-guided-begin]
    // Guided selection's host loop: refresh the trusted direction when the scheduler asks
    // (a no-grad forward over the T trusted pairs and their head-gradient sketches), sketch
    // this batch's pairs from the forward pass already done, and let the scheduler choose.
    void guided_step(const tiny_lm::output& out, const token_batch& tb, const sams::libtorch::batch_tensors& t,
                     sams::decision<float>& d) {
        if (guided_->needs_trusted_refresh()) {
            torch::NoGradGuard no_grad;
            const tiny_lm::output tr = policy_->forward(trusted_tokens_.inputs);
            const torch::Tensor a = response_logps(tr.logits, trusted_tokens_);
            const auto n = static_cast<std::int64_t>(trusted_.size());
            const torch::Tensor s = (*head_sketch_)(head_pair_gradients(tr.logits, tr.pre_head, trusted_tokens_))
                                        .to(torch::kCPU).contiguous();
            const sams::libtorch::host_batch trusted(sams::libtorch::split_log_probs(a, trusted_reference_));
            sams::pair_batch<float> tb_view = trusted.view();
            tb_view.sketches = {s.data_ptr<float>(), static_cast<std::size_t>(n), head_sketch_->width(), 0};
            guided_->set_trusted(tb_view);  // g = Σ_j βσ(−m_j) s_j / T, and the clean agreement
        }
        const torch::Tensor s =
            (*head_sketch_)(head_pair_gradients(out.logits, out.pre_head, tb)).to(torch::kCPU).contiguous();
        sams::libtorch::batch_tensors with_ids = t;
        with_ids.ids = ids_;  // stable dataset indices: agreement is remembered per example
        const sams::libtorch::host_batch hb(with_ids);
        sams::pair_batch<float> batch = hb.view();
        batch.sketches = {s.data_ptr<float>(), static_cast<std::size_t>(s.size(0)), head_sketch_->width(), 0};
        guided_->step(batch, d);
    }
    // [sams-guided-end]

    run_config cfg_;
    method_spec method_;
    std::shared_ptr<tiny_lm> policy_;
    std::shared_ptr<tiny_lm> reference_;
    torch::optim::Adam optimizer_;
    sams::mean_pool_extractor<float> extractor_;
    sams::libtorch::device_mean_pool device_pool_;
    sams::context_matrix<float> contexts_{};
    std::function<void(const sams::pair_batch<float>&, sams::decision<float>&)> step_;
#if SAMS_DPO_THRUST
    std::shared_ptr<sams::libtorch::thrust_session> session_;
#endif
    sams::rng batch_rng_;
    std::vector<std::size_t> order_{};
    std::size_t cursor_ = 0;
    torch::Tensor ids_;
    // Guided selection only.
    std::shared_ptr<sams::guided_scheduler<float>> guided_;
    std::optional<torch_count_sketch> head_sketch_;
    std::vector<preference_pair> trusted_;
    token_batch trusted_tokens_;
    torch::Tensor trusted_reference_;
};

/// The integration in its shortest form, as docs/integration.md quotes it: one DPO step of a
/// LibTorch trainer with SamS on the CPU. `tb` holds B pairs (chosen rows first). Returns the
/// decision; the optimiser step is left to the caller.
inline sams::decision<float> sams_dpo_step(tiny_lm& policy, tiny_lm& reference, const token_batch& tb,
                                           sams::sams_scheduler<sams::eigen_backend<float>>& scheduler,
                                           sams::mean_pool_extractor<float>& extractor,
                                           sams::context_matrix<float>& contexts) {
    torch::Tensor r;
    {
        torch::NoGradGuard no_grad;
        r = response_logps(reference.forward(tb.inputs).logits, tb);
    }
    tiny_lm::output out = policy.forward(tb.inputs);
    const torch::Tensor a = response_logps(out.logits, tb);
    // [sams-integration-begin]
    sams::libtorch::hidden_states hidden(out.hidden);  // per-layer [2B, T, d] tensors, read in place
    sams::libtorch::token_mask mask(tb.mask);          // [2B, T], 1 at response tokens
    auto [h_w, h_l] = hidden.split();                  // chosen rows first, then rejected
    auto [m_w, m_l] = mask.split();
    extractor.extract(h_w, h_l, m_w, m_l, contexts.view());  // B×D contexts from the policy's own states
    sams::libtorch::batch_tensors t = sams::libtorch::split_log_probs(a, r);  // [2B] -> a_w, a_l, r_w, r_l
    sams::libtorch::host_batch batch(t, contexts.view());    // spans over the tensors, no copies
    sams::decision<float> d = scheduler.step(batch.view());  // which K pairs, with weights
    torch::Tensor loss = sams::libtorch::weighted_loss(scheduler.config().loss, d, t);  // Σ w_i ℓ_i, in the graph
    loss.backward();  // or: sams::libtorch::backward(d, t.policy_chosen, t.policy_rejected);
    // [sams-integration-end]
    return d;
}

}  // namespace dpo_demo
