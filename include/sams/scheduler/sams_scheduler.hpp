// sams_scheduler: the SamS contextual-bandit sample scheduler (docs/algorithm.md). One step
// scores a batch with the exploitation net f1 and exploration net f2, selects K pairs, and
// trains both nets one step late on the reward the previous selection earned.
#pragma once

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cmath>
#include <cstdint>
#include <limits>
#include <filesystem>
#include <memory>
#include <new>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <sams/backend/concept.hpp>
#include <sams/core/convert.hpp>
#include <sams/core/decision.hpp>
#include <sams/core/error.hpp>
#include <sams/core/limits.hpp>
#include <sams/core/rng.hpp>
#include <sams/core/views.hpp>
#include <sams/loss/evaluate.hpp>
#include <sams/loss/pair_stats.hpp>
#include <sams/nn/exploit_net.hpp>
#include <sams/nn/explore_net.hpp>
#include <sams/reward/reward_function.hpp>
#include <sams/reward/sams_reward.hpp>
#include <sams/scheduler/decision_fill.hpp>
#include <sams/scheduler/pending_selection.hpp>
#include <sams/scheduler/replay_pool.hpp>
#include <sams/scheduler/sams_checkpoint.hpp>
#include <sams/scheduler/scheduler_config.hpp>
#include <sams/scheduler/selection.hpp>

namespace sams {

/// The SamS scheduler over a compute backend (sams::eigen_backend<T> on the CPU).
///
/// Each step(batch): (1) computes the preference loss and its gradients for every pair;
/// (2) if a batch was selected at the previous step, turns this step's progress into
/// reward targets for those pairs, trains f1 on them plus rows replayed from the pool,
/// then f2 on f1's errors, and adds the rewarded rows to the pool; (3) scores the new batch
/// u = f1 + w·f2 and selects K pairs; (4) keeps the selection pending for the next step.
/// A batch that fails validation throws sams::invalid_argument and changes nothing.
template <backend Backend, class Reward = sams_reward>
class sams_scheduler {
    static_assert(reward_function<Reward, typename Backend::value_type>,
                  "sams_scheduler<Backend, Reward>: Reward does not model sams::reward_function "
                  "(see docs/concepts.md for the skeleton a reward must follow)");

public:
    using backend_type = Backend;
    using value_type = typename Backend::value_type;
    using T = value_type;
    using reward_type = Reward;

    /// @param config       validated here (throws sams::invalid_argument)
    /// @param context_dim  D, the width of the contexts every batch must carry
    /// @param seed         drives all randomness: init, dropout, selection, pool
    /// @param be           the backend instance (e.g. a GPU backend bound to a stream)
    /// @param reward       the reward function; by default built from config.reward
    sams_scheduler(const scheduler_config& config, std::size_t context_dim, std::uint64_t seed,
                   Backend be = Backend{}, std::optional<Reward> reward = std::nullopt)
        : config_(checked(config, context_dim)),
          context_dim_(context_dim),
          seed_(seed),
          backend_(std::make_unique<Backend>(std::move(be))),
          dropout_rng_(seed, dropout_stream),
          select_rng_(seed, select_stream),
          pool_rng_(seed, pool_stream),
          reward_(reward ? std::move(*reward) : make_reward(config_)),
          pool_(config_.pool.capacity_rows, context_dim_, config_.net.feature_dim(),
                config_.reward.reference_compat) {
        rng init(seed, init_stream);
        try {
            exploit_ = std::make_unique<exploit_net<Backend>>(*backend_, context_dim_, config_.net, config_.opt, init);
            explore_ = std::make_unique<explore_net<Backend>>(*backend_, config_.net.feature_dim(), config_.net,
                                                              config_.opt, init);
        } catch (const std::bad_alloc&) {  // sizes within the caps can still exceed this machine
            throw invalid_argument("sams_scheduler: not enough memory for the nets of this configuration (net.hidden, "
                                   "net.depth, context_dim)");
        }
    }

    sams_scheduler(sams_scheduler&&) noexcept = default;
    sams_scheduler& operator=(sams_scheduler&&) noexcept = default;

