// One comparison cell of the benchmark: a world and its data for one seed, the frozen
// reference policy, DPO training of a fresh policy driven by any batch scheduler, and the
// metrics (clean held-out accuracy, exact expected true reward and win rate against the
// reference, clean test DPO loss, and the share of flipped pairs each method trained on).
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <numeric>
#include <span>
#include <vector>

#include <Eigen/Dense>

#include <sams/core/decision.hpp>
#include <sams/core/error.hpp>
#include <sams/core/rng.hpp>
#include <sams/core/views.hpp>

#include "policy.hpp"
#include "world.hpp"

namespace sams::bench {

/// The policy and its DPO training; identical for every method of a comparison.
struct train_config {
    std::size_t policy_hidden = 32;  ///< width of both policy layers
    std::size_t batch_size = 32;     ///< B pairs per step (selectors train on K of them)
    std::size_t epochs = 4;
    double learning_rate = 1e-2;     ///< policy Adam
    double beta = 0.1;               ///< DPO β, also for the metrics' implicit reward
    double output_scale = 0.1;       ///< init scale of the policy's output layer

    void validate() const {
        sams::detail::require(policy_hidden > 0 && batch_size > 0 && epochs > 0, "sams::bench::train_config",
                        "policy_hidden, batch_size and epochs must be > 0");
        sams::detail::require(std::isfinite(learning_rate) && learning_rate > 0.0 && std::isfinite(beta) && beta > 0.0,
                        "sams::bench::train_config", "learning_rate and beta must be > 0");
    }
};

/// DPO statistics of the current policy on a split with clean labels.
struct split_metrics {
    double accuracy = 0.0;       ///< mean 1[m > 0] (+½ for m = 0): the implicit reward ranks as r* does
    double loss = 0.0;           ///< mean −log σ(m)
    double chosen_reward = 0.0;  ///< mean β(log π − log π_ref) of the better response
    double margin = 0.0;         ///< mean m
};

/// Metrics logged at the end of each epoch.
struct window_log {
    std::size_t epoch = 0;             ///< 1-based
    std::size_t steps = 0;             ///< optimiser steps so far
    double flipped_fraction = 0.0;     ///< flipped pairs / trained pairs within this epoch
    double trained_fraction = 0.0;     ///< trained pairs / pairs seen within this epoch
    double train_loss = 0.0;           ///< mean batch loss over all pairs seen (noisy labels)
    double val_accuracy = 0.0;
    /// Mean over steps of |selected ∩ K smallest-loss pairs| / K: 1 for small-loss
    /// selection, about K/B for a random K, 1 for all pairs.
    double small_loss_overlap = 0.0;
    double score_spread = 0.0;         ///< mean of the scheduler's score_spread metric
};

/// Everything one training run reports.
struct run_result {
    split_metrics val;
    split_metrics test;
    double reward_gain = 0.0;       ///< E_π[r*] − E_ref[r*] over test prompts, exact
    double win_rate = 0.0;          ///< P(r*(y) > r*(y')), y ~ π, y' ~ π_ref (ties ½), exact
    double flipped_fraction = 0.0;  ///< over the whole run: flipped / trained pairs
    std::size_t steps = 0;
    std::size_t trained_pairs = 0;
    double seconds = 0.0;
    std::vector<window_log> windows;
};

/// How the per-layer pooled hidden states of the chosen and rejected response become
/// one context (the library's context_combine): averaged (its default) or side by side.
enum class context_mode {
    average,      ///< D = 2H: ½(chosen + rejected) per layer; symmetric in the label
    concatenate,  ///< D = 4H: [chosen, rejected] per layer; sees which side the label prefers
};

namespace detail {
inline double softplus(double z) noexcept { return z > 0 ? z + std::log1p(std::exp(-z)) : std::log1p(std::exp(z)); }
}  // namespace detail

/// Every response of the world in enumeration order: lengths 0..L, and within a length the
/// tokens read as a base-V number (first token most significant).
[[nodiscard]] inline std::vector<sequence> enumerate_responses(const world_config& c) {
    std::vector<sequence> all;
    std::size_t count = 1;
    for (std::size_t n = 0; n <= c.max_len; ++n, count *= c.vocab)
        for (std::size_t code = 0; code < count; ++code) {
            sequence y(n);
            std::size_t rest = code;
            for (std::size_t t = n; t-- > 0; rest /= c.vocab) y[t] = static_cast<int>(rest % c.vocab);
            all.push_back(std::move(y));
        }
    return all;
}

/// Data, reference and evaluation machinery for one (world config, train config, seed).
/// run() may be called many times, with different schedulers: each run starts from the
/// same initial policy and sees the same batches in the same order.
class experiment {
public:
    using policy_type = policy<float>;

