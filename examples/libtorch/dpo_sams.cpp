// End-to-end DPO with SamS in LibTorch: SFT a small transformer on a made-up task (the
// reference), then DPO on pairs with a fraction η of swapped labels, with plain DPO, DPO +
// SamS, DPO + a uniform random K-subset, guided selection (a trusted set of clean pairs) and
// its equal-count random control (each optionally in the memory-saving mode), over several
// seeds. Prints clean held-out preference accuracy, the fraction of flipped pairs
// trained on, peak tensor memory and time per step. `--help` lists the flags.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iterator>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "dpo_example.hpp"

namespace {

struct options {
    dpo_demo::run_config run{};
    std::vector<dpo_demo::method_spec> methods{};
    std::uint64_t first_seed = 1;
    std::size_t seeds = 3;
    int threads = 1;
    std::size_t log_every = 0;
    bool quiet = false;
};

const char* usage =
    "usage: example_libtorch_dpo_sams [flags]\n"
    "  --seeds N          seeds per method (default 3), starting at --seed (default 1)\n"
    "  --methods LIST     comma-separated: dpo, sams, uniform, guided, matched, each optionally\n"
    "                     with -lowmem (default dpo,sams,uniform,sams-lowmem); matched trains on\n"
    "                     as many random pairs per step as the guided method listed before it\n"
    "  --eta X            fraction of training pairs with swapped labels (default 0.2)\n"
    "  --steps N          DPO steps (default 150)      --sft-steps N   SFT steps (default 300)\n"
    "  --batch B          pairs per DPO step (32)      --ratio R       K = R*B (0.5)\n"
    "  --lr X             DPO learning rate (1e-3)     --beta X        DPO beta (0.1)\n"
    "  --d-model N, --layers N, --heads N, --mlp N     model size (64, 2, 4, 128)\n"
    "  --prompt-length N  digits per prompt (6)        --train-pairs N, --test-pairs N (2048, 512)\n"
    "  --scheduler-hidden N, --scheduler-depth N, --replay N   SamS nets (128, 3) and replay batches (8)\n"
    "  --scheduler-lr X   Adam learning rate of the SamS nets (1e-3)\n"
    "  --trusted N        guided: clean trusted pairs (256)   --sketch-width K  sketch width (256)\n"
    "  --refresh N        guided: refresh the trusted direction every N steps (1)\n"
    "  --log-every N      print the scheduler's step metrics every N steps\n"
    "  --device cpu|cuda  where the model runs (cpu)   --threads N     intra-op threads (1)\n"
    "  --scheduler-backend eigen|thrust   where SamS runs: Eigen on the host, or the thrust session\n"
    "                     on the model's device (default: thrust with --device cuda when built for CUDA)\n"
    "  --quick            a tiny configuration that runs in seconds (CI smoke test)\n"
    "  --quiet            only the summary table\n";

[[noreturn]] void fail(const std::string& message) {
    std::fprintf(stderr, "error: %s\n%s", message.c_str(), usage);
    std::exit(2);
}

std::size_t to_size(const std::string& flag, const std::string& v) {
    try {
        std::size_t used = 0;
        const long long x = std::stoll(v, &used);
        if (used == v.size() && x > 0) return static_cast<std::size_t>(x);
    } catch (const std::exception&) {
    }
    fail(flag + " expects a positive integer, got '" + v + "'");
}

double to_double(const std::string& flag, const std::string& v) {
    try {
        std::size_t used = 0;
        const double x = std::stod(v, &used);
        if (used == v.size() && std::isfinite(x)) return x;
    } catch (const std::exception&) {
    }
    fail(flag + " expects a number, got '" + v + "'");
}

options parse(int argc, char** argv) {
    options o;
    std::string method_list = "dpo,sams,uniform,sams-lowmem";
    for (int i = 1; i < argc; ++i) {
        const std::string flag = argv[i];
        if (flag == "--help" || flag == "-h") {
            std::fputs(usage, stdout);
            std::exit(0);
        }
        if (flag == "--quick") {
            o.run.sft_steps = 40;
            o.run.dpo_steps = 8;
            o.run.train_pairs = 256;
            o.run.test_pairs = 64;
            o.run.batch = 8;
            o.run.model.d_model = 16;
            o.run.model.mlp = 32;
            o.run.model.heads = 2;
            o.run.scheduler_net.hidden = 32;
            o.run.replay_batches = 2;
            o.run.trusted_pairs = 32;
            o.run.sketch_width = 64;
            o.seeds = 1;
            continue;
        }
        if (flag == "--quiet") {
            o.quiet = true;
            continue;
        }
        if (i + 1 >= argc) fail(flag + " needs a value");
        const std::string v = argv[++i];
        auto& r = o.run;
        if (flag == "--seeds") o.seeds = to_size(flag, v);
        else if (flag == "--seed") o.first_seed = to_size(flag, v);
        else if (flag == "--methods") method_list = v;
        else if (flag == "--eta") r.eta = to_double(flag, v);
        else if (flag == "--steps") r.dpo_steps = to_size(flag, v);
        else if (flag == "--sft-steps") r.sft_steps = to_size(flag, v);
        else if (flag == "--batch") r.batch = to_size(flag, v);
        else if (flag == "--ratio") r.ratio = to_double(flag, v);
        else if (flag == "--lr") r.dpo_lr = to_double(flag, v);
        else if (flag == "--beta") r.loss.beta = to_double(flag, v);
        else if (flag == "--d-model") r.model.d_model = static_cast<std::int64_t>(to_size(flag, v));
        else if (flag == "--layers") r.model.layers = static_cast<std::int64_t>(to_size(flag, v));
        else if (flag == "--heads") r.model.heads = static_cast<std::int64_t>(to_size(flag, v));
        else if (flag == "--mlp") r.model.mlp = static_cast<std::int64_t>(to_size(flag, v));
        else if (flag == "--prompt-length") r.prompt_length = static_cast<std::int64_t>(to_size(flag, v));
        else if (flag == "--train-pairs") r.train_pairs = to_size(flag, v);
        else if (flag == "--test-pairs") r.test_pairs = to_size(flag, v);
        else if (flag == "--scheduler-hidden") r.scheduler_net.hidden = to_size(flag, v);
        else if (flag == "--scheduler-depth") r.scheduler_net.depth = to_size(flag, v);
        else if (flag == "--replay") r.replay_batches = to_size(flag, v);
        else if (flag == "--scheduler-lr") r.scheduler_lr = to_double(flag, v);
        else if (flag == "--trusted") r.trusted_pairs = to_size(flag, v);
        else if (flag == "--sketch-width") r.sketch_width = to_size(flag, v);
        else if (flag == "--refresh") r.refresh = to_size(flag, v);
        else if (flag == "--log-every") o.log_every = to_size(flag, v);
        else if (flag == "--threads") o.threads = static_cast<int>(to_size(flag, v));
        else if (flag == "--device") {
            if (v == "cpu") r.device = torch::kCPU;
            else if (v == "cuda") r.device = torch::kCUDA;
            else fail("--device expects cpu or cuda, got '" + v + "'");
        } else if (flag == "--scheduler-backend") {
            if (v == "eigen") r.scheduler_backend = dpo_demo::scheduler_backend_kind::eigen;
            else if (v == "thrust") r.scheduler_backend = dpo_demo::scheduler_backend_kind::thrust;
            else fail("--scheduler-backend expects eigen or thrust, got '" + v + "'");
        } else
            fail("unknown flag " + flag);
    }
    std::stringstream list(method_list);
    for (std::string item; std::getline(list, item, ',');) {
        const auto m = dpo_demo::method_spec::parse(item);
        if (!m) fail("unknown method '" + item + "'");
        o.methods.push_back(*m);
    }
    if (o.methods.empty()) fail("--methods is empty");
    bool guided_seen = false;
    for (const auto& m : o.methods) {
        if (m.kind == dpo_demo::method::guided) guided_seen = true;
        if (m.kind == dpo_demo::method::matched && !guided_seen)
            fail("--methods: matched needs a guided method before it (it copies its per-step counts)");
    }
    if (o.run.trusted_pairs < 2) fail("--trusted must be at least 2");
    if (!(o.run.eta >= 0.0 && o.run.eta < 0.5)) fail("--eta must be in [0, 0.5)");
    if (o.run.model.d_model % o.run.model.heads != 0) fail("--d-model must be a multiple of --heads");
    if (o.run.device.is_cuda() && !torch::cuda::is_available()) fail("--device cuda, but CUDA is not available");
    if (o.run.resolved_scheduler_backend() == dpo_demo::scheduler_backend_kind::thrust) {
        if (!dpo_demo::has_thrust_session) fail("--scheduler-backend thrust: this build has no thrust session");
        if (o.run.device.type() != dpo_demo::thrust_session_device_type())
            fail("--scheduler-backend thrust: the thrust session of this build reads " +
                 c10::DeviceTypeName(dpo_demo::thrust_session_device_type(), true) + " tensors, but --device is " +
                 o.run.device.str());
    }
    o.run.scheduler().validate();
    o.run.guided().validate();  // e.g. --scheduler-depth 2 is rejected here with the field's name
    return o;
}

/// Mean and the half-width of a 95 % Student-t confidence interval.
struct summary {
    double mean = 0.0, half_width = 0.0;
};

summary summarise(const std::vector<double>& x) {
    static constexpr double t975[] = {0, 12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262,
                                      2.228, 2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093,
                                      2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045};
    summary s;
    if (x.empty()) return s;
    for (const double v : x) s.mean += v;
    s.mean /= static_cast<double>(x.size());
    if (x.size() < 2) return s;
    double ss = 0.0;
    for (const double v : x) ss += (v - s.mean) * (v - s.mean);
    const std::size_t dof = x.size() - 1;
    const double t = dof < std::size(t975) ? t975[dof] : 1.96;
    s.half_width = t * std::sqrt(ss / static_cast<double>(dof) / static_cast<double>(x.size()));
    return s;
}

struct seed_result {
    double reward_accuracy = 0.0, logp_accuracy = 0.0, flipped_trained = 0.0;
    double ms_per_step = 0.0, scheduler_ms = 0.0;
    double step_peak_mib = 0.0, peak_mib = 0.0;
    double trained_per_step = 0.0;
};

constexpr double mib = 1024.0 * 1024.0;

}  // namespace