    /// Scores `batch`, selects K pairs and returns what the host needs for its backward pass.
    [[nodiscard]] decision<T> step(const pair_batch<T>& batch) {
        decision<T> d;
        step(batch, d);
        return d;
    }

    /// As step(batch), writing into `out` so that steady-state steps reuse its buffers.
    void step(const pair_batch<T>& batch, decision<T>& out) {
        require_complete("sams_scheduler::step");
        const prepared_batch p = prepare(batch);  // the last check: state changes from here on
        // prepare() checked every input and reserved the step's memory, so what fails here is
        // an allocation the reservation could not foresee, or the backend: the state is then
        // half-updated, and stepping or saving it would continue a run that never was.
        try {
            commit(batch, p, out);
        } catch (const std::bad_alloc&) {
            incomplete_ = true;
            throw backend_error("sams_scheduler::step: out of memory after the batch was accepted; the step is "
                                "incomplete and the scheduler refuses to go on: restore() a checkpoint");
        } catch (...) {
            incomplete_ = true;
            throw;
        }
    }

    /// False after a step failed past its checks (out of memory, a backend error): the
    /// scheduler then refuses step(), serialize() and save() until restore() succeeds.
    [[nodiscard]] bool complete() const noexcept { return !incomplete_; }

    /// As step(batch), for a batch in another floating-point type in host memory (e.g. a
    /// double host stepping a float scheduler): converted into buffers this scheduler reuses,
    /// so steady-state steps still allocate nothing. Results equal stepping the batch after
    /// static_cast<T> of every value.
    template <std::floating_point U>
        requires(!std::same_as<U, T>)
    [[nodiscard]] decision<T> step(const pair_batch<U>& batch) {
        decision<T> d;
        step(batch, d);
        return d;
    }
    template <std::floating_point U>
        requires(!std::same_as<U, T>)
    void step(const pair_batch<U>& batch, decision<T>& out) { step(converter_.convert(batch), out); }

    /// K, the number of pairs a step selects from a batch of `batch_size` (≥ 1):
    /// clamp(round(select.ratio · batch_size), 1, batch_size).
    [[nodiscard]] std::size_t selection_count(std::size_t batch_size) const {
        return selection_size(config_.select.ratio, batch_size);
    }

    [[nodiscard]] const scheduler_config& config() const noexcept { return config_; }
    [[nodiscard]] std::size_t context_dim() const noexcept { return context_dim_; }
    /// Steps taken so far.
    [[nodiscard]] std::uint64_t steps() const noexcept { return step_count_; }
    /// Lagged updates of f1/f2 so far (one per step after the first).
    [[nodiscard]] std::uint64_t updates() const noexcept { return update_count_; }
    [[nodiscard]] std::size_t pool_size() const noexcept { return pool_.size(); }
    [[nodiscard]] Backend& backend() noexcept { return *backend_; }
    [[nodiscard]] const exploit_net<Backend>& exploitation_net() const noexcept { return *exploit_; }
    [[nodiscard]] const explore_net<Backend>& exploration_net() const noexcept { return *explore_; }

    /// The complete state as checkpoint bytes (see save(); the layout is in sams_checkpoint.hpp).
    [[nodiscard]] std::vector<std::uint8_t> serialize() const {
        require_complete("sams_scheduler::serialize");
        return detail::sams_checkpoint::serialize(*this);
    }

    /// Rebuilds a scheduler from serialize()'s bytes; throws sams::checkpoint_error on any
    /// inconsistency (never reads out of bounds).
    [[nodiscard]] static sams_scheduler deserialize(std::span<const std::uint8_t> bytes, Backend be = Backend{},
                                                    std::optional<Reward> reward = std::nullopt) {
        return detail::sams_checkpoint::deserialize<sams_scheduler>(bytes, std::move(be), std::move(reward));
    }

    /// Writes the complete state (configuration, both nets with their Adam moments, the
    /// pool, the reward's running mean, the pending batch, the step counters and every RNG)
    /// to `path`, atomically: resuming from it reproduces an uninterrupted run bit for bit.
    void save(const std::filesystem::path& path) const {
        const auto bytes = serialize();
        detail::write_file_atomically(path, bytes);
    }

