// The host side of guided selection on the benchmark: a trusted set of clean pairs, the
// trusted descent direction refreshed from one forward and backward pass over it, and one
// gradient sketch per training pair — what a trainer computes for sams::guided_scheduler.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <sams/core/error.hpp>
#include <sams/core/views.hpp>
#include <sams/guided/sketch.hpp>

#include "experiment.hpp"
#include "policy.hpp"
#include "world.hpp"

namespace sams::bench {

/// Which linear sketch of ∇θ h a host hands over.
enum class sketch_kind {
    full,        ///< every parameter, no projection (k = P)
    count,       ///< CountSketch of every parameter to k
    last_layer,  ///< the output layer's gradient, exactly (k = C·H + C)
    last_count,  ///< CountSketch of the output layer's gradient to k
};

struct guidance_options {
    std::size_t trusted_pairs = 256;  ///< T
    sketch_kind sketch = sketch_kind::full;
    std::size_t width = 256;          ///< k of the CountSketch kinds
    std::uint64_t sketch_seed = 0x5eed;
};

class trusted_guidance {
public:
    using policy_type = experiment::policy_type;

    trusted_guidance(const experiment& e, const guidance_options& o)
        : options_(o), beta_(e.training().beta), trusted_(e.get_world().make_trusted(o.trusted_pairs)),
          sketch_(o.width == 0 ? 1 : o.width, o.sketch_seed) {
        sams::detail::require(o.trusted_pairs > 0, "sams::bench::trusted_guidance", "trusted_pairs must be > 0");
        const auto& w = e.get_world();
        tokens_.clear(w.config().feature_dim());
        for (const auto& p : trusted_.pairs) tokens_.add(w, trusted_.prompt(p.prompt), p.chosen);
        for (const auto& p : trusted_.pairs) tokens_.add(w, trusted_.prompt(p.prompt), p.rejected);
        ref_.resize(2 * trusted_.pairs.size());
        e.reference().forward(tokens_, cache_, ref_);
        const auto& ref = e.reference();
        full_size_ = ref.size();
        last_offset_ = ref.output_layer_offset();
        last_size_ = ref.output_layer_size();
    }

    /// k of the sketches this host produces.
    [[nodiscard]] std::size_t sketch_dim() const noexcept {
        switch (options_.sketch) {
            case sketch_kind::full: return full_size_;
            case sketch_kind::last_layer: return last_size_;
            default: return options_.width;
        }
    }

    /// g = sketch of −∇θ L_trusted for the current policy: one forward and one backward pass
    /// over the T trusted pairs (the DPO loss, its per-pair weights βσ(−m_j)/T).
    void trusted_direction(const policy_type& pi, std::vector<float>& out) {
        const std::size_t t = trusted_.pairs.size();
        lp_.resize(2 * t);
        pi.forward(tokens_, cache_, lp_);
        g_.resize(2 * t);
        for (std::size_t j = 0; j < t; ++j) {
            const double m = beta_ * ((lp_[j] - ref_[j]) - (lp_[t + j] - ref_[t + j]));
            const double w = beta_ / (1.0 + std::exp(m)) / static_cast<double>(t);  // βσ(−m)/T
            g_[j] = static_cast<float>(w);
            g_[t + j] = static_cast<float>(-w);
        }
        pi.backward(tokens_, cache_, g_, grad_);
        out.resize(sketch_dim());
        sketch(grad_, out.data());
    }

    /// One sketch of ∇θ h_i per pair of a batch whose tokens hold b chosen then b rejected
    /// responses, into `rows` (b × sketch_dim, row-major).
    void pair_sketches(const policy_type& pi, const token_batch<float>& tokens, const policy_cache<float>& cache,
                       std::size_t b, std::vector<float>& rows) {
        const std::size_t k = sketch_dim();
        rows.resize(b * k);
        const bool last = options_.sketch == sketch_kind::last_layer || options_.sketch == sketch_kind::last_count;
        for (std::size_t i = 0; i < b; ++i) {
            pi.pair_gradient(tokens, cache, i, b + i, pair_grad_, last);
            sketch(pair_grad_, rows.data() + i * k);
        }
    }

    /// The trusted set as the scheduler's set_trusted() takes it: the current policy's
    /// log-probs, the reference's, and one sketch per trusted pair.
    pair_batch<float> trusted_batch(const policy_type& pi) {
        const std::size_t t = trusted_.pairs.size();
        lp_.resize(2 * t);
        pi.forward(tokens_, cache_, lp_);
        pair_sketches(pi, tokens_, cache_, t, trusted_sketches_);
        const std::span<const float> lp(lp_), ref(ref_);
        return {.policy_chosen = lp.first(t),
                .policy_rejected = lp.subspan(t, t),
                .reference_chosen = ref.first(t),
                .reference_rejected = ref.subspan(t, t),
                .sketches = {trusted_sketches_.data(), t, sketch_dim(), 0}};
    }

    /// The step hook for experiment::run(): refreshes the scheduler's trusted direction when
    /// it asks for one and attaches the batch's sketches.
    template <class Scheduler>
    experiment::step_hook hook(Scheduler& s) {
        return [this, &s](const policy_type& pi, const token_batch<float>& tokens, const policy_cache<float>& cache,
                          pair_batch<float>& batch) {
            if (s.needs_trusted_refresh()) s.set_trusted(trusted_batch(pi));
            const std::size_t b = batch.size();
            pair_sketches(pi, tokens, cache, b, sketches_);
            batch.sketches = {sketches_.data(), b, sketch_dim(), 0};
        };
    }

private:
    void sketch(const policy_type::vector& grad, float* out) const {
        const std::size_t k = sketch_dim();
        const std::span<const float> all(grad.data(), static_cast<std::size_t>(grad.size()));
        const std::span<const float> last = all.subspan(last_offset_, last_size_);
        switch (options_.sketch) {
            case sketch_kind::full: std::copy(all.begin(), all.end(), out); break;
            case sketch_kind::last_layer: std::copy(last.begin(), last.end(), out); break;
            case sketch_kind::count: sketch_.apply(all, std::span<float>(out, k)); break;
            case sketch_kind::last_count: sketch_.apply(last, std::span<float>(out, k)); break;
        }
    }

    guidance_options options_;
    double beta_;
    split trusted_;
    count_sketch sketch_;
    token_batch<float> tokens_;
    policy_cache<float> cache_;
    std::vector<float> ref_, lp_, g_, direction_, sketches_, trusted_sketches_;
    policy_type::vector grad_, pair_grad_;
    std::size_t full_size_ = 0, last_offset_ = 0, last_size_ = 0;
};

}  // namespace sams::bench