    experiment(const world_config& wc, const train_config& tc, std::uint64_t seed)
        : world_(wc, seed), train_(checked(tc)), seed_(seed), data_(world_.make_dataset()),
          reference_(make_reference(world_, tc, seed)), responses_(enumerate_responses(wc)) {
        reference_log_probs(data_.train, ref_train_);
        reference_log_probs(data_.val, ref_val_);
        reference_log_probs(data_.test, ref_test_);
        prepare_enumeration();
        reference_distribution_ = response_log_probs(reference_);
    }

    [[nodiscard]] const world& get_world() const noexcept { return world_; }
    [[nodiscard]] const dataset& data() const noexcept { return data_; }
    [[nodiscard]] const train_config& training() const noexcept { return train_; }
    [[nodiscard]] const policy_type& reference() const noexcept { return reference_; }
    /// D of the contexts handed to schedulers: pooled hidden states of both layers.
    [[nodiscard]] std::size_t context_dim(context_mode mode = context_mode::average) const noexcept {
        return (mode == context_mode::average ? 2 : 4) * train_.policy_hidden;
    }
    /// Optimiser steps of one run (incomplete last batches are dropped).
    [[nodiscard]] std::size_t steps_per_epoch() const noexcept { return data_.train.pairs.size() / train_.batch_size; }

    /// Trains a fresh copy of the initial policy by DPO, each step on the pairs and with the
    /// loss gradients that `scheduler` returns, and evaluates it. `on_window` is called
    /// after every epoch.
    /// Called before every scheduler step with the current policy, the batch's tokens and
    /// forward cache; it may add what a scheduler needs beyond the usual fields (guided
    /// selection's gradient sketches) to the batch.
    using step_hook = std::function<void(const policy_type&, const token_batch<float>&, const policy_cache<float>&,
                                         pair_batch<float>&)>;

