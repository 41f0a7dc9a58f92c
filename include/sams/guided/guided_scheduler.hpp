// guided_scheduler: selection guided by a small trusted set of clean pairs (docs/guided.md).
// Each step the host hands the batch with one gradient sketch per pair, s_i = S·∇θ h_i with
// h_i = log π(y_w,i) − log π(y_l,i); the scheduler measures each pair's agreement with the
// trusted descent direction g (cosine of s_i and g), remembers its running mean per example
// id across visits, and drops the pairs that look flipped: a fixed share, or those whose
// posterior flip probability under a fitted noise model is high — none while nothing looks
// wrong. The rest are trained with weights 1/K (or 1/B).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <numeric>
#include <span>
#include <string>
#include <vector>

#include <sams/core/decision.hpp>
#include <sams/core/error.hpp>
#include <sams/core/views.hpp>
#include <sams/guided/agreement_memory.hpp>
#include <sams/guided/guided_config.hpp>
#include <sams/guided/noise_model.hpp>
#include <sams/loss/evaluate.hpp>
#include <sams/loss/pair_stats.hpp>
#include <sams/scheduler/checkpoint.hpp>
#include <sams/scheduler/decision_fill.hpp>

namespace sams {

template <class T>
class guided_scheduler {
    static_assert(std::is_floating_point_v<T>, "sams::guided_scheduler<T>: T must be float or double");

public:
    using value_type = T;

    explicit guided_scheduler(const guided_config& config) : config_(checked(config)), memory_(config_.memory_capacity) {}

    /// Sets the trusted descent direction from its sketch, g = S·(−∇θ L_trusted): the host runs
    /// one forward and backward pass of its loss over the trusted pairs and sketches the
    /// negated gradient with the same S as the per-pair sketches (S is linear). Throws
    /// sams::invalid_argument (nothing changed) unless g has sketch_dim finite entries, not all 0.
    void set_trusted_direction(std::span<const T> g) {
        constexpr const char* where = "guided_scheduler::set_trusted_direction";
        detail::require(g.size() == config_.sketch_dim, where, [&] {
            return "direction has " + std::to_string(g.size()) + " entries, expected sketch_dim " +
                   std::to_string(config_.sketch_dim);
        });
        detail::require(detail::all_finite(g), where, "direction contains NaN or Inf");
        double norm = 0.0;
        for (const T v : g) norm += static_cast<double>(v) * static_cast<double>(v);
        detail::require(norm > 0.0 && std::isfinite(norm), where, "direction must have a finite, non-zero norm");
        direction_.assign(g.begin(), g.end());
        direction_norm_ = std::sqrt(norm);
        direction_age_ = 0;
        ++refreshes_;
    }

    /// Sets the trusted direction from per-pair sketches of the trusted set: `trusted` carries
    /// the trusted pairs' log-probs (as a training batch) and `trusted.sketches` (T × k, one
    /// sketch of ∇θ h_j per pair); g = (1/T) Σ_j ω_j s_j with ω_j = ½(∂ℓ_j/∂a_l − ∂ℓ_j/∂a_w)
    /// (= βσ(−m_j) for the sigmoid loss; exact for every loss of the margin alone).
    void set_trusted(const pair_batch<T>& trusted) {
        constexpr const char* where = "guided_scheduler::set_trusted";
        const std::size_t n = trusted.size();
        detail::require(n > 0, where, "trusted set is empty (policy_chosen has no entries)");
        check_sketches(trusted.sketches, n, where, "trusted.sketches");
        evaluate_loss(config_.loss, trusted, trusted_stats_);
        scratch_direction_.assign(config_.sketch_dim, 0.0);
        for (std::size_t j = 0; j < n; ++j) {
            const double w = 0.5 * (static_cast<double>(trusted_stats_.d_policy_rejected[j]) -
                                    static_cast<double>(trusted_stats_.d_policy_chosen[j]));
            const T* s = trusted.sketches.row(j);
            for (std::size_t c = 0; c < config_.sketch_dim; ++c) scratch_direction_[c] += w * static_cast<double>(s[c]);
        }
        direction_buffer_.resize(config_.sketch_dim);
        for (std::size_t c = 0; c < config_.sketch_dim; ++c)
            direction_buffer_[c] = static_cast<T>(scratch_direction_[c] / static_cast<double>(n));
        set_trusted_direction(std::span<const T>(direction_buffer_));
    }

    /// True before the first direction and once the current one has served refresh_interval steps.
    [[nodiscard]] bool needs_trusted_refresh() const noexcept {
        return direction_.empty() || direction_age_ >= config_.refresh_interval;
    }