int main(int argc, char** argv) try {
    // Before the first tensor: every CPU tensor from here on is counted.
    dpo_demo::memory_meter& meter = dpo_demo::memory_meter::install();
    const options o = parse(argc, argv);
    torch::set_num_threads(o.threads);
    const auto& cfg = o.run;

    std::printf("LibTorch %s, device %s, %d intra-op thread(s)\n", TORCH_VERSION, cfg.device.str().c_str(),
                o.threads);
    const bool thrust = cfg.resolved_scheduler_backend() == dpo_demo::scheduler_backend_kind::thrust;
    std::printf("SamS scheduler: %s\n",
                !thrust ? "Eigen backend on the host"
                : dpo_demo::thrust_session_device_type() == c10::DeviceType::CUDA
                    ? "thrust backend on CUDA (contexts stay on the device)"
                    : "thrust backend on thrust's CPP system");
    std::printf("task: %lld-digit prompts, eta = %.2f, %zu train / %zu clean test pairs\n",
                static_cast<long long>(cfg.prompt_length), cfg.eta, cfg.train_pairs, cfg.test_pairs);
    std::printf("model: d=%lld, %lld layers, %lld heads; SFT %zu steps; DPO %zu steps, B=%zu, K=%.0f, beta=%.2f, "
                "lr=%.0e\n\n",
                static_cast<long long>(cfg.model.d_model), static_cast<long long>(cfg.model.layers),
                static_cast<long long>(cfg.model.heads), cfg.sft_steps, cfg.dpo_steps, cfg.batch,
                std::max(1.0, std::round(cfg.ratio * static_cast<double>(cfg.batch))), cfg.loss.beta, cfg.dpo_lr);

    std::map<std::string, std::vector<seed_result>> results;
    for (std::size_t s = 0; s < o.seeds; ++s) {
        const std::uint64_t seed = o.first_seed + s;
        torch::manual_seed(seed);
        sams::rng data_rng(seed, /*stream=*/1);
        const auto train = dpo_demo::make_pairs(cfg.train_pairs, cfg.prompt_length, cfg.eta, data_rng);
        const auto test = dpo_demo::make_pairs(cfg.test_pairs, cfg.prompt_length, 0.0, data_rng);
        auto sft = std::make_shared<dpo_demo::tiny_lm>(cfg.model);
        sft->to(cfg.device);
        sams::rng sft_rng(seed, /*stream=*/2);
        const double sft_loss = dpo_demo::train_sft(*sft, cfg, sft_rng);
        if (!o.quiet) std::printf("seed %llu: SFT loss %.3f\n", static_cast<unsigned long long>(seed), sft_loss);

        std::vector<std::size_t> guided_counts;  // pairs trained per step by the last guided method
        for (const auto& m : o.methods) {
            torch::manual_seed(seed);
            dpo_demo::dpo_trainer trainer(cfg, m, *sft, seed,
                                          m.kind == dpo_demo::method::matched ? guided_counts
                                                                              : std::vector<std::size_t>{});
            std::vector<std::size_t> counts;
            std::size_t trained = 0, flipped = 0, timed = 0;
            double ms = 0.0, sched_ms = 0.0;
            std::size_t step_peak = 0, peak = 0;
            for (std::size_t step = 0; step < cfg.dpo_steps; ++step) {
                const dpo_demo::step_report r = trainer.step(train);
                for (const std::size_t i : r.decision.selected) flipped += r.flipped[i], ++trained;
                counts.push_back(r.decision.selected.size());
                if (step >= std::min<std::size_t>(5, cfg.dpo_steps / 2)) {  // skip warm-up steps
                    ms += r.step_ms;
                    sched_ms += r.scheduler_ms;
                    ++timed;
                }
                step_peak = std::max(step_peak, r.peak_bytes - std::min(r.peak_bytes, r.start_bytes));
                peak = std::max(peak, r.peak_bytes);
                if (!std::isfinite(r.loss)) throw std::runtime_error("non-finite loss in " + m.name());
                if (o.log_every > 0 && (step + 1) % o.log_every == 0) {
                    const auto& x = r.decision.metrics;
                    std::size_t fl = 0;
                    for (const std::size_t i : r.decision.selected) fl += r.flipped[i];
                    std::printf("    %-15s step %4zu  loss %.4f  acc %.2f  delta %+.3f  f1 mse %.5f  f2 mse %.5f  "
                                "spread %.4f  pool %zu  flipped picked %zu/%zu%s\n",
                                m.name().c_str(), step + 1, x.batch_loss, x.reward_accuracy, x.progress_delta,
                                x.exploit_mse, x.explore_mse, x.score_spread, x.pool_size, fl,
                                r.decision.selected.size(), x.warmup ? "  (warm-up)" : "");
                }
            }
            if (m.kind == dpo_demo::method::guided) guided_counts = counts;
            const dpo_demo::evaluation e = trainer.evaluate(test);
            seed_result res;
            res.reward_accuracy = e.reward_accuracy;
            res.logp_accuracy = e.logp_accuracy;
            res.flipped_trained = static_cast<double>(flipped) / static_cast<double>(std::max<std::size_t>(trained, 1));
            res.ms_per_step = ms / static_cast<double>(std::max<std::size_t>(timed, 1));
            res.scheduler_ms = sched_ms / static_cast<double>(std::max<std::size_t>(timed, 1));
            res.step_peak_mib = static_cast<double>(step_peak) / mib;
            res.peak_mib = static_cast<double>(peak) / mib;
            res.trained_per_step = static_cast<double>(trained) / static_cast<double>(cfg.dpo_steps);
            results[m.name()].push_back(res);
            if (!o.quiet)
                std::printf("  %-15s clean acc %.3f (log-prob %.3f)  flipped trained %.3f  %.1f ms/step  "
                            "step peak %.2f MiB\n",
                            m.name().c_str(), res.reward_accuracy, res.logp_accuracy, res.flipped_trained,
                            res.ms_per_step, res.step_peak_mib);
        }
    }

    const bool meter_active = cfg.device.is_cpu();
    std::printf("\n%-15s %5s  %-17s %-17s %-15s %12s %10s %9s %9s\n", "method", "seeds", "clean pref. acc",
                "log-prob acc", "flipped trained", "step peak MiB", "peak MiB", "ms/step", "sched ms");
    for (const auto& m : o.methods) {
        const auto& rs = results[m.name()];
        std::vector<double> acc, lacc, fl, sp, pk, ms, sm;
        for (const auto& r : rs) {
            acc.push_back(r.reward_accuracy);
            lacc.push_back(r.logp_accuracy);
            fl.push_back(r.flipped_trained);
            sp.push_back(r.step_peak_mib);
            pk.push_back(r.peak_mib);
            ms.push_back(r.ms_per_step);
            sm.push_back(r.scheduler_ms);
        }
        const summary a = summarise(acc), la = summarise(lacc), f = summarise(fl);
        char peak_text[32] = "n/a", step_text[32] = "n/a";
        if (meter_active) {
            std::snprintf(step_text, sizeof step_text, "%.2f", summarise(sp).mean);
            std::snprintf(peak_text, sizeof peak_text, "%.2f", summarise(pk).mean);
        }
        std::printf("%-15s %5zu  %.3f +- %.3f     %.3f +- %.3f     %.3f +- %.3f  %12s %10s %9.1f %9.2f\n",
                    m.name().c_str(), rs.size(), a.mean, a.half_width, la.mean, la.half_width, f.mean,
                    f.half_width, step_text, peak_text, summarise(ms).mean, summarise(sm).mean);
    }
    // Paired by seed against full DPO (same data, SFT model and initial policy).
    const auto dpo_it = results.find("dpo");
    if (dpo_it != results.end() && o.seeds > 0) {
        std::printf("\npaired vs dpo (points)  %-24s %-24s %s\n", "clean pref. acc", "log-prob acc",
                    "pairs/step");
        for (const auto& m : o.methods) {
            if (m.name() == "dpo") continue;
            const auto& rs = results[m.name()];
            std::vector<double> da, dl;
            std::size_t wa = 0, wl = 0;
            double per_step = 0.0;
            for (std::size_t s = 0; s < rs.size(); ++s) {
                da.push_back(100.0 * (rs[s].reward_accuracy - dpo_it->second[s].reward_accuracy));
                dl.push_back(100.0 * (rs[s].logp_accuracy - dpo_it->second[s].logp_accuracy));
                wa += da.back() > 0.0;
                wl += dl.back() > 0.0;
                per_step += rs[s].trained_per_step / static_cast<double>(rs.size());
            }
            const summary a = summarise(da), l = summarise(dl);
            std::printf("  %-21s %+6.1f +- %4.1f (%zu/%zu)     %+6.1f +- %4.1f (%zu/%zu)     %.1f\n", m.name().c_str(),
                        a.mean, a.half_width, wa, rs.size(), l.mean, l.half_width, wl, rs.size(), per_step);
        }
    }
    std::printf("\n+- : half-width of the 95%% t-interval over seeds. step peak: CPU tensor bytes live at the\n"
                "step's peak minus those live when it began (activations, gradients, temporaries); peak: all\n"
                "live CPU tensor bytes (models, Adam state, data). ms/step excludes the first 5 steps.\n");
    (void)meter;
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
}