    template <class Scheduler>
    run_result run(Scheduler& scheduler, const std::function<void(const window_log&)>& on_window = {},
                   context_mode contexts = context_mode::average, const step_hook& before_step = {}) const {
        const auto start = std::chrono::steady_clock::now();
        const std::size_t b = train_.batch_size;
        const std::size_t d = context_dim(contexts);
        const auto& pairs = data_.train.pairs;
        sams::detail::require(pairs.size() >= b, "sams::bench::experiment::run", "fewer training pairs than one batch");

        policy_type pi = reference_;
        adam<float> opt(pi.size(), train_.learning_rate);
        policy_cache<float> cache;
        token_batch<float> tokens;
        typename policy_type::vector grad;
        std::vector<float> log_prob(2 * b), ref_w(b), ref_l(b), len_w(b), len_l(b), ctx(b * d), g(2 * b);
        std::vector<std::int64_t> ids(b);
        std::vector<std::size_t> order_scratch;
        decision<float> dec;

        rng order(seed_, stream_order);
        std::vector<std::size_t> perm(pairs.size());
        std::iota(perm.begin(), perm.end(), std::size_t{0});
        run_result out;
        for (std::size_t epoch = 1; epoch <= train_.epochs; ++epoch) {
            for (std::size_t i = perm.size(); i > 1; --i) std::swap(perm[i - 1], perm[order.below(i)]);
            std::size_t seen = 0, trained = 0, flipped = 0, batches = 0;
            double loss_sum = 0.0, overlap_sum = 0.0, spread_sum = 0.0;
            for (std::size_t s0 = 0; s0 + b <= perm.size(); s0 += b) {
                tokens.clear(world_.config().feature_dim());
                for (std::size_t i = 0; i < b; ++i) {
                    const auto& p = pairs[perm[s0 + i]];
                    tokens.add(world_, data_.train.prompt(p.prompt), p.chosen);
                }
                for (std::size_t i = 0; i < b; ++i) {
                    const auto& p = pairs[perm[s0 + i]];
                    tokens.add(world_, data_.train.prompt(p.prompt), p.rejected);
                }
                pi.forward(tokens, cache, log_prob);
                for (std::size_t i = 0; i < b; ++i) {
                    const std::size_t k = perm[s0 + i];
                    ref_w[i] = ref_train_[2 * k];
                    ref_l[i] = ref_train_[2 * k + 1];
                    len_w[i] = static_cast<float>(tokens.offset[i + 1] - tokens.offset[i]);
                    len_l[i] = static_cast<float>(tokens.offset[b + i + 1] - tokens.offset[b + i]);
                    ids[i] = static_cast<std::int64_t>(k);
                }
                pair_contexts(tokens, cache, b, ctx, contexts);
                const std::span<const float> lp(log_prob);
                pair_batch<float> batch{.policy_chosen = lp.first(b),
                                              .policy_rejected = lp.subspan(b, b),
                                              .reference_chosen = ref_w,
                                              .reference_rejected = ref_l,
                                              .chosen_length = len_w,
                                              .rejected_length = len_l,
                                              .contexts = {ctx.data(), b, d, 0},
                                              .ids = ids};
                if (before_step) before_step(pi, tokens, cache, batch);
                scheduler.step(batch, dec);
                for (std::size_t i = 0; i < b; ++i) {
                    if (dec.mask[i] != 0) {
                        ++trained;
                        if (pairs[perm[s0 + i]].flipped) ++flipped;
                    }
                    g[i] = dec.d_policy_chosen[i];
                    g[b + i] = dec.d_policy_rejected[i];
                }
                seen += b;
                ++batches;
                loss_sum += dec.metrics.batch_loss * static_cast<double>(b);
                overlap_sum += small_loss_overlap(dec, order_scratch);
                spread_sum += dec.metrics.score_spread;
                pi.backward(tokens, cache, g, grad);
                opt.step(pi.parameters(), grad);
                ++out.steps;
            }
            out.trained_pairs += trained;
            window_log w;
            w.epoch = epoch;
            w.steps = out.steps;
            w.flipped_fraction = trained == 0 ? 0.0 : static_cast<double>(flipped) / static_cast<double>(trained);
            w.trained_fraction = static_cast<double>(trained) / static_cast<double>(seen);
            w.train_loss = loss_sum / static_cast<double>(seen);
            w.val_accuracy = evaluate(pi, data_.val, ref_val_).accuracy;
            w.small_loss_overlap = overlap_sum / static_cast<double>(batches);
            w.score_spread = spread_sum / static_cast<double>(batches);
            out.windows.push_back(w);
            out.flipped_fraction += w.flipped_fraction * static_cast<double>(trained);
            if (on_window) on_window(w);
        }
        out.flipped_fraction = out.trained_pairs == 0 ? 0.0 : out.flipped_fraction / static_cast<double>(out.trained_pairs);
        out.val = evaluate(pi, data_.val, ref_val_);
        out.test = evaluate(pi, data_.test, ref_test_);
        reward_metrics(pi, out.reward_gain, out.win_rate);
        out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        return out;
    }

    /// Clean-label DPO statistics of `pi` on the validation or test split.
    [[nodiscard]] split_metrics evaluate_split(const policy_type& pi, bool test) const {
        return test ? evaluate(pi, data_.test, ref_test_) : evaluate(pi, data_.val, ref_val_);
    }

    /// log π(y|x) of every enumerated response for every test prompt, computed through the
    /// prefix tree (one forward row per prefix): rows = responses, columns = test prompts.
    [[nodiscard]] Eigen::MatrixXd response_log_probs(const policy_type& pi) const {
        const auto& c = world_.config();
        const auto prompts = static_cast<std::size_t>(data_.test.prompts.cols());
        Eigen::MatrixXd out(detail::eidx(responses_.size()), detail::eidx(prompts));
        policy_cache<float> cache;
        std::vector<float> unused(1);
        // cum[k] holds log P(prefix) of every prefix of length k, in base-V order.
        std::vector<std::vector<double>> cum(c.max_len + 1);
        for (std::size_t p = 0; p < prompts; ++p) {
            pi.forward(prefix_rows_[p], cache, unused);
            const auto& prob = cache.prob;
            cum[0].assign(1, 0.0);
            std::size_t node = 0, count = 1, seq = 0;
            for (std::size_t k = 0; k <= c.max_len; ++k, count *= c.vocab) {
                if (k < c.max_len) cum[k + 1].resize(count * c.vocab);
                for (std::size_t code = 0; code < count; ++code, ++seq) {
                    if (k < c.max_len) {
                        const auto row = detail::eidx(node + code);
                        out(detail::eidx(seq), detail::eidx(p)) =
                            cum[k][code] + std::log(static_cast<double>(prob(row, detail::eidx(c.eos()))));
                        for (std::size_t v = 0; v < c.vocab; ++v)
                            cum[k + 1][code * c.vocab + v] =
                                cum[k][code] + std::log(static_cast<double>(prob(row, detail::eidx(v))));
                    } else {
                        out(detail::eidx(seq), detail::eidx(p)) = cum[k][code];
                    }
                }
                node += count;
            }
        }
        return out;
    }