    /// Creates a scheduler from a checkpoint written by save().
    [[nodiscard]] static sams_scheduler load(const std::filesystem::path& path, Backend be = Backend{},
                                             std::optional<Reward> reward = std::nullopt) {
        const auto bytes = detail::read_file(path);
        return deserialize(bytes, std::move(be), std::move(reward));
    }

    /// Replaces this scheduler's state with the checkpoint's. The checkpoint must come from
    /// the same configuration and context width; otherwise sams::checkpoint_error is thrown
    /// naming the first differing field, and this scheduler is left unchanged.
    void restore(const std::filesystem::path& path) {
        sams_scheduler loaded = load(path, *backend_, reward_);
        const std::string diff = detail::first_config_difference(config_, loaded.config_);
        if (!diff.empty())
            throw checkpoint_error("checkpoint: written with a different configuration (field " + diff +
                                   " differs)");
        if (loaded.context_dim_ != context_dim_)
            throw checkpoint_error("checkpoint: context_dim is " + std::to_string(loaded.context_dim_) +
                                   ", this scheduler has " + std::to_string(context_dim_));
        *this = std::move(loaded);
    }

    /// The RNG streams of the seed (sams::rng(seed, stream)): documented so that tests and
    /// tools can rebuild any part of a run.
    static constexpr std::uint64_t init_stream = 1, dropout_stream = 2, select_stream = 3, pool_stream = 4;

private:
    friend struct detail::sams_checkpoint;
    using matrix = typename Backend::matrix;
    using vector = typename Backend::vector;

    /// What prepare() leaves for the rest of the step: the batch's size and progress; its
    /// contexts are uploaded to batch_x_ and its per-pair statistics are in stats_.
    struct prepared_batch {
        std::size_t size;
        double progress;  ///< L_t = mean σ(-m) over the batch, computed once per step
    };

    static const scheduler_config& checked(const scheduler_config& c, std::size_t context_dim) {
        c.validate();
        detail::require(context_dim > 0, "sams_scheduler: context_dim", "must be > 0");
        // The caps that depend on D as well (docs/limits.md): widths, parameters, pool elements.
        const std::string why = detail::size_limit_violation(c, context_dim);
        detail::require(why.empty(), "sams_scheduler", [&] { return why; });
        return c;
    }

    static Reward make_reward(const scheduler_config& c) {
        if constexpr (std::is_constructible_v<Reward, const reward_config&>)
            return Reward(c.reward);
        else
            return Reward{};
    }

    [[nodiscard]] bool compat() const noexcept { return config_.reward.reference_compat; }

