// Data-parallel DPO + SamS in LibTorch over torch.distributed (c10d, gloo on the CPU). Each
// of R processes holds B/R pairs of every global batch of B: it runs the reference and policy
// forwards on its pairs, extracts their contexts, and hands them to a distributed_scheduler,
// which makes one SamS decision over all B pairs and returns this rank's part. The rank
// back-propagates Σ_local w_i ℓ_i (weights of the global decision), the gradients are summed
// over ranks with an all-reduce, and every rank takes the same Adam step.
//
//   example_libtorch_dpo_data_parallel --nproc 2 [--quick] [--steps N] [--batch B] [--root-broadcast]
//
// starts the R processes itself (gloo over a file store in /tmp); under torchrun or another
// launcher that sets RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT, omit --nproc.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "c10d_launch.hpp"
#include "dpo_example.hpp"
#include "sams_c10d.hpp"

#include <sams/distributed/distributed_scheduler.hpp>

namespace {

struct options {
    dpo_demo::run_config run{};
    int nproc = 1;
    std::uint64_t seed = 1;
    sams::distributed_mode mode = sams::distributed_mode::replicated;
};

options parse(int argc, char** argv) {
    options o;
    o.run.batch = 16;
    o.run.dpo_steps = 100;
    for (int i = 1; i < argc; ++i) {
        const std::string flag = argv[i];
        auto value = [&]() -> std::size_t {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "error: %s needs a value\n", flag.c_str());
                std::exit(2);
            }
            return static_cast<std::size_t>(std::strtoull(argv[++i], nullptr, 10));
        };
        if (flag == "--nproc")
            o.nproc = static_cast<int>(value());
        else if (flag == "--steps")
            o.run.dpo_steps = value();
        else if (flag == "--batch")
            o.run.batch = value();
        else if (flag == "--seed")
            o.seed = value();
        else if (flag == "--root-broadcast")
            o.mode = sams::distributed_mode::root_broadcast;
        else if (flag == "--quick") {
            o.run.sft_steps = 40;
            o.run.dpo_steps = 12;
            o.run.train_pairs = 256;
            o.run.test_pairs = 64;
            o.run.batch = 8;
            o.run.model.d_model = 16;
            o.run.model.mlp = 32;
            o.run.model.heads = 2;
            o.run.scheduler_net.hidden = 32;
            o.run.replay_batches = 2;
        } else {
            std::fprintf(
                stderr,
                "usage: example_libtorch_dpo_data_parallel [--nproc N] [--quick] [--steps N] [--batch B] "
                "[--seed S] [--root-broadcast]\n");
            std::exit(flag == "--help" ? 0 : 2);
        }
    }
    return o;
}

/// All of a model's gradients (or parameters) as one flat tensor, and back.
torch::Tensor flat(const std::vector<torch::Tensor>& ts) {
    std::vector<torch::Tensor> parts;
    for (const auto& t : ts) parts.push_back(t.reshape(-1));
    return torch::cat(parts);
}

}  // namespace