    /// The same enumeration as response_log_probs(), with r*(x, y) of each response.
    [[nodiscard]] const Eigen::MatrixXd& response_rewards() const noexcept { return rewards_; }
    [[nodiscard]] const std::vector<sequence>& responses() const noexcept { return responses_; }

    /// Exact E_π[r*] − E_ref[r*] and win rate of π against the reference, averaged over
    /// the test prompts.
    void reward_metrics(const policy_type& pi, double& reward_gain, double& win_rate) const {
        const Eigen::MatrixXd lp = response_log_probs(pi);
        const auto s = lp.rows();
        const auto prompts = lp.cols();
        double gain = 0.0, win = 0.0;
        for (Eigen::Index p = 0; p < prompts; ++p) {
            const auto& order = reward_order_[static_cast<std::size_t>(p)];
            // Walk responses by increasing r*: the reference mass strictly below and at
            // the current reward gives P(r*(y') < r*(y)) + ½ P(r*(y') = r*(y)).
            double below = 0.0;
            for (Eigen::Index i = 0; i < s;) {
                const double r = rewards_(order[static_cast<std::size_t>(i)], p);
                Eigen::Index j = i;
                double tie_ref = 0.0, tie_pi = 0.0;
                while (j < s && rewards_(order[static_cast<std::size_t>(j)], p) == r) {
                    const auto k = order[static_cast<std::size_t>(j)];
                    tie_ref += std::exp(reference_distribution_(k, p));
                    tie_pi += std::exp(lp(k, p));
                    ++j;
                }
                win += tie_pi * (below + 0.5 * tie_ref);
                below += tie_ref;
                i = j;
            }
            gain += (lp.col(p).array().exp() - reference_distribution_.col(p).array().exp()).matrix().dot(rewards_.col(p));
        }
        reward_gain = gain / static_cast<double>(prompts);
        win_rate = win / static_cast<double>(prompts);
    }

    /// The contexts of a batch whose token rows hold b chosen then b rejected responses:
    /// for each layer the masked mean of its hidden states over the response's positions,
    /// chosen and rejected averaged (or concatenated), layers side by side. With `average`
    /// this is the library's default extraction (SPEC §4) on these hidden states.
    void pair_contexts(const token_batch<float>& tokens, const policy_cache<float>& cache, std::size_t b,
                       std::span<float> ctx, context_mode mode = context_mode::average) const {
        const std::size_t h = train_.policy_hidden;
        const std::size_t d = context_dim(mode);
        const std::size_t side = mode == context_mode::average ? 0 : h;  // offset of the rejected half
        for (std::size_t i = 0; i < b; ++i) {
            float* row = ctx.data() + i * d;
            std::fill(row, row + d, 0.0f);
            for (const std::size_t s : {i, b + i}) {
                const auto r0 = detail::eidx(tokens.offset[s]);
                const auto n = detail::eidx(tokens.offset[s + 1] - tokens.offset[s]);
                const float w = (mode == context_mode::average ? 0.5f : 1.0f) / static_cast<float>(n);
                const std::size_t shift = s == i ? 0 : side;
                // Layer l occupies [l·(d/2), (l+1)·(d/2)); within it, chosen then rejected.
                Eigen::Map<Eigen::RowVectorXf> c1(row + shift, detail::eidx(h));
                Eigen::Map<Eigen::RowVectorXf> c2(row + d / 2 + shift, detail::eidx(h));
                c1 += w * cache.h1.middleRows(r0, n).colwise().sum();
                c2 += w * cache.h2.middleRows(r0, n).colwise().sum();
            }
        }
    }

private:
    static constexpr std::uint64_t stream_policy_init = 201;
    static constexpr std::uint64_t stream_order = 202;

    static const train_config& checked(const train_config& tc) {
        tc.validate();
        return tc;
    }

