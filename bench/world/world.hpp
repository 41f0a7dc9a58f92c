// The benchmark world: a preference-learning problem with a known truth. Prompts are
// Gaussian vectors, responses are short token sequences, a fixed random teacher network
// gives the true reward r*(x, y), and training pairs get Bradley–Terry labels plus
// injected, recorded label noise. Shared by bench/evaluate.cpp, the demo and the tests.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include <Eigen/Dense>

#include <sams/core/error.hpp>
#include <sams/core/rng.hpp>

namespace sams::bench {

/// A response: tokens in [0, vocab), at most max_len of them. The end-of-sequence token is
/// implicit (it is predicted after the last token unless the sequence has max_len tokens).
using sequence = std::vector<int>;

/// How the injected label noise picks the pairs it flips.
enum class noise_model {
    uniform,   ///< round(η·N) pairs drawn uniformly
    near_tie,  ///< round(η·N) pairs drawn uniformly among the 2·round(η·N) closest in r*
};

[[nodiscard]] inline const char* to_string(noise_model m) noexcept {
    return m == noise_model::uniform ? "uniform" : "near_tie";
}

/// Shapes and label process of a world. The defaults are what docs/benchmarks.md reports.
struct world_config {
    std::size_t prompt_dim = 8;       ///< dx
    std::size_t vocab = 8;            ///< V ordinary tokens; index V is end-of-sequence
    std::size_t max_len = 4;          ///< L, tokens per response at most
    std::size_t embed_dim = 8;        ///< width of the fixed token embeddings fed to the policy
    std::size_t teacher_hidden = 16;  ///< width of the teacher network
    std::size_t train_prompts = 256;
    std::size_t val_prompts = 128;
    std::size_t test_prompts = 256;
    std::size_t pairs_per_prompt = 4;
    double label_temperature = 0.25;  ///< Bradley–Terry temperature on r* (0: deterministic labels)
    double noise_rate = 0.0;          ///< η, fraction of training labels flipped
    noise_model noise = noise_model::uniform;

    /// Class index of the end-of-sequence token.
    [[nodiscard]] std::size_t eos() const noexcept { return vocab; }
    /// Output width of the policy: V tokens plus end-of-sequence.
    [[nodiscard]] std::size_t classes() const noexcept { return vocab + 1; }
    /// Width of one policy input row: [x, embedding of the previous token, mean embedding
    /// of the prefix, one-hot position].
    [[nodiscard]] std::size_t feature_dim() const noexcept { return prompt_dim + 2 * embed_dim + max_len; }

    void validate() const {
        using sams::detail::require;
        const char* where = "sams::bench::world_config";
        require(prompt_dim > 0 && embed_dim > 0 && teacher_hidden > 0, where,
                "prompt_dim, embed_dim and teacher_hidden must be > 0");
        require(vocab >= 2 && vocab <= 64, where, "vocab must be in [2, 64], got " + std::to_string(vocab));
        require(max_len >= 1 && max_len <= 8, where, "max_len must be in [1, 8], got " + std::to_string(max_len));
        require(train_prompts > 0 && val_prompts > 0 && test_prompts > 0 && pairs_per_prompt > 0, where,
                "every split needs at least one prompt and pairs_per_prompt >= 1");
        require(std::isfinite(label_temperature) && label_temperature >= 0.0, where,
                "label_temperature must be finite and >= 0");
        require(std::isfinite(noise_rate) && noise_rate >= 0.0 && noise_rate <= 1.0, where,
                "noise_rate must be in [0, 1], got " + std::to_string(noise_rate));
    }
};

/// One preference pair with its ground truth.
struct preference_pair {
    std::size_t prompt = 0;            ///< row of the split's prompt matrix
    sequence chosen;                   ///< the response the (possibly noisy) label prefers
    sequence rejected;
    double chosen_true_reward = 0.0;   ///< r*(x, chosen)
    double rejected_true_reward = 0.0; ///< r*(x, rejected)
    bool flipped = false;              ///< the injected noise swapped this label
};

/// Prompts (one per row) and the pairs drawn on them.
struct split {
    Eigen::MatrixXd prompts;
    std::vector<preference_pair> pairs;