    [[nodiscard]] decision<T> step(const pair_batch<T>& batch) {
        decision<T> d;
        step(batch, d);
        return d;
    }

    /// Scores `batch` (ids and sketches required) and returns the pairs to train on. Throws
    /// sams::invalid_argument and changes nothing if the batch is malformed or no trusted
    /// direction was set.
    void step(const pair_batch<T>& batch, decision<T>& out) {
        validate(batch);  // nothing below throws sams::error
        const std::size_t b = batch.size();
        agreement_.resize(b);
        remembered_.resize(b);
        double sum_agreement = 0.0;
        for (std::size_t i = 0; i < b; ++i) {
            agreement_[i] = cosine(batch.sketches.row(i));
            sum_agreement += agreement_[i];
            remembered_[i] = memory_.record(batch.ids[i], agreement_[i], step_count_);
        }
        const bool fitted = config_.drop == guided_drop::estimated && memory_.size() >= config_.min_memory;
        if (fitted)
            estimate_ = fit_symmetric_mixture(memory_.histogram(), &agreement_memory::bin_center, estimate_);
        choose(b, fitted);
        detail::fill_decision(stats_, std::span<const std::size_t>(selected_), config_.weights, out);
        out.score.resize(b);
        for (std::size_t i = 0; i < b; ++i) out.score[i] = static_cast<T>(remembered_[i]);
        out.metrics.step = static_cast<std::size_t>(step_count_);
        out.metrics.estimated_noise = fitted ? estimate_.rate : 0.0;
        out.metrics.mean_agreement = sum_agreement / static_cast<double>(b);
        out.metrics.dropped = b - selected_.size();
        ++step_count_;
        ++direction_age_;
    }

    [[nodiscard]] const guided_config& config() const noexcept { return config_; }
    [[nodiscard]] std::uint64_t steps() const noexcept { return step_count_; }
    [[nodiscard]] std::size_t sketch_dim() const noexcept { return config_.sketch_dim; }
    [[nodiscard]] const agreement_memory& memory() const noexcept { return memory_; }
    /// The latest fit of the noise model (rate 0 until min_memory ids are remembered).
    [[nodiscard]] const noise_estimate& noise() const noexcept { return estimate_; }
    /// The trusted direction in use (empty before the first).
    [[nodiscard]] std::span<const T> trusted_direction() const noexcept { return direction_; }
    /// Steps taken with the current direction.
    [[nodiscard]] std::uint64_t trusted_age() const noexcept { return direction_age_; }
    /// This step's cosines and remembered means, per pair of the last batch.
    [[nodiscard]] std::span<const double> last_agreement() const noexcept { return agreement_; }
    [[nodiscard]] std::span<const double> last_remembered() const noexcept { return remembered_; }

    /// The complete state as checkpoint bytes: resuming reproduces an uninterrupted run.
    [[nodiscard]] std::vector<std::uint8_t> serialize() const {
        detail::byte_writer w;
        w.put_tag("guided");
        w.put<std::uint32_t>(static_cast<std::uint32_t>(sizeof(T)));
        write_config(w, config_);
        w.put<std::uint64_t>(step_count_);
        w.put<std::uint64_t>(refreshes_);
        w.put<std::uint64_t>(direction_age_);
        w.put_array(std::span<const T>(direction_));
        w.put(estimate_.rate);
        w.put(estimate_.mean);
        w.put(estimate_.stddev);
        w.put(estimate_.samples);
        w.put<std::uint64_t>(memory_.evictions());
        const auto entries = memory_.entries();
        w.put_array(std::span<const agreement_entry>(entries));
        return detail::frame_checkpoint(w.bytes());
    }