int main(int argc, char** argv) {
    const options o = parse(argc, argv);
    if (const auto status = sams::libtorch::launch(argv, o.nproc)) return *status;  // the launcher
    try {
        torch::set_num_threads(1);
        const auto info = sams::libtorch::this_rank();
        auto group = sams::libtorch::gloo_group(info);
        const dpo_demo::run_config& cfg = o.run;
        const bool root = info.rank == 0;

        // Every rank builds the same data and SFT model from the same seeds (cheap here; a
        // real trainer loads a checkpoint), then rank 0's weights are broadcast as DDP does.
        torch::manual_seed(o.seed);
        sams::rng data_rng(o.seed, /*stream=*/1);
        const auto train = dpo_demo::make_pairs(cfg.train_pairs, cfg.prompt_length, cfg.eta, data_rng);
        const auto test = dpo_demo::make_pairs(cfg.test_pairs, cfg.prompt_length, 0.0, data_rng);
        auto sft = std::make_shared<dpo_demo::tiny_lm>(cfg.model);
        sams::rng sft_rng(o.seed, /*stream=*/2);
        const double sft_loss = dpo_demo::train_sft(*sft, cfg, sft_rng);
        {
            torch::NoGradGuard no_grad;
            for (auto& p : sft->parameters()) {
                std::vector<torch::Tensor> t{p.data()};
                group->broadcast(t)->wait();
            }
        }
        auto policy = dpo_demo::clone_model(*sft, torch::kCPU);
        auto reference = dpo_demo::clone_model(*sft, torch::kCPU);
        reference->eval();
        torch::optim::Adam optimizer(policy->parameters(), torch::optim::AdamOptions(cfg.dpo_lr));

        sams::mean_pool_extractor<float> extractor(cfg.context);
        const auto dim = extractor.output_dim(static_cast<std::size_t>(cfg.model.layers),
                                              static_cast<std::size_t>(cfg.model.d_model));
        using scheduler = sams::sams_scheduler<sams::eigen_backend<float>>;
        // Refused here, on every rank, when B does not split over the ranks.
        sams::distributed_scheduler<float, scheduler, sams::libtorch::c10d_communicator> sched(
            sams::libtorch::c10d_communicator(group), scheduler(cfg.scheduler(), dim, o.seed),
            {.mode = o.mode, .global_batch = cfg.batch});
        const std::size_t local = cfg.batch / static_cast<std::size_t>(info.world);
        if (root)
            std::printf(
                "%d ranks (gloo), global batch %zu (%zu per rank), %s, SFT loss %.3f\n", info.world,
                cfg.batch, local,
                o.mode == sams::distributed_mode::replicated ? "replicated scheduler" : "root_broadcast",
                sft_loss);

        sams::rng order_rng(o.seed, /*stream=*/7);  // the same global order on every rank
        std::vector<std::size_t> order(train.size());
        std::size_t cursor = order.size();
        sams::context_matrix<float> contexts;
        sams::decision<float> d;
        double sched_ms = 0.0, step_ms = 0.0;
        for (std::size_t step = 0; step < cfg.dpo_steps; ++step) {
            const auto t0 = std::chrono::steady_clock::now();
            if (cursor + cfg.batch > order.size()) {
                for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
                for (std::size_t i = order.size(); i > 1; --i)
                    std::swap(order[i - 1], order[order_rng.below(i)]);
                cursor = 0;
            }
            // This rank's slice of the global batch.
            std::vector<const dpo_demo::preference_pair*> pairs;
            for (std::size_t i = 0; i < local; ++i)
                pairs.push_back(&train[order[cursor + static_cast<std::size_t>(info.rank) * local + i]]);
            cursor += cfg.batch;
            const auto b = static_cast<std::int64_t>(local);
            const dpo_demo::token_batch tb = dpo_demo::encode_pairs(pairs, torch::kCPU);
            torch::Tensor ref;
            {
                torch::NoGradGuard no_grad;
                ref = dpo_demo::response_logps(reference->forward(tb.inputs).logits, tb);
            }
            policy->train();
            dpo_demo::tiny_lm::output out = policy->forward(tb.inputs);
            const torch::Tensor a = dpo_demo::response_logps(out.logits, tb);
            sams::libtorch::batch_tensors t = sams::libtorch::split_log_probs(a, ref);

            const sams::libtorch::hidden_states hs(out.hidden);
            const sams::libtorch::token_mask mask(tb.mask);
            const auto h = hs.split();
            const auto m = mask.split();
            contexts.rows = h.chosen.pairs;
            contexts.cols = extractor.output_dim(h.chosen.layers, h.chosen.dim);
            contexts.values.resize(contexts.rows * contexts.cols);
            extractor.extract(h.chosen, h.rejected, m.chosen, m.rejected, contexts.view());
            const sams::libtorch::host_batch hb(t, contexts.view());
            const auto s0 = std::chrono::steady_clock::now();
            sched.step(hb.view(), d);  // this rank's part of the one global decision
            sched_ms +=
                std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - s0).count();

            // Σ_local w ℓ; summed over ranks it is the global Σ w ℓ, so the gradients add up.
            const torch::Tensor loss = sams::libtorch::weighted_loss(cfg.loss, d, t);
            optimizer.zero_grad();
            loss.backward();
            std::vector<torch::Tensor> grads;
            for (auto& p : policy->parameters()) grads.push_back(p.grad());
            std::vector<torch::Tensor> buffer{flat(grads)};
            group->allreduce(buffer)->wait();  // SUM, not DDP's mean: the weights are already global
            std::int64_t at = 0;
            for (auto& g : grads) {
                g.copy_(buffer[0].narrow(0, at, g.numel()).view_as(g));
                at += g.numel();
            }
            optimizer.step();
            step_ms +=
                std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
            (void)b;
            if (root && (step % 10 == 0 || step + 1 == cfg.dpo_steps))
                std::printf("step %3zu  batch loss %.4f  reward accuracy %.3f  selected here %zu of %zu\n",
                            step, d.metrics.batch_loss, d.metrics.reward_accuracy, d.selected.size(), local);
        }

        // The replicas must have stayed identical: compare with rank 0's parameters.
        torch::NoGradGuard no_grad;
        const torch::Tensor mine = flat(policy->parameters()).clone();
        std::vector<torch::Tensor> theirs{mine.clone()};
        group->broadcast(theirs)->wait();
        std::vector<torch::Tensor> differ{
            torch::tensor({mine.equal(theirs[0]) ? 0.0 : 1.0}, torch::kFloat64)};
        group->allreduce(differ)->wait();
        const bool identical = differ[0].item<double>() == 0.0;

        if (root) {
            std::size_t hits = 0;
            std::vector<const dpo_demo::preference_pair*> all;
            for (const auto& p : test) all.push_back(&p);
            const dpo_demo::token_batch tb = dpo_demo::encode_pairs(all, torch::kCPU);
            policy->eval();
            const torch::Tensor pa = dpo_demo::response_logps(policy->forward(tb.inputs).logits, tb);
            const torch::Tensor pr = dpo_demo::response_logps(reference->forward(tb.inputs).logits, tb);
            const auto n = static_cast<std::int64_t>(test.size());
            const torch::Tensor margin =
                (pa.narrow(0, 0, n) - pr.narrow(0, 0, n)) - (pa.narrow(0, n, n) - pr.narrow(0, n, n));
            hits = static_cast<std::size_t>(margin.gt(0).sum().item<std::int64_t>());
            std::printf(
                "held-out reward accuracy %.3f; per step %.1f ms, of which distributed scheduler %.2f ms; "
                "parameters identical on all ranks: %s\n",
                static_cast<double>(hits) / static_cast<double>(test.size()),
                step_ms / static_cast<double>(cfg.dpo_steps), sched_ms / static_cast<double>(cfg.dpo_steps),
                identical ? "yes" : "no");
        }
        return identical ? 0 : 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
}
