// The methods a comparison runs, by name: plain DPO, DPO + SamS (library defaults and
// variants), and the baseline selectors, each built from the library and driven through
// experiment::run() with the same data, steps and policy optimiser.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <sams/backend/eigen/eigen_backend.hpp>
#include <sams/core/config.hpp>
#include <sams/core/error.hpp>
#include <sams/core/rng.hpp>
#include <sams/guided/guided_scheduler.hpp>
#include <sams/loss/loss_config.hpp>
#include <sams/scheduler/baselines.hpp>
#include <sams/scheduler/concept.hpp>
#include <sams/scheduler/sams_scheduler.hpp>
#include <sams/scheduler/selection.hpp>

#include "experiment.hpp"
#include "guidance.hpp"

namespace sams::bench {

/// Every method name run_method() accepts, in the order tables list them.
[[nodiscard]] inline const std::vector<std::string>& method_names() {
    static const std::vector<std::string> names{"full",       "sams",       "sams-paper", "uniform",
                                                "small-loss", "large-loss", "margin",     "oracle",
                                                "cdpo",       "rdpo",       "guided",     "matched:guided"};
    return names;
}

/// One line on what a method is, for tables and --help.
[[nodiscard]] inline std::string method_description(std::string_view name) {
    if (name == "full") return "DPO on all B pairs";
    if (name == "sams") return "DPO + SamS, library defaults (H=256, N=4, top-K, rho=0.5)";
    if (name == "sams-paper") return "DPO + SamS, paper() settings scaled down (H=128, N=16, s=16)";
    if (name == "uniform") return "DPO on a uniform random K-subset";
    if (name == "small-loss") return "DPO on the K smallest-loss pairs";
    if (name == "large-loss") return "DPO on the K largest-loss pairs";
    if (name == "margin") return "DPO on the K smallest-margin pairs";
    if (name == "oracle") return "DPO on a random K-subset of the unflipped pairs (knows the flips; headroom)";
    if (name == "cdpo") return "cDPO on all pairs, label smoothing eps = eta (knows the noise rate)";
    if (name == "rdpo") return "rDPO on all pairs, eps = eta (knows the noise rate)";
    if (name == "guided") return "DPO + guided selection, library defaults (T=256 trusted pairs, estimated drop)";
    if (name == "matched:guided") return "DPO on a random subset of the same size per step as 'guided' trains on";
    return {};
}

namespace detail {

inline std::vector<std::string> split_on(std::string_view s, char sep) {
    std::vector<std::string> out;
    std::size_t at = 0;
    while (true) {
        const std::size_t next = s.find(sep, at);
        out.emplace_back(s.substr(at, next == std::string_view::npos ? std::string_view::npos : next - at));
        if (next == std::string_view::npos) return out;
        at = next + 1;
    }
}

inline double number(const std::string& key, const std::string& v) {
    std::size_t used = 0;
    double x = 0.0;
    try {
        x = std::stod(v, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    sams::detail::require(used == v.size() && std::isfinite(x), "sams::bench method variant",
                          key + " needs a number, got '" + v + "'");
    return x;
}

inline std::size_t count(const std::string& key, const std::string& v) {
    const double x = number(key, v);
    sams::detail::require(x >= 0 && x == std::floor(x), "sams::bench method variant",
                          key + " needs a non-negative integer, got '" + v + "'");
    return static_cast<std::size_t>(x);
}

}  // namespace detail

/// The headroom control: a uniform random K-subset drawn from the pairs whose label was not
/// flipped (flipped ones only if fewer than K are clean). It reads the flips through the
/// batch ids, which no real method can do.
class oracle_selector {
public:
    oracle_selector(const loss_config& loss, const experiment& e, std::uint64_t seed)
        : all_(loss), pairs_(e.data().train.pairs), gen_(seed, 7) {}

    decision<float> step(const pair_batch<float>& batch) {
        decision<float> d;
        step(batch, d);
        return d;
    }
    void step(const pair_batch<float>& batch, decision<float>& d) {
        all_.step(batch, d);  // losses and gradients of the mean over all B pairs
        const std::size_t b = batch.size();
        const std::size_t k = selection_size(0.5, b);
        order_.resize(b);
        for (std::size_t i = 0; i < b; ++i) order_[i] = i;
        for (std::size_t i = b; i > 1; --i) std::swap(order_[i - 1], order_[gen_.below(i)]);
        std::stable_partition(order_.begin(), order_.end(), [&](std::size_t i) {
            return !pairs_[static_cast<std::size_t>(batch.ids[i])].flipped;
        });
        std::fill(d.mask.begin(), d.mask.end(), std::uint8_t{0});
        for (std::size_t i = 0; i < k; ++i) d.mask[order_[i]] = 1;
        d.selected.clear();
        const float scale = static_cast<float>(b) / static_cast<float>(k);
        for (std::size_t i = 0; i < b; ++i) {
            const bool keep = d.mask[i] != 0;
            if (keep) d.selected.push_back(i);
            d.weight[i] = keep ? 1.0f / static_cast<float>(k) : 0.0f;
            d.d_policy_chosen[i] = keep ? d.d_policy_chosen[i] * scale : 0.0f;
            d.d_policy_rejected[i] = keep ? d.d_policy_rejected[i] * scale : 0.0f;
        }
    }

private:
    full_batch<float> all_;
    const std::vector<preference_pair>& pairs_;
    rng gen_;
    std::vector<std::size_t> order_;
};

/// A SamS method: its scheduler configuration and the contexts it is given.
struct sams_method {
    scheduler_config config;
    context_mode contexts = context_mode::average;
};

/// The SamS setup behind a method name: "sams" (library defaults), "sams-paper" (the
/// paper's settings at a CPU width), either followed by ":key=value" overrides for the
/// investigation of docs/benchmarks.md, e.g. "sams:rule=softmax:tau=0.1". Keys: rule
/// (top_k|softmax), tau, w (explore weight), warmup, mode (add|weight), alpha, a, b,
/// smoothing, chosen_term, length_norm, compat (0|1), hidden, depth, block, replay,
/// capacity, lr, steps (E1 = E2), reset (0|1), ctx (average|concat).
[[nodiscard]] inline sams_method sams_setup(std::string_view name, const loss_config& loss) {
    const auto parts = detail::split_on(name, ':');
    sams_method m;
    scheduler_config& c = m.config;
    if (parts[0] == "sams-paper") {
        c = scheduler_config::paper();
        // The paper's shape (deep, block-mean features) at a width two CPU cores can train.
        c.net.hidden = 128;
        c.pool.capacity_rows = 8192;
    } else {
        sams::detail::require(parts[0] == "sams", "sams::bench::sams_setup", "not a SamS method: " + std::string(name));
    }
    c.loss = loss;
    for (std::size_t i = 1; i < parts.size(); ++i) {
        const std::size_t eq = parts[i].find('=');
        sams::detail::require(eq != std::string::npos, "sams::bench::sams_setup",
                              "override '" + parts[i] + "' is not key=value");
        const std::string key = parts[i].substr(0, eq), v = parts[i].substr(eq + 1);
        if (key == "rule") {
            sams::detail::require(v == "top_k" || v == "softmax", "sams::bench::sams_setup", "rule is top_k or softmax");
            c.select.rule = v == "top_k" ? selection_rule::top_k : selection_rule::softmax_sample;
        } else if (key == "tau") c.select.temperature = detail::number(key, v);
        else if (key == "w") c.select.explore_weight = detail::number(key, v);
        else if (key == "warmup") c.select.warmup_steps = detail::count(key, v);
        else if (key == "mode") {
            sams::detail::require(v == "add" || v == "weight", "sams::bench::sams_setup", "mode is add or weight");
            c.reward.mode = v == "add" ? reward_mode::add : reward_mode::weight;
        } else if (key == "alpha") c.reward.alpha = detail::number(key, v);
        else if (key == "a") c.reward.a = detail::number(key, v);
        else if (key == "b") c.reward.b = detail::number(key, v);
        else if (key == "smoothing") c.reward.smoothing = detail::count(key, v) != 0;
        else if (key == "chosen_term") c.reward.chosen_reward_term = detail::count(key, v) != 0;
        else if (key == "length_norm") c.reward.length_normalized_chosen = detail::count(key, v) != 0;
        else if (key == "compat") c.reward.reference_compat = detail::count(key, v) != 0;
        else if (key == "hidden") c.net.hidden = detail::count(key, v);
        else if (key == "depth") c.net.depth = detail::count(key, v);
        else if (key == "block") c.net.block_size = detail::count(key, v);
        else if (key == "replay") c.pool.replay_batches = detail::count(key, v);
        else if (key == "capacity") c.pool.capacity_rows = detail::count(key, v);
        else if (key == "lr") c.opt.learning_rate = detail::number(key, v);
        else if (key == "steps") c.opt.exploit_steps = c.opt.explore_steps = detail::count(key, v);
        else if (key == "reset") c.opt.reset_each_update = detail::count(key, v) != 0;
        else if (key == "ctx") {
            sams::detail::require(v == "average" || v == "concat", "sams::bench::sams_setup", "ctx is average or concat");
            m.contexts = v == "average" ? context_mode::average : context_mode::concatenate;
        } else
            throw invalid_argument("sams::bench::sams_setup: unknown override key '" + key + "'");
    }
    c.validate();
    return m;
}

/// A guided method: the scheduler's configuration and what the host computes for it.
struct guided_method {
    guided_config config;
    guidance_options host;
};

/// The guided setup behind "guided[:key=value...]": library defaults, the host's trusted set
/// of T = 256 pairs and exact full-gradient sketches, with overrides drop (none|fixed|
/// estimated), q, maxdrop, z, horizon, refresh, T, sketch (full|count|last|lastcount), k.
[[nodiscard]] inline guided_method guided_setup(std::string_view name, const loss_config& loss) {
    const auto parts = detail::split_on(name, ':');
    sams::detail::require(parts[0] == "guided", "sams::bench::guided_setup", "not a guided method: " + std::string(name));
    guided_method m;
    guided_config& c = m.config;
    c.loss = loss;
    for (std::size_t i = 1; i < parts.size(); ++i) {
        const std::size_t eq = parts[i].find('=');
        sams::detail::require(eq != std::string::npos, "sams::bench::guided_setup",
                              "override '" + parts[i] + "' is not key=value");
        const std::string key = parts[i].substr(0, eq), v = parts[i].substr(eq + 1);
        if (key == "drop") {
            sams::detail::require(v == "none" || v == "fixed" || v == "estimated", "sams::bench::guided_setup",
                                  "drop is none, fixed or estimated");
            c.drop = v == "none" ? guided_drop::none : v == "fixed" ? guided_drop::fixed_fraction : guided_drop::estimated;
        } else if (key == "q") c.drop_fraction = detail::number(key, v);
        else if (key == "maxdrop") c.max_drop_fraction = detail::number(key, v);
        else if (key == "z") c.estimate_confidence = detail::number(key, v);
        else if (key == "horizon") c.estimate_horizon = detail::number(key, v);
        else if (key == "refresh") c.refresh_interval = detail::count(key, v);
        else if (key == "T") m.host.trusted_pairs = detail::count(key, v);
        else if (key == "k") m.host.width = detail::count(key, v);
        else if (key == "sketch") {
            sams::detail::require(v == "full" || v == "count" || v == "last" || v == "lastcount",
                                  "sams::bench::guided_setup", "sketch is full, count, last or lastcount");
            m.host.sketch = v == "full" ? sketch_kind::full : v == "count" ? sketch_kind::count
                          : v == "last" ? sketch_kind::last_layer : sketch_kind::last_count;
        } else
            throw invalid_argument("sams::bench::guided_setup: unknown override key '" + key + "'");
    }
    return m;
}

/// Records how many pairs each step of a wrapped scheduler trained on.
template <class Inner>
class counting_scheduler {
public:
    explicit counting_scheduler(Inner& inner) : inner_(inner) {}
    decision<float> step(const pair_batch<float>& batch) {
        decision<float> d;
        step(batch, d);
        return d;
    }
    void step(const pair_batch<float>& batch, decision<float>& d) {
        inner_.step(batch, d);
        counts.push_back(d.selected.size());
    }
    std::vector<std::size_t> counts;

private:
    Inner& inner_;
};

/// The equal-count random control: at step t a uniform random subset of counts[t] pairs
/// (the number another method trained on at that step), weights 1/K_t.
class count_matched_selector {
public:
    count_matched_selector(const loss_config& loss, std::vector<std::size_t> counts, std::uint64_t seed)
        : loss_(loss), counts_(std::move(counts)), gen_(seed, 8) {}
    decision<float> step(const pair_batch<float>& batch) {
        decision<float> d;
        step(batch, d);
        return d;
    }
    void step(const pair_batch<float>& batch, decision<float>& d) {
        sams::detail::require(t_ < counts_.size(), "sams::bench::count_matched_selector", "more steps than counts");
        evaluate_loss(loss_, batch, stats_);
        const std::size_t b = batch.size();
        select_uniform(b, std::min(counts_[t_++], b), gen_, selected_);
        sams::detail::fill_decision(stats_, std::span<const std::size_t>(selected_), weight_scaling::per_selected, d);
    }

private:
    loss_config loss_;
    std::vector<std::size_t> counts_;
    std::size_t t_ = 0;
    rng gen_;
    pair_stats<float> stats_;
    std::vector<std::size_t> selected_;
};

/// SamS carrying the guidance: the reward of a pair trained at step t−1 is its agreement with
/// the trusted direction (cosine of its gradient sketch with g), which f1 learns to predict
/// from contexts, so sketches are needed only for the pairs that were trained.
struct agreement_reward {
    struct state_type {
        std::uint64_t unused = 0;
    };
    const std::vector<float>* previous = nullptr;  ///< agreements of batch t−1, per row (the host's)

    void targets(const reward_inputs<float>& in, std::span<float> out) const {
        sams::detail::require(previous != nullptr && previous->size() == in.batch_size(), "agreement_reward",
                              "needs the previous batch's agreements");
        for (std::size_t j = 0; j < in.selected.size(); ++j) out[j] = (*previous)[in.selected[j]];
    }
    [[nodiscard]] state_type state() const noexcept { return {}; }
    void set_state(const state_type&) noexcept {}
};

/// The host side of agreement_reward: each step, the cosines of this batch's sketches with
/// the freshly refreshed trusted direction, kept for the next step's reward.
class agreement_host {
public:
    agreement_host(const experiment& e, const guidance_options& o) : guide_(e, o) {}
    const std::vector<float>* previous() const noexcept { return &previous_; }
    experiment::step_hook hook() {
        return [this](const experiment::policy_type& pi, const token_batch<float>& tokens,
                      const policy_cache<float>& cache, pair_batch<float>& batch) {
            const std::size_t b = batch.size(), k = guide_.sketch_dim();
            previous_.swap(current_);
            if (previous_.size() != b) previous_.assign(b, 0.0f);
            guide_.trusted_direction(pi, direction_);
            guide_.pair_sketches(pi, tokens, cache, b, sketches_);
            double gn = 0.0;
            for (const float v : direction_) gn += static_cast<double>(v) * v;
            current_.resize(b);
            for (std::size_t i = 0; i < b; ++i) {
                double dot = 0.0, n = 0.0;
                for (std::size_t c = 0; c < k; ++c) {
                    dot += static_cast<double>(sketches_[i * k + c]) * direction_[c];
                    n += static_cast<double>(sketches_[i * k + c]) * sketches_[i * k + c];
                }
                current_[i] = n > 0 && gn > 0 ? static_cast<float>(dot / std::sqrt(n * gn)) : 0.0f;
            }
        };
    }

private:
    trusted_guidance guide_;
    std::vector<float> previous_, current_, direction_, sketches_;
};

/// True for the names run_method() accepts: the base names and SamS variants.
[[nodiscard]] inline bool is_method(std::string_view name) {
    const auto base = detail::split_on(name, ':')[0];
    if (base == "sams" || base == "sams-paper" || base == "guided" || base == "sams-agree") return true;
    if (base == "matched") return name.size() > 8 && is_method(name.substr(8));
    for (const auto& n : method_names())
        if (n == name) return true;
    return false;
}

/// Runs `name` on `e` (the policy's DPO loss with the experiment's β, K = B/2 for the
/// selectors); `seed` seeds the method's own randomness (scheduler init, random subsets).
inline run_result run_method(const experiment& e, std::string_view name, std::uint64_t seed,
                             const std::function<void(const window_log&)>& on_window = {}) {
    loss_config loss;
    loss.kind = loss_kind::sigmoid;
    loss.beta = e.training().beta;
    selection_config select;
    select.ratio = 0.5;
    if (name == "full") {
        full_batch<float> s(loss, select);
        return e.run(s, on_window);
    }
    const auto base = detail::split_on(name, ':')[0];
    if (base == "sams" || base == "sams-paper") {
        const sams_method m = sams_setup(name, loss);
        sams_scheduler<eigen_backend<float>> s(m.config, e.context_dim(m.contexts), seed);
        return e.run(s, on_window, m.contexts);
    }
    if (name == "uniform") {
        uniform_selector<float> s(loss, select, seed);
        return e.run(s, on_window);
    }
    if (name == "small-loss" || name == "large-loss") {
        loss_selector<float> s(loss, select, name == "small-loss" ? extreme::smallest : extreme::largest);
        return e.run(s, on_window);
    }
    if (name == "margin") {
        margin_selector<float> s(loss, select, extreme::smallest);
        return e.run(s, on_window);
    }
    if (name == "oracle") {
        oracle_selector s(loss, e, seed);
        return e.run(s, on_window);
    }
    const double eta = e.get_world().config().noise_rate;
    if (name == "cdpo" || name == "rdpo") {
        loss_config l = loss;
        l.kind = name == "cdpo" ? loss_kind::sigmoid : loss_kind::robust;
        l.label_smoothing = std::min(eta, 0.49);
        full_batch<float> s(l, select);
        return e.run(s, on_window);
    }
    if (base == "sams-agree") {
        // "sams-agree[:T=..:sketch=..:k=..][:<sams overrides>]": guidance keys go to the host,
        // the rest to the SamS configuration.
        std::string sams_name = "sams", guided_name = "guided";
        for (const auto& part : detail::split_on(name, ':')) {
            if (part == "sams-agree") continue;
            const auto key = part.substr(0, part.find('='));
            (key == "T" || key == "sketch" || key == "k" ? guided_name : sams_name) += ":" + part;
        }
        const sams_method m = sams_setup(sams_name, loss);
        agreement_host host(e, guided_setup(guided_name, loss).host);
        agreement_reward reward{host.previous()};
        sams_scheduler<eigen_backend<float>, agreement_reward> s(m.config, e.context_dim(m.contexts), seed,
                                                                 eigen_backend<float>{}, reward);
        return e.run(s, on_window, m.contexts, host.hook());
    }
    if (base == "guided") {
        const guided_method m = guided_setup(name, loss);
        trusted_guidance host(e, m.host);
        guided_config c = m.config;
        c.sketch_dim = host.sketch_dim();
        guided_scheduler<float> s(c);
        return e.run(s, on_window, context_mode::average, host.hook(s));
    }
    if (base == "matched") {
        // Run the matched method first to learn how many pairs it trained on per step.
        const std::string_view inner = name.substr(8);
        sams::detail::require(detail::split_on(inner, ':')[0] == "guided", "sams::bench::run_method",
                              "matched: needs a guided method");
        const guided_method m = guided_setup(inner, loss);
        trusted_guidance host(e, m.host);
        guided_config c = m.config;
        c.sketch_dim = host.sketch_dim();
        guided_scheduler<float> g(c);
        counting_scheduler<guided_scheduler<float>> counted(g);
        (void)e.run(counted, {}, context_mode::average, host.hook(g));
        count_matched_selector s(loss, counted.counts, seed);
        return e.run(s, on_window);
    }
    throw invalid_argument("sams::bench::run_method: unknown method '" + std::string(name) + "'");
}

}  // namespace sams::bench