    /// Rebuilds a scheduler from serialize()'s bytes; throws sams::checkpoint_error on anything
    /// inconsistent, with every size bounded by the bytes present and the configured caps.
    [[nodiscard]] static guided_scheduler deserialize(std::span<const std::uint8_t> bytes) {
        detail::byte_reader r(detail::unframe_checkpoint(bytes));
        r.expect_tag("guided");
        const auto scalar = r.get<std::uint32_t>("value size");
        if (scalar != sizeof(T))
            throw checkpoint_error("checkpoint: written with " + std::to_string(scalar) + "-byte scalars, this scheduler uses " +
                                   std::to_string(sizeof(T)));
        const guided_config cfg = read_config(r);
        guided_scheduler s(cfg);
        s.step_count_ = r.get<std::uint64_t>("step count");
        s.refreshes_ = r.get<std::uint64_t>("refresh count");
        s.direction_age_ = r.get<std::uint64_t>("direction age");
        r.get_array(s.direction_, "trusted direction");
        if (!s.direction_.empty()) {
            if (s.direction_.size() != cfg.sketch_dim)
                throw checkpoint_error("checkpoint: trusted direction has " + std::to_string(s.direction_.size()) +
                                       " entries, expected sketch_dim " + std::to_string(cfg.sketch_dim));
            double norm = 0.0;
            for (const T v : s.direction_) norm += static_cast<double>(v) * static_cast<double>(v);
            if (!std::isfinite(norm) || norm <= 0.0)
                throw checkpoint_error("checkpoint: trusted direction is not finite and non-zero");
            s.direction_norm_ = std::sqrt(norm);
        }
        s.estimate_.rate = r.get<double>("noise rate");
        s.estimate_.mean = r.get<double>("noise mean");
        s.estimate_.stddev = r.get<double>("noise stddev");
        s.estimate_.samples = r.get<std::uint64_t>("noise samples");
        if (!(s.estimate_.rate >= 0.0 && s.estimate_.rate <= 0.5) || !std::isfinite(s.estimate_.mean) ||
            !(s.estimate_.stddev > 0.0) || !std::isfinite(s.estimate_.stddev))
            throw checkpoint_error("checkpoint: noise estimate out of range");
        const auto evictions = r.get<std::uint64_t>("evictions");
        std::vector<agreement_entry> entries;
        r.get_array(entries, "agreement memory");
        try {
            s.memory_.assign(entries);
        } catch (const invalid_argument& e) {
            throw checkpoint_error(std::string("checkpoint: agreement memory is invalid (") + e.what() + ")");
        }
        s.memory_.set_evictions(evictions);
        if (!r.at_end()) throw checkpoint_error("checkpoint: trailing bytes after the last section");
        return s;
    }

    /// Writes serialize() to `path` atomically.
    void save(const std::filesystem::path& path) const { detail::write_file_atomically(path, serialize()); }
    [[nodiscard]] static guided_scheduler load(const std::filesystem::path& path) {
        return deserialize(detail::read_file(path));
    }

private:
    static const guided_config& checked(const guided_config& c) {
        c.validate();
        return c;
    }

    void check_sketches(const matrix_view<const T>& s, std::size_t rows, const char* where, const char* name) const {
        detail::require(s.data != nullptr && s.rows == rows && s.cols == config_.sketch_dim, where, [&] {
            return std::string(name) + " must be " + std::to_string(rows) + " x " + std::to_string(config_.sketch_dim) +
                   " (one sketch of width sketch_dim per pair), got " + std::to_string(s.rows) + " x " +
                   std::to_string(s.cols) + (s.data == nullptr ? " with a null data pointer" : "");
        });
        detail::require(s.stride() >= s.cols, where, [&] { return std::string(name) + ".row_stride must be >= cols"; });
        detail::require(detail::all_finite(s), where, [&] { return std::string(name) + " contains NaN or Inf"; });
    }

    /// Everything a batch must satisfy, checked before any state changes.
    void validate(const pair_batch<T>& batch) {
        constexpr const char* where = "guided_scheduler::step";
        const std::size_t b = batch.size();
        detail::require(b > 0, where, "batch is empty (policy_chosen has no entries)");
        detail::require(!direction_.empty(), where,
                        "no trusted direction: call set_trusted_direction() or set_trusted() first");
        detail::require(batch.ids.size() == b, where, [&] {
            return "batch.ids is required (one example id per pair, " + std::to_string(b) + "), got " +
                   std::to_string(batch.ids.size());
        });
        id_scratch_.assign(batch.ids.begin(), batch.ids.end());
        std::sort(id_scratch_.begin(), id_scratch_.end());
        const auto dup = std::adjacent_find(id_scratch_.begin(), id_scratch_.end());
        detail::require(dup == id_scratch_.end(), where,
                        [&] { return "batch.ids holds id " + std::to_string(*dup) + " twice"; });
        check_sketches(batch.sketches, b, where, "batch.sketches");
        evaluate_loss(config_.loss, batch, stats_);
    }

    [[nodiscard]] double cosine(const T* s) const noexcept {
        double dot = 0.0, norm = 0.0;
        for (std::size_t c = 0; c < config_.sketch_dim; ++c) {
            const auto v = static_cast<double>(s[c]);
            dot += v * static_cast<double>(direction_[c]);
            norm += v * v;
        }
        if (!(norm > 0.0) || !std::isfinite(norm)) return 0.0;
        return std::clamp(dot / (std::sqrt(norm) * direction_norm_), -1.0, 1.0);
    }

