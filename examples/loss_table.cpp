// Every shipped preference loss on one small batch: per-pair loss, derivatives with respect to
// the policy log-probs, and the implicit-reward margin, as an aligned table per loss. The last
// table plugs in a user-defined loss (the skeleton of docs/concepts.md).
#include <sams/loss/evaluate.hpp>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

// The skeleton of docs/concepts.md, verbatim.
/// A user-defined preference loss: the squared hinge ℓ = max(0, 1 - βh)², h = u_w - u_l.
struct squared_hinge_loss {
    double beta = 0.1;

    bool needs_reference() const { return true; }  // reads r_w, r_l
    bool needs_lengths() const { return false; }   // ignores n_w, n_l

    void validate() const {  // optional: evaluate_loss calls it before touching the batch
        if (!(beta > 0.0)) throw sams::invalid_argument("squared_hinge_loss.beta: must be > 0");
    }

    template <class T>
    sams::pair_loss<T> operator()(const sams::pair_input<T>& p) const {
        const T b = static_cast<T>(beta);
        const T u_w = p.policy_chosen - p.reference_chosen;
        const T u_l = p.policy_rejected - p.reference_rejected;
        const T slack = std::max(T(0), T(1) - b * (u_w - u_l));
        const T d = -T(2) * b * slack;  // ∂ℓ/∂h; h rises with a_w and falls with a_l
        return {.loss = slack * slack,
                .d_policy_chosen = d,
                .d_policy_rejected = -d,
                .chosen_reward = b * u_w,
                .rejected_reward = b * u_l};
    }
};
static_assert(sams::preference_loss<squared_hinge_loss, float>);
static_assert(sams::preference_loss<squared_hinge_loss, double>);

namespace {

void print_rule() { std::printf("  %s\n", std::string(60, '-').c_str()); }

void print_stats(const std::string& title, const std::string& needs, const sams::pair_stats<double>& s) {
    std::printf("\n  %-44s%16s\n", title.c_str(), needs.c_str());
    std::printf("  %4s %12s %12s %12s %12s\n", "pair", "loss", "dl/da_w", "dl/da_l", "margin");
    print_rule();
    for (std::size_t i = 0; i < s.size(); ++i)
        std::printf("  %4zu %12.5f %12.5f %12.5f %12.5f\n", i, s.loss[i], s.d_policy_chosen[i],
                    s.d_policy_rejected[i], s.margin[i]);
    print_rule();
    std::printf("  %4s %12.5f %12s %12s %12.5f   accuracy %.2f\n", "mean", s.summary.loss, "", "", s.summary.margin,
                s.summary.accuracy);
}

std::string needs_of(bool reference, bool lengths) {
    if (reference && lengths) return "needs r, n";
    if (reference) return "needs r";
    if (lengths) return "needs n";
    return "";
}

}  // namespace

int main() {
    // Six pairs: summed log-probs of the chosen (w) and rejected (l) response under the policy
    // (a) and the frozen reference (r), and the response lengths in tokens (n).
    const std::vector<double> a_w{-52.3, -88.1, -30.4, -120.7, -64.0, -45.5};
    const std::vector<double> a_l{-60.8, -85.0, -41.2, -119.4, -70.3, -44.0};
    const std::vector<double> r_w{-55.0, -86.5, -33.9, -119.8, -66.2, -47.0};
    const std::vector<double> r_l{-58.1, -86.9, -37.0, -121.5, -67.4, -46.1};
    const std::vector<double> n_w{40, 70, 25, 96, 52, 38};
    const std::vector<double> n_l{48, 66, 31, 90, 55, 35};

    sams::pair_batch<double> batch;
    batch.policy_chosen = a_w;
    batch.policy_rejected = a_l;
    batch.reference_chosen = r_w;
    batch.reference_rejected = r_l;
    batch.chosen_length = n_w;
    batch.rejected_length = n_l;

    std::printf("sams preference losses on %zu pairs\n\n", batch.size());
    std::printf("  %4s %8s %8s %8s %8s %5s %5s %8s %8s\n", "pair", "a_w", "a_l", "r_w", "r_l", "n_w", "n_l", "h",
                "h_bar");
    print_rule();
    for (std::size_t i = 0; i < batch.size(); ++i) {
        const double u_w = a_w[i] - r_w[i], u_l = a_l[i] - r_l[i];
        std::printf("  %4zu %8.1f %8.1f %8.1f %8.1f %5.0f %5.0f %8.3f %8.4f\n", i, a_w[i], a_l[i], r_w[i], r_l[i],
                    n_w[i], n_l[i], u_w - u_l, u_w / n_w[i] - u_l / n_l[i]);
    }
    std::printf("  h = (a_w - r_w) - (a_l - r_l),  h_bar = (a_w - r_w)/n_w - (a_l - r_l)/n_l\n");

    struct entry {
        const char* title;
        sams::loss_config config;
    };
    const entry entries[] = {
        {"sigmoid (DPO), beta 0.1", {.kind = sams::loss_kind::sigmoid, .beta = 0.1}},
        {"sigmoid (cDPO), beta 0.1, eps 0.1", {.kind = sams::loss_kind::sigmoid, .beta = 0.1, .label_smoothing = 0.1}},
        {"robust (rDPO), beta 0.1, eps 0.1", {.kind = sams::loss_kind::robust, .beta = 0.1, .label_smoothing = 0.1}},
        {"ipo, beta 0.1", {.kind = sams::loss_kind::ipo, .beta = 0.1}},
        {"ipo, length-normalised, beta 0.1", {.kind = sams::loss_kind::ipo, .beta = 0.1, .length_normalize = true}},
        {"hinge (SLiC), beta 0.1", {.kind = sams::loss_kind::hinge, .beta = 0.1}},
        {"sigmoid_norm, beta 2", {.kind = sams::loss_kind::sigmoid_norm, .beta = 2.0}},
        {"simpo, beta 2, gamma 1", {.kind = sams::loss_kind::simpo, .beta = 2.0, .simpo_gamma = 1.0}},
        {"nca_pair, beta 0.1", {.kind = sams::loss_kind::nca_pair, .beta = 0.1}},
        {"apo_zero, beta 0.1", {.kind = sams::loss_kind::apo_zero, .beta = 0.1}},
        {"sppo_hard, beta 0.1", {.kind = sams::loss_kind::sppo_hard, .beta = 0.1}},
    };
    sams::pair_stats<double> stats;  // reused: after the first table nothing is allocated
    for (const auto& e : entries) {
        sams::evaluate_loss(e.config, batch, stats);
        print_stats(e.title, needs_of(e.config.needs_reference(), e.config.needs_lengths()), stats);
    }

    const squared_hinge_loss custom{.beta = 0.1};
    sams::evaluate_loss(custom, batch, stats);
    print_stats("user loss: squared hinge, beta 0.1", needs_of(custom.needs_reference(), custom.needs_lengths()),
                stats);
    std::printf("\nmargin = chosen reward - rejected reward: beta*u for reference losses, beta*u/n when\n"
                "length-normalised, beta*a/n for simpo. accuracy = share of pairs with margin > 0.\n");
    return 0;
}
