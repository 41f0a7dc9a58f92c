// sams_scheduler: the SamS contextual-bandit sample scheduler (SPEC §5–§8). One step
// scores a batch with the exploitation net f1 and exploration net f2, selects K pairs, and
// trains both nets one step late on the reward the previous selection earned.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <type_traits>
#include <span>
#include <stdexcept>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include <sams/backend/concept.hpp>
#include <sams/core/config.hpp>
#include <sams/core/decision.hpp>
#include <sams/core/error.hpp>
#include <sams/core/rng.hpp>
#include <sams/core/views.hpp>
#include <sams/loss/evaluate.hpp>
#include <sams/loss/pair_stats.hpp>
#include <sams/nn/explore_net.hpp>
#include <sams/nn/exploit_net.hpp>
#include <sams/reward/reward_function.hpp>
#include <sams/reward/sams_reward.hpp>
#include <sams/scheduler/checkpoint.hpp>
#include <sams/scheduler/decision_fill.hpp>
#include <sams/scheduler/reservoir.hpp>
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
          pool_index_(config_.pool.capacity_rows) {
        rng init(seed, init_stream);
        exploit_ = std::make_unique<exploit_net<Backend>>(*backend_, context_dim_, config_.net, config_.opt, init);
        explore_ = std::make_unique<explore_net<Backend>>(*backend_, config_.net.feature_dim(), config_.net,
                                                          config_.opt, init);
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
        validate_batch(batch);  // nothing below may throw sams::error: state changes from here on
        const std::size_t B = batch.size();
        const double progress = progress_metric(std::span<const T>(stats_.margin));

        step_metrics m{};
        m.step = static_cast<std::size_t>(step_count_);
        if (has_pending_) learn_from_pending(progress, m);

        score(batch);
        choose(B);

        detail::fill_decision(stats_, std::span<const std::size_t>(selected_), config_.select.weights, out);
        out.score.assign(host_scores_.begin(), host_scores_.end());
        m.batch_loss = out.metrics.batch_loss;
        m.selected_loss = out.metrics.selected_loss;
        m.progress = progress;
        m.reward_accuracy = out.metrics.reward_accuracy;
        m.mean_margin = out.metrics.mean_margin;
        m.chosen_reward = out.metrics.chosen_reward;
        m.rejected_reward = out.metrics.rejected_reward;
        m.score_spread = score_spread(std::span<const T>(host_scores_));
        m.selection_entropy =
            softmax_entropy(std::span<const T>(host_scores_), config_.select.temperature);
        m.pool_size = pool_index_.size();
        m.pool_capacity = pool_index_.capacity();
        m.warmup = last_warmup_;
        out.metrics = m;

        keep_pending(batch, progress);
        ++step_count_;
    }

    [[nodiscard]] const scheduler_config& config() const noexcept { return config_; }
    [[nodiscard]] std::size_t context_dim() const noexcept { return context_dim_; }
    /// Steps taken so far.
    [[nodiscard]] std::uint64_t steps() const noexcept { return step_count_; }
    /// Lagged updates of f1/f2 so far (one per step after the first).
    [[nodiscard]] std::uint64_t updates() const noexcept { return update_count_; }
    [[nodiscard]] std::size_t pool_size() const noexcept { return pool_index_.size(); }
    [[nodiscard]] Backend& backend() noexcept { return *backend_; }
    [[nodiscard]] const exploit_net<Backend>& exploitation_net() const noexcept { return *exploit_; }
    [[nodiscard]] const explore_net<Backend>& exploration_net() const noexcept { return *explore_; }

    /// The complete state as checkpoint bytes (see save()).
    [[nodiscard]] std::vector<std::uint8_t> serialize() const {
        detail::byte_writer w;
        w.put<std::uint32_t>(static_cast<std::uint32_t>(sizeof(T)));
        detail::write_config(w, config_);
        w.put<std::uint64_t>(context_dim_);
        w.put<std::uint64_t>(seed_);
        w.put<std::uint64_t>(step_count_);
        w.put<std::uint64_t>(update_count_);
        detail::write_rng(w, dropout_rng_);
        detail::write_rng(w, select_rng_);
        detail::write_rng(w, pool_rng_);
        w.put_tag("reward");
        write_reward_state(w);
        w.put_tag("exploit");
        write_net(w, *exploit_);
        w.put_tag("explore");
        write_net(w, *explore_);
        w.put_tag("pool");
        w.put<std::uint64_t>(pool_index_.size());
        w.put<std::uint64_t>(pool_index_.seen());
        write_rows(w, pool_contexts_, pool_index_.size());
        write_rows(w, pool_targets_, pool_index_.size());
        write_rows(w, pool_phi_, compat() ? pool_index_.size() : 0);
        write_rows(w, pool_explore_targets_, compat() ? pool_index_.size() : 0);
        w.put_tag("pending");
        w.put<std::uint8_t>(has_pending_ ? 1 : 0);
        if (has_pending_) {
            w.put<double>(pending_progress_);
            w.put_array(std::span<const std::uint64_t>(to_u64(pending_selected_)));
            w.put_array(std::span<const T>(pending_margin_));
            w.put_array(std::span<const T>(pending_policy_chosen_));
            w.put_array(std::span<const T>(pending_chosen_length_));
            w.put_array(std::span<const T>(pending_chosen_reward_));
            w.put_array(std::span<const T>(pending_exploit_score_));
            write_rows(w, pending_contexts_, pending_selected_.size());
            write_rows(w, pending_phi_, pending_selected_.size());
        }
        return detail::frame_checkpoint(w.bytes());
    }

    /// Rebuilds a scheduler from serialize()'s bytes; throws sams::checkpoint_error on any
    /// inconsistency (never reads out of bounds).
    [[nodiscard]] static sams_scheduler deserialize(std::span<const std::uint8_t> bytes, Backend be = Backend{},
                                                    std::optional<Reward> reward = std::nullopt) {
        detail::byte_reader r(detail::unframe_checkpoint(bytes));
        const auto scalar_size = r.get<std::uint32_t>("value size");
        if (scalar_size != sizeof(T))
            throw checkpoint_error("checkpoint: written with " + std::to_string(scalar_size) +
                                   "-byte scalars, this scheduler uses " + std::to_string(sizeof(T)));
        const scheduler_config cfg = detail::read_config(r);
        const auto dim = r.get<std::uint64_t>("context_dim");
        const auto seed = r.get<std::uint64_t>("seed");
        if (dim == 0) throw checkpoint_error("checkpoint: context_dim is 0");
        // Sizes first, against the caps and the bytes left: the nets are built from them.
        detail::check_nets_fit(cfg, dim, sizeof(T), r.remaining());
        try {
            sams_scheduler s(cfg, static_cast<std::size_t>(dim), seed, std::move(be), std::move(reward));
            s.read_state(r);
            if (!r.at_end()) throw checkpoint_error("checkpoint: trailing bytes after the last section");
            return s;
        } catch (const error&) {
            throw;
        } catch (const std::bad_alloc&) {
            throw checkpoint_error("checkpoint: out of memory building the stored scheduler");
        } catch (const std::length_error&) {
            throw checkpoint_error("checkpoint: the stored scheduler is too large to build");
        }
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
    using matrix = typename Backend::matrix;
    using vector = typename Backend::vector;

    static const scheduler_config& checked(const scheduler_config& c, std::size_t context_dim) {
        c.validate();
        detail::require(context_dim > 0, "sams_scheduler: context_dim", "must be > 0");
        return c;
    }

    static Reward make_reward(const scheduler_config& c) {
        if constexpr (std::is_constructible_v<Reward, const reward_config&>)
            return Reward(c.reward);
        else
            return Reward{};
    }

    [[nodiscard]] bool compat() const noexcept { return config_.reward.reference_compat; }

    /// Everything the batch must satisfy, checked before any state changes. The loss
    /// evaluation writes only the scratch stats_ buffer.
    void validate_batch(const pair_batch<T>& batch) {
        constexpr const char* where = "sams_scheduler::step";
        const std::size_t B = batch.size();
        detail::check_arg(B > 0, where, "batch is empty (policy_chosen has no entries)");
        const auto& c = batch.contexts;
        detail::require(c.data != nullptr && c.rows == B, where, [&] {
            return "batch.contexts must have one row per pair (" + std::to_string(B) + "), got " +
                   std::to_string(c.rows) + (c.data == nullptr ? " with a null data pointer" : "");
        });
        detail::require(c.cols == context_dim_, where, [&] {
            return "batch.contexts has " + std::to_string(c.cols) +
                   " columns, the scheduler was built for context_dim " + std::to_string(context_dim_);
        });
        detail::check_arg(c.stride() >= c.cols, where, "batch.contexts.row_stride must be >= cols");
        detail::check_arg(batch.ids.empty() || batch.ids.size() == B, where,
                          "batch.ids must be empty or have one entry per pair");
        // Contexts may live where the backend computes (device memory for a GPU backend), so
        // they are checked there, in the scratch buffer that scoring reads next.
        backend_->upload(c, batch_x_);
        detail::check_arg(backend_->all_finite(batch_x_), where, "batch.contexts contains NaN or Inf");
        if (config_.reward.length_normalized_chosen) {
            detail::check_arg(batch.chosen_length.size() == B, where,
                              "batch.chosen_length is required (reward_config.length_normalized_chosen) "
                              "with one entry per pair");
            for (const T n : batch.chosen_length)
                detail::check_arg(n > T(0) && double(n) >= limits::min_length, where,
                                  "batch.chosen_length must be >= 1 (a token count)");
        }
        evaluate_loss(config_.loss, batch, stats_);
    }

    /// Lagged update: reward the pairs selected last step, train f1 then f2, grow the pool.
    void learn_from_pending(double progress, step_metrics& m) {
        Backend& be = *backend_;
        const std::size_t k = pending_selected_.size();

        // 1. Targets for the pending rows from this step's progress.
        targets_.resize(k);
        reward_inputs<T> in;
        in.margin = pending_margin_;
        in.policy_chosen = pending_policy_chosen_;
        in.chosen_length = pending_chosen_length_;
        in.chosen_reward = pending_chosen_reward_;
        in.selected = pending_selected_;
        in.previous_progress = pending_progress_;
        in.current_progress = progress;
        reward_.targets(in, std::span<T>(targets_));
        if constexpr (requires { reward_.last_delta(); }) m.progress_delta = reward_.last_delta();

        // 2. Replay rows drawn before the pending rows join the pool, so none is drawn twice.
        pool_index_.sample(config_.pool.replay_batches * k, pool_rng_, replay_slots_);
        const std::size_t r = replay_slots_.size();
        const std::size_t n = k + r;

        be.resize(train_x_, n, context_dim_);
        be.set_rows(train_x_, 0, pending_contexts_);
        be.upload(std::span<const T>(targets_), pending_targets_);
        be.resize(train_y_, n);
        be.set_range(train_y_, 0, pending_targets_);
        if (r > 0) {
            be.gather_rows(pool_contexts_, replay_slots_, replay_x_);
            be.set_rows(train_x_, k, replay_x_);
            be.gather(pool_targets_, replay_slots_, replay_y_);
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
        be.set_rows(train_phi_, 0, pending_phi_);
        be.upload(std::span<const T>(pending_exploit_score_), pending_exploit_);
        be.axpby(T(1), pending_targets_, T(-1), pending_exploit_, pending_y2_);
        be.set_range(train_y2_, 0, pending_y2_);
        if (r > 0) {
            if (compat()) {
                be.gather_rows(pool_phi_, replay_slots_, replay_phi_);
                be.gather(pool_explore_targets_, replay_slots_, replay_y2_);
            } else {
                exploit_->predict(replay_x_, replay_f1_, replay_phi_);
                be.axpby(T(1), replay_y_, T(-1), replay_f1_, replay_y2_);
            }
            be.set_rows(train_phi_, k, replay_phi_);
            be.set_range(train_y2_, k, replay_y2_);
        }
        m.explore_mse = explore_->train(train_phi_, train_y2_, config_.opt.explore_steps);

        // 4. The rewarded rows join the pool (reservoir sampling once it is full).
        pool_index_.offer(k, pool_rng_, offer_slots_);
        grow_pool(pool_index_.size());
        keep_rows_.clear();
        write_slots_.clear();
        for (std::size_t i = 0; i < k; ++i) {
            if (offer_slots_[i] < 0) continue;
            keep_rows_.push_back(i);
            write_slots_.push_back(static_cast<std::size_t>(offer_slots_[i]));
        }
        if (!keep_rows_.empty()) {
            be.gather_rows(pending_contexts_, keep_rows_, replay_x_);
            be.scatter_rows(replay_x_, write_slots_, pool_contexts_);
            be.gather(pending_targets_, keep_rows_, replay_y_);
            be.scatter(replay_y_, write_slots_, pool_targets_);
            if (compat()) {
                be.gather_rows(pending_phi_, keep_rows_, replay_phi_);
                be.scatter_rows(replay_phi_, write_slots_, pool_phi_);
                be.gather(pending_y2_, keep_rows_, replay_y2_);
                be.scatter(replay_y2_, write_slots_, pool_explore_targets_);
            }
        }

        double sum = 0.0;
        for (const T y : targets_) sum += static_cast<double>(y);
        m.mean_target = sum / static_cast<double>(k);
        m.trained_rows = n;
        ++update_count_;
    }

    /// Grows pool storage geometrically up to the configured capacity, never beyond it.
    void grow_pool(std::size_t needed) {
        Backend& be = *backend_;
        if (needed <= pool_rows_allocated_) return;
        const std::size_t cap = config_.pool.capacity_rows;
        std::size_t rows = pool_rows_allocated_ == 0 ? needed : pool_rows_allocated_;
        while (rows < needed) rows *= 2;
        rows = std::min(rows, cap);
        if (pool_rows_allocated_ == 0) {
            be.resize(pool_contexts_, rows, context_dim_);
            be.resize(pool_targets_, rows);
        } else {
            be.resize_rows_preserve(pool_contexts_, rows);
            be.resize_preserve(pool_targets_, rows);
        }
        if (compat()) {
            if (pool_rows_allocated_ == 0) {
                be.resize(pool_phi_, rows, config_.net.feature_dim());
                be.resize(pool_explore_targets_, rows);
            } else {
                be.resize_rows_preserve(pool_phi_, rows);
                be.resize_preserve(pool_explore_targets_, rows);
            }
        }
        pool_rows_allocated_ = rows;
    }

    /// u = f1(c) + w·f2(φ) for every pair of the batch (uploaded by validate_batch), in eval mode.
    void score(const pair_batch<T>& batch) {
        Backend& be = *backend_;
        exploit_->predict(batch_x_, batch_f1_, batch_phi_);
        explore_->predict(batch_phi_, batch_f2_);
        be.axpby(T(1), batch_f1_, static_cast<T>(config_.select.explore_weight), batch_f2_, batch_u_);
        host_scores_.resize(batch.size());
        be.download(batch_u_, std::span<T>(host_scores_));
        host_f1_.resize(batch.size());
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

    /// The selected pairs wait for next step's reward: their statistics, contexts, φ and f1.
    void keep_pending(const pair_batch<T>& batch, double progress) {
        Backend& be = *backend_;
        const std::size_t B = batch.size();
        pending_progress_ = progress;
        pending_selected_ = selected_;
        pending_margin_.assign(stats_.margin.begin(), stats_.margin.end());
        pending_policy_chosen_.assign(batch.policy_chosen.begin(), batch.policy_chosen.end());
        pending_chosen_length_.assign(batch.chosen_length.begin(), batch.chosen_length.end());
        pending_chosen_reward_.assign(stats_.chosen_reward.begin(), stats_.chosen_reward.end());
        pending_exploit_score_.resize(selected_.size());
        for (std::size_t i = 0; i < selected_.size(); ++i) pending_exploit_score_[i] = host_f1_[selected_[i]];
        be.gather_rows(batch_x_, selected_, pending_contexts_);
        be.gather_rows(batch_phi_, selected_, pending_phi_);
        has_pending_ = true;
        (void)B;
    }

    // ---- checkpoint helpers -------------------------------------------------------------

    static std::vector<std::uint64_t> to_u64(const std::vector<std::size_t>& v) {
        return {v.begin(), v.end()};
    }

    /// Writes the first `rows` rows of a backend matrix (row-major) with its width.
    void write_rows(detail::byte_writer& w, const matrix& mat, std::size_t rows) const {
        const std::size_t cols = rows == 0 ? 0 : backend_->cols(mat);
        w.put<std::uint64_t>(cols);
        host_buffer_.resize(backend_->rows(mat) * cols);
        if (rows > 0) backend_->download(mat, std::span<T>(host_buffer_));
        w.put_array(std::span<const T>(host_buffer_.data(), rows * cols));
    }
    void write_rows(detail::byte_writer& w, const vector& vec, std::size_t rows) const {
        host_buffer_.resize(rows == 0 ? 0 : backend_->size(vec));
        if (rows > 0) backend_->download(vec, std::span<T>(host_buffer_));
        w.put_array(std::span<const T>(host_buffer_.data(), rows));
    }
    void read_rows(detail::byte_reader& r, matrix& mat, std::size_t rows, std::size_t cols, const char* what) {
        const auto stored_cols = r.get<std::uint64_t>(what);
        if (rows > 0 && stored_cols != cols)
            throw checkpoint_error(std::string("checkpoint: ") + what + " has width " + std::to_string(stored_cols) +
                                   ", expected " + std::to_string(cols));
        r.require_elements(rows, cols * sizeof(T), what);  // rows·cols cannot wrap past this
        r.get_array(host_buffer_, what, rows * cols);
        if (rows > 0) backend_->upload(matrix_view<const T>{host_buffer_.data(), rows, cols, cols}, mat);
    }
    void read_rows(detail::byte_reader& r, vector& vec, std::size_t rows, const char* what) {
        r.get_array(host_buffer_, what, rows);
        if (rows > 0) backend_->upload(std::span<const T>(host_buffer_), vec);
    }

    template <class Net>
    void write_net(detail::byte_writer& w, Net& net) const {
        net.visit_state([&](const char* name, auto& tensor) {
            using V = std::remove_cvref_t<decltype(tensor)>;
            w.put_tag(name);
            if constexpr (std::is_same_v<V, std::uint64_t>) {
                w.put(tensor);
            } else if constexpr (std::is_same_v<V, matrix>) {
                w.put<std::uint64_t>(backend_->rows(tensor));
                write_rows(w, tensor, backend_->rows(tensor));
            } else {
                write_rows(w, tensor, backend_->size(tensor));
            }
        });
    }
    template <class Net>
    void read_net(detail::byte_reader& r, Net& net) {
        net.visit_state([&](const char* name, auto& tensor) {
            using V = std::remove_cvref_t<decltype(tensor)>;
            r.expect_tag(name);
            if constexpr (std::is_same_v<V, std::uint64_t>) {
                tensor = r.get<std::uint64_t>(name);
            } else if constexpr (std::is_same_v<V, matrix>) {
                const auto rows = r.get<std::uint64_t>(name);
                if (rows != backend_->rows(tensor))
                    throw checkpoint_error(std::string("checkpoint: tensor ") + name + " has " +
                                           std::to_string(rows) + " rows, expected " +
                                           std::to_string(backend_->rows(tensor)));
                read_rows(r, tensor, backend_->rows(tensor), backend_->cols(tensor), name);
            } else {
                read_rows(r, tensor, backend_->size(tensor), name);
            }
        });
    }

    void write_reward_state(detail::byte_writer& w) const {
        const typename Reward::state_type s = reward_.state();
        w.put(s);
    }
    void read_reward_state(detail::byte_reader& r) {
        reward_.set_state(r.get<typename Reward::state_type>("reward state"));
    }

    /// Reads everything serialize() wrote after the header fields, into a freshly
    /// constructed scheduler of the stored configuration.
    void read_state(detail::byte_reader& r) {
        step_count_ = r.get<std::uint64_t>("step count");
        update_count_ = r.get<std::uint64_t>("update count");
        detail::read_rng(r, dropout_rng_, "dropout rng");
        detail::read_rng(r, select_rng_, "selection rng");
        detail::read_rng(r, pool_rng_, "pool rng");
        r.expect_tag("reward");
        read_reward_state(r);
        r.expect_tag("exploit");
        read_net(r, *exploit_);
        r.expect_tag("explore");
        read_net(r, *explore_);

        r.expect_tag("pool");
        const auto size = r.get<std::uint64_t>("pool size");
        const auto seen = r.get<std::uint64_t>("pool seen");
        if (size > config_.pool.capacity_rows || seen < size || (seen > size && size != config_.pool.capacity_rows))
            throw checkpoint_error("checkpoint: inconsistent pool size " + std::to_string(size) + " / seen " +
                                   std::to_string(seen) + " for capacity " +
                                   std::to_string(config_.pool.capacity_rows));
        const auto rows = static_cast<std::size_t>(size);
        const std::size_t e = config_.net.feature_dim();
        // The pool's rows must be in the file before storage for them is allocated.
        r.require_elements(size, (context_dim_ + 1 + (compat() ? e + 1 : 0)) * sizeof(T), "pool rows");
        pool_index_.set_state({config_.pool.capacity_rows, seen});
        if (rows > 0) grow_pool(rows);
        read_rows(r, pool_contexts_, rows, context_dim_, "pool contexts");
        read_rows(r, pool_targets_, rows, "pool targets");
        read_rows(r, pool_phi_, compat() ? rows : 0, e, "pool features");
        read_rows(r, pool_explore_targets_, compat() ? rows : 0, "pool explore targets");

        r.expect_tag("pending");
        has_pending_ = r.get<std::uint8_t>("pending flag") != 0;
        if (!has_pending_) return;
        pending_progress_ = r.get<double>("pending progress");
        std::vector<std::uint64_t> sel;
        r.get_array(sel, "pending selection");
        r.get_array(pending_margin_, "pending margins");
        const std::size_t B = pending_margin_.size();
        if (sel.empty() || sel.size() > B)
            throw checkpoint_error("checkpoint: pending selection of " + std::to_string(sel.size()) +
                                   " rows for a batch of " + std::to_string(B));
        pending_selected_.clear();
        for (const auto i : sel) {
            if (i >= B) throw checkpoint_error("checkpoint: pending selection index out of range");
            pending_selected_.push_back(static_cast<std::size_t>(i));
        }
        r.get_array(pending_policy_chosen_, "pending chosen log-probs", B);
        r.get_array(pending_chosen_length_, "pending chosen lengths");
        if (!pending_chosen_length_.empty() && pending_chosen_length_.size() != B)
            throw checkpoint_error("checkpoint: pending chosen lengths do not match the batch");
        r.get_array(pending_chosen_reward_, "pending chosen rewards", B);
        r.get_array(pending_exploit_score_, "pending f1 scores", sel.size());
        read_rows(r, pending_contexts_, sel.size(), context_dim_, "pending contexts");
        read_rows(r, pending_phi_, sel.size(), e, "pending features");
    }

    // ---- state (all of it is in the checkpoint) ------------------------------------------
    scheduler_config config_;
    std::size_t context_dim_;
    std::uint64_t seed_;
    std::unique_ptr<Backend> backend_;  // heap-held: the nets keep a reference that must survive moves
    std::unique_ptr<exploit_net<Backend>> exploit_;
    std::unique_ptr<explore_net<Backend>> explore_;
    rng dropout_rng_, select_rng_, pool_rng_;
    Reward reward_;
    reservoir_index pool_index_;
    std::uint64_t step_count_ = 0;
    std::uint64_t update_count_ = 0;

    std::size_t pool_rows_allocated_ = 0;
    matrix pool_contexts_, pool_phi_;
    vector pool_targets_, pool_explore_targets_;

    bool has_pending_ = false;
    double pending_progress_ = 0.0;
    std::vector<std::size_t> pending_selected_;
    std::vector<T> pending_margin_, pending_policy_chosen_, pending_chosen_length_, pending_chosen_reward_;
    std::vector<T> pending_exploit_score_;
    matrix pending_contexts_, pending_phi_;

    // ---- scratch buffers, reused across steps (not state) --------------------------------
    pair_stats<T> stats_;
    std::vector<T> targets_, host_scores_, host_f1_;
    mutable std::vector<T> host_buffer_;
    std::vector<std::size_t> selected_, replay_slots_, keep_rows_, write_slots_;
    std::vector<std::ptrdiff_t> offer_slots_;
    std::vector<double> gumbel_keys_;
    bool last_warmup_ = false;
    matrix batch_x_, batch_phi_, train_x_, train_phi_, replay_x_, replay_phi_;
    vector batch_f1_, batch_f2_, batch_u_, train_y_, train_y2_, replay_y_, replay_y2_, replay_f1_;
    vector pending_targets_, pending_exploit_, pending_y2_;
};

}  // namespace sams