    /// selected_ = the kept pairs, ascending. Ranking ties go to the lower index.
    void choose(std::size_t b, bool fitted) {
        std::size_t drop = 0;
        if (config_.drop == guided_drop::fixed_fraction) {
            drop = static_cast<std::size_t>(std::ceil(config_.drop_fraction * static_cast<double>(b) - 1e-9));
        } else if (config_.drop == guided_drop::estimated && fitted) {
            for (std::size_t i = 0; i < b; ++i)
                drop += posterior_flip(estimate_, remembered_[i]) > config_.flip_threshold ? 1 : 0;
            drop = std::min(drop, static_cast<std::size_t>(config_.max_drop_fraction * static_cast<double>(b)));
        }
        drop = std::min(drop, b - 1);  // always train on at least one pair
        order_.resize(b);
        std::iota(order_.begin(), order_.end(), std::size_t{0});
        std::stable_sort(order_.begin(), order_.end(),
                         [&](std::size_t x, std::size_t y) { return remembered_[x] < remembered_[y]; });
        keep_.assign(b, 1);
        for (std::size_t j = 0; j < drop; ++j) keep_[order_[j]] = 0;
        selected_.clear();
        for (std::size_t i = 0; i < b; ++i)
            if (keep_[i] != 0) selected_.push_back(i);
    }

    // The configuration in checkpoints: one list for writing and reading.
    template <class C, class F>
    static void visit_fields(C& c, F&& f) {
        f("loss.kind", c.loss.kind);
        f("loss.beta", c.loss.beta);
        f("loss.label_smoothing", c.loss.label_smoothing);
        f("loss.simpo_gamma", c.loss.simpo_gamma);
        f("loss.length_normalize", c.loss.length_normalize);
        f("sketch_dim", c.sketch_dim);
        f("memory_capacity", c.memory_capacity);
        f("drop", c.drop);
        f("drop_fraction", c.drop_fraction);
        f("flip_threshold", c.flip_threshold);
        f("max_drop_fraction", c.max_drop_fraction);
        f("min_memory", c.min_memory);
        f("refresh_interval", c.refresh_interval);
        f("weights", c.weights);
    }
    static void write_config(detail::byte_writer& w, const guided_config& c) {
        visit_fields(c, [&](const char*, const auto& field) {
            using F = std::remove_cvref_t<decltype(field)>;
            if constexpr (std::is_enum_v<F>) w.put<std::int32_t>(static_cast<std::int32_t>(field));
            else if constexpr (std::is_same_v<F, bool>) w.put<std::uint8_t>(field ? 1 : 0);
            else if constexpr (std::is_same_v<F, std::size_t>) w.put<std::uint64_t>(field);
            else w.put<double>(field);
        });
    }
    static guided_config read_config(detail::byte_reader& r) {
        guided_config c;
        visit_fields(c, [&](const char* name, auto& field) {
            using F = std::remove_cvref_t<decltype(field)>;
            if constexpr (std::is_enum_v<F>) {
                // Every enum is range-checked by validate() below; an int32 that does not fit
                // the enum's underlying type is refused here.
                const auto v = r.get<std::int32_t>(name);
                if (v < 0 || v > 255) throw checkpoint_error(std::string("checkpoint: ") + name + " holds an unknown value");
                field = static_cast<F>(v);
            } else if constexpr (std::is_same_v<F, bool>) {
                field = r.get<std::uint8_t>(name) != 0;
            } else if constexpr (std::is_same_v<F, std::size_t>) {
                field = static_cast<std::size_t>(r.get<std::uint64_t>(name));
            } else {
                field = r.get<double>(name);
            }
        });
        try {
            c.validate();
        } catch (const invalid_argument& e) {
            throw checkpoint_error(std::string("checkpoint: stored configuration is invalid (") + e.what() + ")");
        }
        return c;
    }

    // ---- state (all of it is in the checkpoint) ------------------------------------------
    guided_config config_;
    agreement_memory memory_;
    std::vector<T> direction_;
    double direction_norm_ = 0.0;
    std::uint64_t direction_age_ = 0;
    std::uint64_t refreshes_ = 0;
    std::uint64_t step_count_ = 0;
    noise_estimate estimate_{};

    // ---- scratch (not state) ------------------------------------------------------------
    pair_stats<T> stats_, trusted_stats_;
    std::vector<double> agreement_, remembered_, scratch_direction_;
    std::vector<T> direction_buffer_;
    std::vector<std::int64_t> id_scratch_;
    std::vector<std::size_t> order_, selected_;
    std::vector<std::uint8_t> keep_;
};

}  // namespace sams