    /// Checks everything the batch must satisfy, uploads its contexts, evaluates the loss,
    /// reserves the step's memory and computes the pending rows' targets. Writes only scratch
    /// (batch_x_, stats_, targets_, what reserve_step() sizes) and the reward's state, which
    /// it restores on failure: a batch that fails here changes no state, and nothing after it
    /// throws sams::error except a failure reserve_step() could not foresee (see step()).
    prepared_batch prepare(const pair_batch<T>& batch) {
        constexpr const char* where = "sams_scheduler::step";
        const std::size_t B = batch.size();
        detail::require(B > 0, where, "batch is empty (policy_chosen has no entries)");
        const auto& c = batch.contexts;
        detail::require(c.data != nullptr && c.rows == B, where, [&] {
            return "batch.contexts must have one row per pair (" + std::to_string(B) + "), got " +
                   std::to_string(c.rows) + (c.data == nullptr ? " with a null data pointer" : "");
        });
        detail::require(c.cols == context_dim_, where, [&] {
            return "batch.contexts has " + std::to_string(c.cols) +
                   " columns, the scheduler was built for context_dim " + std::to_string(context_dim_);
        });
        detail::require(c.stride() >= c.cols, where, "batch.contexts.row_stride must be >= cols");
        detail::require(batch.ids.empty() || batch.ids.size() == B, where,
                        "batch.ids must be empty or have one entry per pair");
        // Contexts may live where the backend computes (device memory for a GPU backend), so
        // they are checked there, in the scratch buffer that scoring reads next.
        backend_->upload(c, batch_x_);
        detail::require(backend_->all_finite(batch_x_), where, "batch.contexts contains NaN or Inf");
        // |x| < 2^14 = limits::max_abs_context, checked where the contexts live: scaled by the
        // power of two 2^(max_exponent - 14), which is exact, x overflows exactly when |x| >= 2^14.
        backend_->resize(range_probe_, B, context_dim_);
        backend_->fill(range_probe_, std::ldexp(T(1), std::numeric_limits<T>::max_exponent - limits::max_abs_context_log2));
        backend_->multiply(batch_x_, range_probe_, range_probe_);
        detail::require(backend_->all_finite(range_probe_), where,
                        "batch.contexts holds a value with |x| >= 16384 (limits::max_abs_context); scale the "
                        "contexts down");
        if (config_.reward.length_normalized_chosen) {
            detail::require(batch.chosen_length.size() == B, where,
                            "batch.chosen_length is required (reward_config.length_normalized_chosen) "
                            "with one entry per pair");
            for (const T n : batch.chosen_length)
                detail::require(n > T(0) && double(n) >= limits::min_length, where,
                                "batch.chosen_length must be >= 1 (a token count)");
        }
        evaluate_loss(config_.loss, batch, stats_);
        const double progress = progress_metric(std::span<const T>(stats_.margin));
        try {
            reserve_step(B);
        } catch (const std::bad_alloc&) {
            detail::fail(where, "not enough memory for a batch of " + std::to_string(B) +
                                    " pairs (scoring it and the lagged update of its selection); use smaller "
                                    "batches");
        }
        if (pending_.active) reward_pending(progress, where);
        return {B, progress};
    }

    /// Requests the memory this step and the next lagged update need, before any state
    /// changes, so that a batch too large for the machine is refused like any bad input:
    /// scoring B rows, training on the K pending rows and up to P·K replayed ones (f1 and f2
    /// forward and backward once, on zeros), the pool's growth. Runs only when the batch is
    /// larger than any before it, so steady state pays nothing. Writes scratch only.
    void reserve_step(std::size_t B) {
        const std::size_t k = std::max(selection_size(config_.select.ratio, B), pending_.size());
        if (B <= reserved_batch_ && k <= reserved_rows_) return;
        Backend& be = *backend_;
        exploit_->predict(batch_x_, batch_f1_, batch_phi_);
        explore_->predict(batch_phi_, batch_f2_);
        be.resize(batch_u_, B);
        host_scores_.reserve(B);
        host_f1_.reserve(B);
        selected_.reserve(B);
        gumbel_keys_.reserve(B);

        const std::size_t r = std::min(config_.pool.replay_batches * k, pool_.capacity());
        const std::size_t n = k + r, e = config_.net.feature_dim();
        targets_.reserve(k);
        replay_slots_.reserve(r);
        be.resize(train_x_, n, context_dim_);
        be.resize(train_phi_, n, e);
        be.resize(replay_x_, r, context_dim_);
        be.resize(replay_phi_, r, e);
        for (vector* v : {&train_y_, &train_y2_}) be.resize(*v, n);
        for (vector* v : {&replay_y_, &replay_y2_, &replay_f1_}) be.resize(*v, r);
        for (vector* v : {&pending_targets_, &pending_exploit_, &pending_y2_}) be.resize(*v, k);
        be.fill(train_x_, T(0));
        be.fill(train_phi_, T(0));
        be.fill(train_y_, T(0));
        be.fill(train_y2_, T(0));
        rng dropout = dropout_rng_;  // a copy: the rehearsal draws nothing from the state
        (void)exploit_->compute_gradients(train_x_, train_y_, dropout);
        (void)explore_->compute_gradients(train_phi_, train_y2_);
        pool_.reserve(be, pending_.size() + k);
        reserved_batch_ = std::max(reserved_batch_, B);
        reserved_rows_ = std::max(reserved_rows_, k);
    }