    [[nodiscard]] const double* prompt(std::size_t i) const { return prompts.data() + i * prompt_stride(); }
    [[nodiscard]] std::size_t prompt_stride() const noexcept { return static_cast<std::size_t>(prompts.rows()); }
};

/// Training pairs carry noisy labels; validation and test pairs are labelled by r* exactly.
struct dataset {
    split train;
    split val;
    split test;
};

namespace detail {
inline Eigen::Index eidx(std::size_t n) noexcept { return static_cast<Eigen::Index>(n); }
inline double logistic(double z) noexcept { return z >= 0 ? 1.0 / (1.0 + std::exp(-z)) : std::exp(z) / (1.0 + std::exp(z)); }
}  // namespace detail

/// The fixed parts of a world (teacher network, token embeddings) and the data generator.
/// Everything is a function of (config, seed) through sams::rng streams, so every method
/// of a comparison sees exactly the same pairs, labels and flips.
class world {
public:
    world(const world_config& config, std::uint64_t seed) : config_(checked(config)), seed_(seed) {
        rng init(seed, stream_teacher);
        const auto dx = config_.prompt_dim;
        const auto hr = config_.teacher_hidden;
        const auto de = config_.embed_dim;
        teacher_in_ = gaussian(init, hr, dx, 1.0 / std::sqrt(static_cast<double>(dx)));
        teacher_token_ = gaussian(init, hr, config_.max_len * config_.vocab, 1.0);
        teacher_length_ = gaussian(init, hr, config_.max_len + 1, 1.0);
        teacher_out_ = gaussian(init, hr, 1, 1.0).col(0);
        // Row V of the embedding table is the beginning-of-sequence token.
        embedding_ = gaussian(init, de, config_.vocab + 1, 1.0 / std::sqrt(static_cast<double>(de)));

        // Calibrate r* to zero mean and unit standard deviation over the response
        // distribution, so the label temperature and β mean the same in every world.
        rng calib(seed, stream_calibration);
        constexpr std::size_t n = 4096;
        std::vector<double> r(n);
        Eigen::VectorXd x(detail::eidx(dx));
        for (auto& v : r) {
            for (auto& xi : x) xi = calib.normal();
            v = raw_reward(x.data(), random_response(calib));
        }
        const double mean = std::accumulate(r.begin(), r.end(), 0.0) / static_cast<double>(n);
        double var = 0.0;
        for (const double v : r) var += (v - mean) * (v - mean);
        reward_shift_ = mean;
        reward_scale_ = 1.0 / std::sqrt(std::max(var / static_cast<double>(n - 1), 1e-12));
    }

    [[nodiscard]] const world_config& config() const noexcept { return config_; }
    [[nodiscard]] std::uint64_t seed() const noexcept { return seed_; }

    /// r*(x, y): c·tanh(U x + Σ_t Q[t, y_t] + P[len]), standardised.
    [[nodiscard]] double true_reward(const double* x, const sequence& y) const {
        return (raw_reward(x, y) - reward_shift_) * reward_scale_;
    }

    /// Number of next-token predictions that make up log π(y|x): one per token plus the
    /// end-of-sequence prediction, which is skipped when the response has max_len tokens.
    [[nodiscard]] std::size_t positions(const sequence& y) const noexcept {
        return y.size() < config_.max_len ? y.size() + 1 : config_.max_len;
    }

    /// The policy's input row for predicting token k of `y` (the first k tokens are the
    /// prefix): [x, e(previous token or BOS), mean of e over the prefix, one-hot(k)].
    template <class T>
    void write_features(const double* x, const sequence& y, std::size_t k, T* out) const {
        const auto dx = config_.prompt_dim;
        const auto de = config_.embed_dim;
        for (std::size_t i = 0; i < dx; ++i) out[i] = static_cast<T>(x[i]);
        const std::size_t prev = k == 0 ? config_.vocab : static_cast<std::size_t>(y[k - 1]);
        for (std::size_t i = 0; i < de; ++i) {
            out[dx + i] = static_cast<T>(embedding_(detail::eidx(i), detail::eidx(prev)));
            double s = 0.0;
            for (std::size_t t = 0; t < k; ++t) s += embedding_(detail::eidx(i), y[t]);
            out[dx + de + i] = static_cast<T>(k == 0 ? 0.0 : s / static_cast<double>(k));
        }
        for (std::size_t t = 0; t < config_.max_len; ++t) out[dx + 2 * de + t] = static_cast<T>(t == k ? 1 : 0);
    }

    /// A response from the data distribution: length uniform in [1, L], tokens uniform.
    [[nodiscard]] sequence random_response(rng& r) const {
        sequence y(1 + r.below(config_.max_len));
        for (auto& t : y) t = static_cast<int>(r.below(config_.vocab));
        return y;
    }

    /// The train/validation/test data of this world at the configured noise rate. The
    /// prompts, responses and clean labels do not depend on η, and with the uniform model
    /// the pairs flipped at η are a subset of those flipped at any larger η.
    [[nodiscard]] dataset make_dataset() const {
        dataset d;
        rng data(seed_, stream_data);
        d.train = make_split(data, config_.train_prompts, true);
        d.val = make_split(data, config_.val_prompts, false);
        d.test = make_split(data, config_.test_prompts, false);
        rng flips(seed_, stream_noise);
        inject_noise(d.train.pairs, flips);
        return d;
    }

