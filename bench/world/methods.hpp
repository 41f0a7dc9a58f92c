// The methods a comparison runs, by name: plain DPO, DPO + SamS (library defaults and
// variants), and the baseline selectors, each built from the library and driven through
// experiment::run() with the same data, steps and policy optimiser.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <sams/backend/eigen/eigen_backend.hpp>
#include <sams/core/config.hpp>
#include <sams/core/error.hpp>
#include <sams/loss/loss_config.hpp>
#include <sams/scheduler/baselines.hpp>
#include <sams/scheduler/concept.hpp>
#include <sams/scheduler/sams_scheduler.hpp>

#include "experiment.hpp"

namespace sams::bench {

/// Every method name run_method() accepts, in the order tables list them.
[[nodiscard]] inline const std::vector<std::string>& method_names() {
    static const std::vector<std::string> names{"full",      "sams",       "sams-paper", "uniform",
                                                "small-loss", "large-loss", "margin"};
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
    return {};
}

/// The SamS configuration behind a "sams*" method name.
[[nodiscard]] inline scheduler_config sams_config(std::string_view name, const loss_config& loss) {
    scheduler_config c;
    if (name == "sams-paper") {
        c = scheduler_config::paper();
        // The paper's shape (deep, block-mean features) at a width two CPU cores can train.
        c.net.hidden = 128;
        c.pool.capacity_rows = 8192;
    }
    c.loss = loss;
    return c;
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
    if (name == "sams" || name == "sams-paper") {
        sams_scheduler<eigen_backend<float>> s(sams_config(name, loss), e.context_dim(), seed);
        return e.run(s, on_window);
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
    throw invalid_argument("sams::bench::run_method: unknown method '" + std::string(name) + "'");
}

}  // namespace sams::bench
