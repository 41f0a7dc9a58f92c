// guided_scheduler: selection guided by a small trusted set of clean pairs (docs/guided.md).
// Each step the host hands the batch with one gradient sketch per pair, s_i = S·∇θ h_i with
// h_i = log π(y_w,i) − log π(y_l,i); the scheduler measures each pair's agreement with the
// trusted descent direction g (cosine of s_i and g), remembers its running mean per example
// id across visits, and drops the pairs of lowest remembered agreement: a fixed share, or as
// many as the flipped share it estimates against the trusted set — none while nothing looks
// wrong. The rest are trained with weights 1/K (or 1/B).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <numeric>
#include <optional>
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

    explicit guided_scheduler(const guided_config& config)
        : config_(checked(config)), memory_(config_.memory_capacity), estimator_(config_.estimate_horizon) {}

    /// Sets the trusted descent direction from its sketch, g = S·(−∇θ L_trusted): the host runs
    /// one forward and backward pass of its loss over the trusted pairs and sketches the
    /// negated gradient with the same S as the per-pair sketches (S is linear). The
    /// `estimated` drop rule also needs `clean_agreement`, the trusted pairs' mean cosine with
    /// the direction formed without them (set_trusted() computes it). Throws
    /// sams::invalid_argument (nothing changed) unless g has sketch_dim finite entries, not all
    /// 0, and clean_agreement, when given, is in [−1, 1].
    void set_trusted_direction(std::span<const T> g, std::optional<double> clean_agreement = std::nullopt) {
        constexpr const char* where = "guided_scheduler::set_trusted_direction";
        detail::require(g.size() == config_.sketch_dim, where, [&] {
            return "direction has " + std::to_string(g.size()) + " entries, expected sketch_dim " +
                   std::to_string(config_.sketch_dim);
        });
        detail::require(detail::all_finite(g), where, "direction contains NaN or Inf");
        double norm = 0.0;
        for (const T v : g) norm += static_cast<double>(v) * static_cast<double>(v);
        detail::require(norm > 0.0 && std::isfinite(norm), where, "direction must have a finite, non-zero norm");
        if (clean_agreement)
            detail::require(std::isfinite(*clean_agreement) && std::abs(*clean_agreement) <= 1.0, where, [&] {
                return "clean_agreement must be a cosine in [-1, 1], got " + std::to_string(*clean_agreement);
            });
        direction_.assign(g.begin(), g.end());
        direction_norm_ = std::sqrt(norm);
        direction_age_ = 0;
        calibrated_ = clean_agreement.has_value();
        clean_agreement_ = clean_agreement.value_or(0.0);
        ++refreshes_;
    }

    /// Sets the trusted direction from per-pair sketches of the trusted set: `trusted` carries
    /// the trusted pairs' log-probs (as a training batch) and `trusted.sketches` (T × k, one
    /// sketch of ∇θ h_j per pair); g = (1/T) Σ_j ω_j s_j with ω_j = ½(∂ℓ_j/∂a_l − ∂ℓ_j/∂a_w)
    /// (= βσ(−m_j) for the sigmoid loss; exact for every loss of the margin alone). The clean
    /// agreement is the mean over j of cos(s_j, g − ω_j s_j / T), leave-one-out so that no pair
    /// agrees with itself. Needs T ≥ 2 pairs. Early in training, when the policy has not yet
    /// learnt what the trusted pairs share, it can be ≤ 0; such a refresh informs the noise
    /// estimate of nothing (its steps are left out of it).
    void set_trusted(const pair_batch<T>& trusted) {
        constexpr const char* where = "guided_scheduler::set_trusted";
        const std::size_t n = trusted.size();
        const std::size_t k = config_.sketch_dim;
        detail::require(n >= 2, where, "trusted set needs at least 2 pairs (policy_chosen has fewer entries)");
        check_sketches(trusted.sketches, n, where, "trusted.sketches");
        evaluate_loss(config_.loss, trusted, trusted_stats_);
        scratch_direction_.assign(k, 0.0);
        trusted_weight_.resize(n);
        for (std::size_t j = 0; j < n; ++j) {
            const double w = 0.5 * (static_cast<double>(trusted_stats_.d_policy_rejected[j]) -
                                    static_cast<double>(trusted_stats_.d_policy_chosen[j])) / static_cast<double>(n);
            trusted_weight_[j] = w;
            const T* s = trusted.sketches.row(j);
            for (std::size_t c = 0; c < k; ++c) scratch_direction_[c] += w * static_cast<double>(s[c]);
        }
        double agreement = 0.0;
        for (std::size_t j = 0; j < n; ++j) {
            const T* s = trusted.sketches.row(j);
            double dot = 0.0, ss = 0.0, gg = 0.0;
            for (std::size_t c = 0; c < k; ++c) {
                const double v = static_cast<double>(s[c]);
                const double rest = scratch_direction_[c] - trusted_weight_[j] * v;
                dot += v * rest;
                ss += v * v;
                gg += rest * rest;
            }
            agreement += ss > 0.0 && gg > 0.0 ? dot / std::sqrt(ss * gg) : 0.0;
        }
        agreement /= static_cast<double>(n);
        direction_buffer_.resize(k);
        for (std::size_t c = 0; c < k; ++c) direction_buffer_[c] = static_cast<T>(scratch_direction_[c]);
        set_trusted_direction(std::span<const T>(direction_buffer_), std::clamp(agreement, -1.0, 1.0));
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
        const double batch_agreement = sum_agreement / static_cast<double>(b);
        // A refresh whose trusted pairs do not agree with each other cannot calibrate.
        if (calibrated_ && clean_agreement_ > 0.0) estimator_.add(batch_agreement, clean_agreement_);
        choose(b);
        detail::fill_decision(stats_, std::span<const std::size_t>(selected_), config_.weights, out);
        out.score.resize(b);
        for (std::size_t i = 0; i < b; ++i) out.score[i] = static_cast<T>(remembered_[i]);
        out.metrics.step = static_cast<std::size_t>(step_count_);
        out.metrics.estimated_noise = estimator_.estimate().rate;
        out.metrics.mean_agreement = batch_agreement;
        out.metrics.dropped = b - selected_.size();
        ++step_count_;
        ++direction_age_;
    }

    [[nodiscard]] const guided_config& config() const noexcept { return config_; }
    [[nodiscard]] std::uint64_t steps() const noexcept { return step_count_; }
    [[nodiscard]] std::size_t sketch_dim() const noexcept { return config_.sketch_dim; }
    [[nodiscard]] const agreement_memory& memory() const noexcept { return memory_; }
    /// The flipped share estimated so far against the trusted set (rate 0 without calibration).
    [[nodiscard]] noise_estimate noise() const noexcept { return estimator_.estimate(); }
    /// The trusted pairs' leave-one-out agreement with the current direction (0 if not given).
    [[nodiscard]] double clean_agreement() const noexcept { return clean_agreement_; }
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
        w.put<std::uint8_t>(calibrated_ ? 1 : 0);
        w.put(clean_agreement_);
        w.put(estimator_.state());
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
        const auto calibrated = r.get<std::uint8_t>("calibration flag");
        s.clean_agreement_ = r.get<double>("clean agreement");
        if (calibrated > 1 || !(std::abs(s.clean_agreement_) <= 1.0) ||
            (calibrated == 1 && s.direction_.empty()) || (calibrated == 0 && s.clean_agreement_ != 0.0))
            throw checkpoint_error("checkpoint: calibration flag or clean agreement out of range");
        s.calibrated_ = calibrated == 1;
        const auto est = r.get<noise_estimator::state_type>("noise estimate");
        for (const double v : {est.weight, est.batch, est.trusted, est.gap, est.gap_square})
            if (!std::isfinite(v)) throw checkpoint_error("checkpoint: noise estimate is not finite");
        if (est.weight < 0.0 || est.gap_square < 0.0 || est.weight > config_weight_cap(cfg))
            throw checkpoint_error("checkpoint: noise estimate out of range");
        s.estimator_.set_state(est);
        const auto evictions = r.get<std::uint64_t>("evictions");
        std::vector<agreement_entry> entries;
        r.get_array(entries, "agreement memory");
        try {
            s.memory_.assign(entries, evictions);
        } catch (const invalid_argument& e) {
            throw checkpoint_error(std::string("checkpoint: agreement memory is invalid (") + e.what() + ")");
        }
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
        detail::require(config_.drop != guided_drop::estimated || calibrated_, where,
                        "drop rule `estimated` needs the trusted set's clean agreement: call set_trusted() with "
                        "per-pair trusted sketches, or set_trusted_direction(g, clean_agreement)");
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

    /// selected_ = the kept pairs, ascending: all but the `drop` of lowest remembered
    /// agreement (ties: the lower index is dropped first).
    void choose(std::size_t b) {
        double share = 0.0;
        if (config_.drop == guided_drop::fixed_fraction) {
            share = config_.drop_fraction;
        } else if (config_.drop == guided_drop::estimated) {
            const noise_estimate e = estimator_.estimate();
            if (std::isfinite(e.standard_error))
                share = std::min(std::max(e.rate - config_.estimate_confidence * e.standard_error, 0.0),
                                 config_.max_drop_fraction);
        }
        std::size_t drop = static_cast<std::size_t>(std::ceil(share * static_cast<double>(b) - 1e-9));
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

    /// The largest Σ λ^age a consistent estimator can hold: the geometric series' limit.
    static double config_weight_cap(const guided_config& c) noexcept { return c.estimate_horizon + 1.0; }

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
        f("max_drop_fraction", c.max_drop_fraction);
        f("estimate_horizon", c.estimate_horizon);
        f("estimate_confidence", c.estimate_confidence);
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
    bool calibrated_ = false;  // the direction came with the trusted set's clean agreement
    double clean_agreement_ = 0.0;
    noise_estimator estimator_;

    // ---- scratch (not state) ------------------------------------------------------------
    pair_stats<T> stats_, trusted_stats_;
    std::vector<double> agreement_, remembered_, scratch_direction_, trusted_weight_;
    std::vector<T> direction_buffer_;
    std::vector<std::int64_t> id_scratch_;
    std::vector<std::size_t> order_, selected_;
    std::vector<std::uint8_t> keep_;
};

}  // namespace sams