    static double small_loss_overlap(const decision<float>& dec, std::vector<std::size_t>& order) {
        const std::size_t n = dec.loss.size();
        std::size_t k = 0;
        for (const auto m : dec.mask) k += m != 0 ? 1 : 0;
        if (k == 0) return 0.0;
        order.resize(n);
        std::iota(order.begin(), order.end(), std::size_t{0});
        std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t c) { return dec.loss[a] < dec.loss[c]; });
        std::size_t common = 0;
        for (std::size_t i = 0; i < k; ++i) common += dec.mask[order[i]] != 0 ? 1 : 0;
        return static_cast<double>(common) / static_cast<double>(k);
    }

    static policy_type make_reference(const world& w, const train_config& tc, std::uint64_t seed) {
        rng init(seed, stream_policy_init);
        return policy_type(w.config().feature_dim(), tc.policy_hidden, w.config().classes(), init, tc.output_scale);
    }

    /// log π(chosen), log π(rejected) of every pair of `s`, interleaved, in chunks.
    void log_probs(const policy_type& pi, const split& s, std::vector<float>& out) const {
        constexpr std::size_t chunk = 512;
        out.resize(2 * s.pairs.size());
        token_batch<float> tokens;
        policy_cache<float> cache;
        for (std::size_t p0 = 0; p0 < s.pairs.size(); p0 += chunk) {
            const std::size_t n = std::min(chunk, s.pairs.size() - p0);
            tokens.clear(world_.config().feature_dim());
            for (std::size_t i = p0; i < p0 + n; ++i) {
                tokens.add(world_, s.prompt(s.pairs[i].prompt), s.pairs[i].chosen);
                tokens.add(world_, s.prompt(s.pairs[i].prompt), s.pairs[i].rejected);
            }
            pi.forward(tokens, cache, std::span<float>(out).subspan(2 * p0, 2 * n));
        }
    }

    void reference_log_probs(const split& s, std::vector<float>& out) const { log_probs(reference_, s, out); }

    split_metrics evaluate(const policy_type& pi, const split& s, const std::vector<float>& ref) const {
        std::vector<float> lp;
        log_probs(pi, s, lp);
        split_metrics m;
        const double beta = train_.beta;
        for (std::size_t i = 0; i < s.pairs.size(); ++i) {
            const double uw = static_cast<double>(lp[2 * i]) - static_cast<double>(ref[2 * i]);
            const double ul = static_cast<double>(lp[2 * i + 1]) - static_cast<double>(ref[2 * i + 1]);
            const double margin = beta * (uw - ul);
            m.accuracy += margin > 0 ? 1.0 : (margin == 0 ? 0.5 : 0.0);
            m.loss += detail::softplus(-margin);
            m.chosen_reward += beta * uw;
            m.margin += margin;
        }
        const auto n = static_cast<double>(s.pairs.size());
        m.accuracy /= n;
        m.loss /= n;
        m.chosen_reward /= n;
        m.margin /= n;
        return m;
    }

    /// Policy input rows of every prefix node (lengths 0..L−1) for every test prompt, and
    /// r* of every response, with the responses of each prompt sorted by r*.
    void prepare_enumeration() {
        const auto& c = world_.config();
        const auto& test = data_.test;
        const auto prompts = static_cast<std::size_t>(test.prompts.cols());
        prefix_rows_.resize(prompts);
        rewards_.resize(detail::eidx(responses_.size()), detail::eidx(prompts));
        reward_order_.resize(prompts);
        for (std::size_t p = 0; p < prompts; ++p) {
            auto& rows = prefix_rows_[p];
            rows.clear(c.feature_dim());
            for (const auto& y : responses_) {
                if (y.size() >= c.max_len) break;  // prefixes are the responses shorter than L
                const std::size_t start = rows.features.size();
                rows.features.resize(start + c.feature_dim());
                world_.write_features(test.prompt(p), y, y.size(), rows.features.data() + start);
                rows.target.push_back(0);
            }
            rows.offset.push_back(rows.target.size());
            std::vector<Eigen::Index> order(responses_.size());
            for (std::size_t k = 0; k < responses_.size(); ++k) {
                rewards_(detail::eidx(k), detail::eidx(p)) = world_.true_reward(test.prompt(p), responses_[k]);
                order[k] = detail::eidx(k);
            }
            std::stable_sort(order.begin(), order.end(), [&](Eigen::Index a, Eigen::Index b) {
                return rewards_(a, detail::eidx(p)) < rewards_(b, detail::eidx(p));
            });
            reward_order_[p] = std::move(order);
        }
    }

    world world_;
    train_config train_;
    std::uint64_t seed_;
    dataset data_;
    policy_type reference_;
    std::vector<sequence> responses_;
    std::vector<float> ref_train_, ref_val_, ref_test_;
    std::vector<token_batch<float>> prefix_rows_;
    Eigen::MatrixXd rewards_;
    std::vector<std::vector<Eigen::Index>> reward_order_;
    Eigen::MatrixXd reference_distribution_;
};

}  // namespace sams::bench