    void require_complete(const char* where) const {
        if (incomplete_)
            throw backend_error(std::string(where) +
                                ": an earlier step failed after its checks (out of memory or a backend error) "
                                "and left the state incomplete; restore() a checkpoint first");
    }

    /// The state-changing part of a step, for a batch prepare() accepted.
    void commit(const pair_batch<T>& batch, const prepared_batch& p, decision<T>& out) {
        step_metrics m{};
        m.step = static_cast<std::size_t>(step_count_);
        if (pending_.active) learn_from_pending(m);

        score(p.size);
        choose(p.size);

        // fill_decision sets the loss, progress and reward metrics and leaves the rest of m.
        out.metrics = m;
        detail::fill_decision(stats_, std::span<const std::size_t>(selected_), config_.select.weights,
                              p.progress, out);
        out.score.assign(host_scores_.begin(), host_scores_.end());
        step_metrics& om = out.metrics;
        om.score_spread = score_spread(std::span<const T>(host_scores_));
        om.selection_entropy = softmax_entropy(std::span<const T>(host_scores_), config_.select.temperature);
        om.pool_size = pool_.size();
        om.pool_capacity = pool_.capacity();
        om.warmup = last_warmup_;

        pending_.keep(*backend_, batch, stats_, selected_, host_f1_, batch_x_, batch_phi_, p.progress);
        ++step_count_;
    }

    /// The targets of the pending rows (into targets_), checked before anything uses them: a
    /// custom reward that returns a non-finite or huge target gets its state back and the
    /// batch is refused, instead of the nets refusing it halfway through the lagged update
    /// (or the pool storing a target its checkpoint could not restore).
    void reward_pending(double progress, const char* where) {
        const auto before = reward_.state();
        targets_.resize(pending_.size());
        reward_.targets(pending_.inputs(progress), std::span<T>(targets_));
        for (std::size_t j = 0; j < targets_.size(); ++j) {
            const double y = static_cast<double>(targets_[j]);
            if (std::isfinite(y) && std::abs(y) < limits::max_abs_context) continue;
            reward_.set_state(before);
            detail::fail(where, "the reward function returned target " + std::to_string(y) + " for pending row " +
                                    std::to_string(j) + "; targets must be finite with |y| < 16384 "
                                    "(limits::max_abs_context)");
        }
    }

    /// Lagged update: reward the pairs selected last step, train f1 then f2, grow the pool.
    void learn_from_pending(step_metrics& m) {
        Backend& be = *backend_;
        const std::size_t k = pending_.size();

        // 1. targets_: the pending rows' targets from this step's progress (prepare() computed
        //    and checked them).
        if constexpr (requires { reward_.last_delta(); }) m.progress_delta = reward_.last_delta();

        // 2. Replay rows drawn before the pending rows join the pool, so none is drawn twice.
        pool_.sample(config_.pool.replay_batches * k, pool_rng_, replay_slots_);
        const std::size_t r = replay_slots_.size();
        const std::size_t n = k + r;

        be.resize(train_x_, n, context_dim_);
        be.set_rows(train_x_, 0, pending_.contexts);
        be.upload(std::span<const T>(targets_), pending_targets_);
        be.resize(train_y_, n);
        be.set_range(train_y_, 0, pending_targets_);
        if (r > 0) {
            pool_.gather(be, replay_slots_, replay_x_, replay_y_);
            be.set_rows(train_x_, k, replay_x_);
            be.set_range(train_y_, k, replay_y_);
        }

        if (config_.opt.reset_each_update) {
            exploit_->reset_optimizer();
            explore_->reset_optimizer();
        }
        m.exploit_mse = exploit_->train(train_x_, train_y_, config_.opt.exploit_steps, dropout_rng_);

        // 3. f2 learns f1's error. Pending rows: y - f1 as it was when they were scored.
        //    Replayed rows: y - the current f1 (default), or the stored target (compat).
        const std::size_t e = config_.net.feature_dim();
        be.resize(train_phi_, n, e);
        be.resize(train_y2_, n);
        be.set_rows(train_phi_, 0, pending_.features);
        be.upload(std::span<const T>(pending_.exploit_score), pending_exploit_);
        be.axpby(T(1), pending_targets_, T(-1), pending_exploit_, pending_y2_);
        be.set_range(train_y2_, 0, pending_y2_);
        if (r > 0) {
            if (compat()) {
                pool_.gather_features(be, replay_slots_, replay_phi_, replay_y2_);
            } else {
                exploit_->predict(replay_x_, replay_f1_, replay_phi_);
                be.axpby(T(1), replay_y_, T(-1), replay_f1_, replay_y2_);
            }
            be.set_rows(train_phi_, k, replay_phi_);
            be.set_range(train_y2_, k, replay_y2_);
        }
        m.explore_mse = explore_->train(train_phi_, train_y2_, config_.opt.explore_steps);

        // 4. The rewarded rows join the pool (reservoir sampling once it is full).
        pool_.offer(be, pool_rng_, pending_.contexts, pending_targets_, pending_.features, pending_y2_);

        double sum = 0.0;
        for (const T y : targets_) sum += static_cast<double>(y);
        m.mean_target = sum / static_cast<double>(k);
        m.trained_rows = n;
        ++update_count_;
    }