    /// A trusted set of `pairs` clean pairs on prompts of their own (neither training,
    /// validation nor test prompts): labelled by the same Bradley–Terry process as the
    /// training pairs, without the injected flips, so "clean" means what it means for the
    /// oracle. Its own stream: the other splits do not change with it.
    [[nodiscard]] split make_trusted(std::size_t pairs) const {
        rng data(seed_, stream_trusted);
        const std::size_t per = config_.pairs_per_prompt;
        split s = make_split(data, (pairs + per - 1) / per, true);
        s.pairs.resize(pairs);
        return s;
    }

private:
    static constexpr std::uint64_t stream_teacher = 101;
    static constexpr std::uint64_t stream_calibration = 102;
    static constexpr std::uint64_t stream_data = 103;
    static constexpr std::uint64_t stream_noise = 104;
    static constexpr std::uint64_t stream_trusted = 105;

    static const world_config& checked(const world_config& c) {
        c.validate();
        return c;
    }

    static Eigen::MatrixXd gaussian(rng& r, std::size_t rows, std::size_t cols, double scale) {
        Eigen::MatrixXd m(detail::eidx(rows), detail::eidx(cols));
        for (Eigen::Index j = 0; j < m.cols(); ++j)
            for (Eigen::Index i = 0; i < m.rows(); ++i) m(i, j) = scale * r.normal();
        return m;
    }

    [[nodiscard]] double raw_reward(const double* x, const sequence& y) const {
        const Eigen::Map<const Eigen::VectorXd> xv(x, detail::eidx(config_.prompt_dim));
        Eigen::VectorXd s = teacher_in_ * xv + teacher_length_.col(detail::eidx(y.size()));
        const double norm = 1.0 / std::sqrt(static_cast<double>(std::max<std::size_t>(y.size(), 1)));
        for (std::size_t t = 0; t < y.size(); ++t)
            s += norm * teacher_token_.col(detail::eidx(t * config_.vocab + static_cast<std::size_t>(y[t])));
        return teacher_out_.dot(s.array().tanh().matrix());
    }

    split make_split(rng& r, std::size_t prompts, bool bradley_terry) const {
        split s;
        s.prompts.resize(detail::eidx(config_.prompt_dim), detail::eidx(prompts));
        for (Eigen::Index j = 0; j < s.prompts.cols(); ++j)
            for (Eigen::Index i = 0; i < s.prompts.rows(); ++i) s.prompts(i, j) = r.normal();
        s.pairs.reserve(prompts * config_.pairs_per_prompt);
        for (std::size_t p = 0; p < prompts; ++p) {
            const double* x = s.prompt(p);
            for (std::size_t k = 0; k < config_.pairs_per_prompt; ++k) {
                preference_pair pair;
                pair.prompt = p;
                pair.chosen = random_response(r);
                do pair.rejected = random_response(r);
                while (pair.rejected == pair.chosen);
                pair.chosen_true_reward = true_reward(x, pair.chosen);
                pair.rejected_true_reward = true_reward(x, pair.rejected);
                const double diff = pair.chosen_true_reward - pair.rejected_true_reward;
                // Always draw, so the stream does not depend on the label process.
                const double u = r.uniform();
                bool keep;
                if (bradley_terry && config_.label_temperature > 0.0)
                    keep = u < detail::logistic(diff / config_.label_temperature);
                else
                    keep = diff >= 0.0;
                if (!keep) {
                    std::swap(pair.chosen, pair.rejected);
                    std::swap(pair.chosen_true_reward, pair.rejected_true_reward);
                }
                s.pairs.push_back(std::move(pair));
            }
        }
        return s;
    }

    void inject_noise(std::vector<preference_pair>& pairs, rng& r) const {
        const std::size_t n = pairs.size();
        const auto m = static_cast<std::size_t>(std::llround(config_.noise_rate * static_cast<double>(n)));
        std::vector<std::size_t> candidates(n);
        std::iota(candidates.begin(), candidates.end(), std::size_t{0});
        if (config_.noise == noise_model::near_tie) {
            const auto gap = [&](std::size_t i) {
                return std::abs(pairs[i].chosen_true_reward - pairs[i].rejected_true_reward);
            };
            std::stable_sort(candidates.begin(), candidates.end(),
                             [&](std::size_t a, std::size_t b) { return gap(a) < gap(b); });
            candidates.resize(std::min(n, 2 * m));
        }
        // Fisher–Yates over the candidates; the first m are flipped.
        for (std::size_t i = candidates.size(); i > 1; --i) std::swap(candidates[i - 1], candidates[r.below(i)]);
        for (std::size_t i = 0; i < m && i < candidates.size(); ++i) {
            auto& p = pairs[candidates[i]];
            std::swap(p.chosen, p.rejected);
            std::swap(p.chosen_true_reward, p.rejected_true_reward);
            p.flipped = true;
        }
    }

    world_config config_;
    std::uint64_t seed_;
    Eigen::MatrixXd teacher_in_;      // hr × dx
    Eigen::MatrixXd teacher_token_;   // hr × (L·V)
    Eigen::MatrixXd teacher_length_;  // hr × (L+1)
    Eigen::VectorXd teacher_out_;     // hr
    Eigen::MatrixXd embedding_;       // de × (V+1), column V = BOS
    double reward_shift_ = 0.0;
    double reward_scale_ = 1.0;
};

}  // namespace sams::bench