    /// u = f1(c) + w·f2(φ) for every pair of the prepared batch, in eval mode.
    void score(std::size_t B) {
        Backend& be = *backend_;
        exploit_->predict(batch_x_, batch_f1_, batch_phi_);
        explore_->predict(batch_phi_, batch_f2_);
        be.axpby(T(1), batch_f1_, static_cast<T>(config_.select.explore_weight), batch_f2_, batch_u_);
        host_scores_.resize(B);
        be.download(batch_u_, std::span<T>(host_scores_));
        host_f1_.resize(B);
        be.download(batch_f1_, std::span<T>(host_f1_));
    }

    void choose(std::size_t B) {
        const std::size_t k = selection_size(config_.select.ratio, B);
        const std::size_t warmup = config_.select.warmup_steps;
        last_warmup_ = warmup == 0 ? update_count_ == 0 : step_count_ < warmup;
        const std::span<const T> u(host_scores_);
        if (last_warmup_)
            select_uniform(B, k, select_rng_, selected_);
        else if (config_.select.rule == selection_rule::top_k)
            select_top_k(u, k, selected_);
        else
            select_gumbel_top_k(u, k, config_.select.temperature, select_rng_, selected_, gumbel_keys_);
    }

    // ---- state (all of it is in the checkpoint, see sams_checkpoint.hpp) ------------------
    scheduler_config config_;
    std::size_t context_dim_;
    std::uint64_t seed_;
    std::unique_ptr<Backend> backend_;  // heap-held: the nets keep a reference that must survive moves
    std::unique_ptr<exploit_net<Backend>> exploit_;
    std::unique_ptr<explore_net<Backend>> explore_;
    rng dropout_rng_, select_rng_, pool_rng_;
    Reward reward_;
    replay_pool<Backend> pool_;
    pending_selection<Backend> pending_;
    std::uint64_t step_count_ = 0;
    std::uint64_t update_count_ = 0;

    // ---- scratch buffers, reused across steps (not state) --------------------------------
    batch_converter<T> converter_;
    pair_stats<T> stats_;
    std::vector<T> targets_, host_scores_, host_f1_;
    std::vector<std::size_t> selected_, replay_slots_;
    std::vector<double> gumbel_keys_;
    bool last_warmup_ = false;
    bool incomplete_ = false;          // a step failed past its checks (see step())
    std::size_t reserved_batch_ = 0;   // the largest B reserve_step() has sized scoring for
    std::size_t reserved_rows_ = 0;    // ... and the largest K it has sized training for
    matrix range_probe_;  // prepare()'s scaled copy of the contexts (range check)
    matrix batch_x_, batch_phi_, train_x_, train_phi_, replay_x_, replay_phi_;
    vector batch_f1_, batch_f2_, batch_u_, train_y_, train_y2_, replay_y_, replay_y2_, replay_f1_;
    vector pending_targets_, pending_exploit_, pending_y2_;
};

}  // namespace sams
