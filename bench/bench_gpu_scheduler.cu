// GPU benchmark of the thrust backend at the paper's shapes (D = H = 4096, N = 16, s = 16,
// N2 = 4, P = 32), for tools/gpu_check.sh. For each batch size B it measures, with CUDA
// events on the backend's stream:
//   gemm      a plain fp32 GEMM (R×H)·(H×H)ᵀ with R = (P+1)·B rows, through the backend
//             (cuBLAS), as the reference rate (and the same with TF32);
//   train     the training phase of one update: f1 forward for the replayed rows' f2 targets,
//             E1 = 4 Adam steps of f1 and E2 = 4 of f2 on R rows, and its FLOPs, so that
//             time / (FLOPs / GEMM rate) is the overhead over pure GEMM time;
//   step      a full sams_scheduler::step in steady state (ρ = 1 so that the update trains
//             on (P+1)·B rows, the shape of the PyTorch reference), contexts on the device;
//   accuracy  TF32 and bf16 GEMMs against fp32: the same f1 trained 4 steps from the same init
//             on the same rows, difference of its predictions (over their sd) and the MSE.
// Output: one JSON object per line on stdout. No Google Benchmark: the GPU machine may lack it,
// and CUDA events time the stream rather than the host.
//
//   bench_gpu_scheduler [--batches 8,64] [--dim 4096] [--hidden 4096] [--depth 16] [--reps 5]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include <cuda_runtime.h>
#include <thrust/device_vector.h>

#include <sams/adapters/thrust.hpp>
#include <sams/backend/thrust/thrust_backend.hpp>
#include <sams/nn/exploit_net.hpp>
#include <sams/nn/explore_net.hpp>
#include <sams/scheduler/sams_scheduler.hpp>

namespace {

using backend = sams::thrust_backend<float>;
using matrix = backend::matrix;
using vector = backend::vector;

struct options {
    std::vector<std::size_t> batches{8, 64};
    std::size_t dim = 4096, hidden = 4096, depth = 16, block = 16, explore_depth = 4, replay = 32, reps = 5;
};

options parse(int argc, char** argv) {
    options o;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string key = argv[i];
        const std::string value = argv[i + 1];
        if (key == "--batches") {
            o.batches.clear();
            std::size_t start = 0;
            while (start < value.size()) {
                const std::size_t comma = value.find(',', start);
                o.batches.push_back(std::stoul(value.substr(start, comma - start)));
                if (comma == std::string::npos) break;
                start = comma + 1;
            }
        } else if (key == "--dim") {
            o.dim = std::stoul(value);
        } else if (key == "--hidden") {
            o.hidden = std::stoul(value);
        } else if (key == "--depth") {
            o.depth = std::stoul(value);
        } else if (key == "--reps") {
            o.reps = std::stoul(value);
        } else {
            std::fprintf(stderr, "unknown option %s\n", key.c_str());
            std::exit(2);
        }
    }
    return o;
}

void cuda_ok(cudaError_t status, const char* what) {
    if (status != cudaSuccess) throw sams::backend_error(std::string(what) + ": " + cudaGetErrorString(status));
}

/// Milliseconds per call of f (mean over reps after one warm-up call), timed on `stream`.
double time_ms(cudaStream_t stream, std::size_t reps, const std::function<void()>& f) {
    f();
    cudaEvent_t start, stop;
    cuda_ok(cudaEventCreate(&start), "cudaEventCreate");
    cuda_ok(cudaEventCreate(&stop), "cudaEventCreate");
    cuda_ok(cudaEventRecord(start, stream), "cudaEventRecord");
    for (std::size_t r = 0; r < reps; ++r) f();
    cuda_ok(cudaEventRecord(stop, stream), "cudaEventRecord");
    cuda_ok(cudaEventSynchronize(stop), "cudaEventSynchronize");
    float ms = 0;
    cuda_ok(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime");
    (void)cudaEventDestroy(start);
    (void)cudaEventDestroy(stop);
    return static_cast<double>(ms) / static_cast<double>(reps);
}

void random_matrix(backend& be, matrix& m, std::size_t rows, std::size_t cols, sams::rng& g, double scale = 1.0) {
    std::vector<float> host(rows * cols);
    for (auto& x : host) x = static_cast<float>(scale * g.normal());
    be.upload(sams::matrix_view<const float>{host.data(), rows, cols, cols}, m);
}
void random_vector(backend& be, vector& v, std::size_t n, sams::rng& g) {
    std::vector<float> host(n);
    for (auto& x : host) x = static_cast<float>(0.5 + 0.1 * g.normal());
    be.upload(std::span<const float>(host), v);
}

sams::scheduler_config paper_config(const options& o) {
    auto c = sams::scheduler_config::paper();
    c.net.hidden = o.hidden;
    c.net.depth = o.depth;
    c.net.block_size = o.block;
    c.net.explore_depth = o.explore_depth;
    c.pool.replay_batches = o.replay;
    c.opt.early_stop_mse = 0.0;  // every update runs all its steps: fixed work to time
    return c;
}

/// FLOPs of one training phase on R rows (GEMMs only; elementwise work is not counted).
double train_flops(const options& o, std::size_t R) {
    const double r = static_cast<double>(R), d = static_cast<double>(o.dim), h = static_cast<double>(o.hidden);
    const double blocks = static_cast<double>(o.depth - 2);
    const double e = h * blocks / static_cast<double>(o.block);
    const double e_blocks = static_cast<double>(o.explore_depth - 2);
    const double f1_fwd = 2 * r * (d * h + blocks * h * h + h);
    const double f1_bwd_input = 2 * r * (blocks * h * h + h);  // no gradient w.r.t. the contexts
    const double f2_fwd = 2 * r * ((e_blocks + 1) * e * e + e);
    const double f2_bwd_input = 2 * r * (e_blocks * e * e + e);
    const double f1_step = 2 * f1_fwd + f1_bwd_input;  // forward, weight grads, input grads
    const double f2_step = 2 * f2_fwd + f2_bwd_input;
    return f1_fwd /* f2 targets of replayed rows */ + 4 * f1_step + 4 * f2_step;
}

void bench_gemm(const options& o, std::size_t B, cudaStream_t stream, double& fp32_tflops, double& tf32_tflops) {
    backend be;
    be.set_stream(stream);
    sams::rng g(1);
    const std::size_t R = (o.replay + 1) * B;
    matrix x, w, y;
    random_matrix(be, x, R, o.hidden, g);
    random_matrix(be, w, o.hidden, o.hidden, g, 0.01);
    const double flops = 2.0 * static_cast<double>(R) * static_cast<double>(o.hidden) * static_cast<double>(o.hidden);
    const auto run = [&] { be.gemm(sams::transpose::no, sams::transpose::yes, 1.0f, x, w, 0.0f, y); };
    be.set_allow_tf32(false);
    const double ms32 = time_ms(stream, 10 * o.reps, run);
    be.set_allow_tf32(true);
    const double ms_tf = time_ms(stream, 10 * o.reps, run);
    fp32_tflops = flops / (ms32 * 1e-3) / 1e12;
    tf32_tflops = flops / (ms_tf * 1e-3) / 1e12;
    std::printf("{\"bench\":\"gemm\",\"B\":%zu,\"rows\":%zu,\"k\":%zu,\"n\":%zu,\"fp32_ms\":%.4f,\"fp32_tflops\":%.2f,"
                "\"tf32_ms\":%.4f,\"tf32_tflops\":%.2f}\n",
                B, R, o.hidden, o.hidden, ms32, fp32_tflops, ms_tf, tf32_tflops);
    std::fflush(stdout);
}

void bench_train(const options& o, std::size_t B, cudaStream_t stream, bool tf32, double gemm_tflops) {
    backend be(sams::thrust_backend_options{.allow_tf32 = tf32});
    be.set_stream(stream);
    const auto cfg = paper_config(o);
    sams::rng init(7), data(8), dropout(9);
    sams::exploit_net<backend> f1(be, o.dim, cfg.net, cfg.opt, init);
    sams::explore_net<backend> f2(be, cfg.net.feature_dim(), cfg.net, cfg.opt, init);
    const std::size_t R = (o.replay + 1) * B;
    matrix x, phi;
    vector y, y2, f1_out;
    random_matrix(be, x, R, o.dim, data);
    random_vector(be, y, R, data);
    random_vector(be, y2, R, data);
    const auto phase = [&] {
        f1.predict(x, f1_out, phi);  // the replayed rows' f2 targets need the current f1
        (void)f1.train(x, y, cfg.opt.exploit_steps, dropout);
        (void)f2.train(phi, y2, cfg.opt.explore_steps);
    };
    const double ms = time_ms(stream, o.reps, phase);
    const double flops = train_flops(o, R);
    const double gemm_ms = flops / (gemm_tflops * 1e12) * 1e3;
    std::printf("{\"bench\":\"train\",\"B\":%zu,\"rows\":%zu,\"tf32\":%s,\"ms\":%.3f,\"gflop\":%.1f,\"tflops\":%.2f,"
                "\"gemm_equivalent_ms\":%.3f,\"overhead_vs_gemm\":%.3f,\"device_mib\":%.1f}\n",
                B, R, tf32 ? "true" : "false", ms, flops / 1e9, flops / (ms * 1e-3) / 1e12, gemm_ms, ms / gemm_ms,
                static_cast<double>(be.device_bytes()) / (1 << 20));
    std::fflush(stdout);
}

void bench_step(const options& o, std::size_t B, cudaStream_t stream, bool tf32) {
    auto cfg = paper_config(o);
    cfg.select.ratio = 1.0;  // K = B: each update trains on (P+1)·B rows, like the PyTorch reference
    backend be(sams::thrust_backend_options{.allow_tf32 = tf32});
    be.set_stream(stream);
    const auto t0 = std::chrono::steady_clock::now();
    sams::sams_scheduler<backend> sched(cfg, o.dim, 11, be);
    const double init_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    sams::rng g(12);
    thrust::device_vector<float> ctx(B * o.dim), a_w(B), a_l(B), r_w(B), r_l(B);
    std::vector<float> host(B * o.dim);
    sams::host_staging<float> staging;
    const auto next_batch = [&] {
        for (auto& v : host) v = static_cast<float>(g.normal());
        thrust::copy(host.begin(), host.end(), ctx.begin());
        std::vector<float> s(B);
        for (auto* dv : {&a_w, &a_l, &r_w, &r_l}) {
            for (auto& v : s) v = static_cast<float>(-40.0 + 4.0 * g.normal());
            thrust::copy(s.begin(), s.end(), dv->begin());
        }
    };
    const auto one_step = [&] {
        const sams::device_pair_batch<float> db{.policy_chosen = a_w,
                                                .policy_rejected = a_l,
                                                .reference_chosen = r_w,
                                                .reference_rejected = r_l,
                                                .contexts = sams::device_matrix(ctx, B, o.dim)};
        return sched.step(staging.stage(db, sched.backend()));
    };
    // Fill the pool with P·B rows so that every timed update replays P batches.
    for (std::size_t t = 0; t <= o.replay + 1; ++t) {
        next_batch();
        (void)one_step();
    }
    std::vector<double> ms;
    std::size_t rows = 0;
    for (std::size_t r = 0; r < o.reps; ++r) {
        next_batch();
        sched.backend().synchronize();
        const auto s0 = std::chrono::steady_clock::now();
        const auto d = one_step();
        sched.backend().synchronize();
        ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - s0).count());
        rows = d.metrics.trained_rows;
    }
    std::sort(ms.begin(), ms.end());
    std::printf("{\"bench\":\"step\",\"B\":%zu,\"tf32\":%s,\"trained_rows\":%zu,\"median_ms\":%.3f,\"min_ms\":%.3f,"
                "\"init_s\":%.2f,\"device_mib\":%.1f,\"peak_device_mib\":%.1f}\n",
                B, tf32 ? "true" : "false", rows, ms[ms.size() / 2], ms.front(), init_s,
                static_cast<double>(sched.backend().device_bytes()) / (1 << 20),
                static_cast<double>(sched.backend().peak_device_bytes()) / (1 << 20));
    std::fflush(stdout);
}

void bench_accuracy(const options& o, std::size_t B, cudaStream_t stream) {
    const auto cfg = paper_config(o);
    const std::size_t R = (o.replay + 1) * B;
    std::vector<std::vector<float>> preds;
    std::vector<double> mses;
    // fp32, then TF32, then bf16 GEMMs: the same f1, data and dropout masks.
    for (const int math : {0, 1, 2}) {
        backend be(sams::thrust_backend_options{.allow_tf32 = math == 1, .allow_bf16 = math == 2});
        be.set_stream(stream);
        sams::rng init(7), data(8), dropout(9);
        sams::exploit_net<backend> f1(be, o.dim, cfg.net, cfg.opt, init);
        matrix x, phi;
        vector y, out;
        random_matrix(be, x, R, o.dim, data);
        random_vector(be, y, R, data);
        mses.push_back(f1.train(x, y, cfg.opt.exploit_steps, dropout));
        f1.predict(x, out, phi);
        preds.emplace_back(R);
        be.download(out, std::span<float>(preds.back()));
    }
    double mean = 0, var = 0;
    for (const float p : preds[0]) mean += p;
    mean /= static_cast<double>(R);
    for (const float p : preds[0]) var += (p - mean) * (p - mean);
    const double sd = std::sqrt(var / static_cast<double>(R));
    for (const int math : {1, 2}) {
        double max_diff = 0;
        for (std::size_t i = 0; i < R; ++i)
            max_diff = std::max(max_diff, std::abs(static_cast<double>(preds[math][i]) - preds[0][i]));
        const char* name = math == 1 ? "tf32" : "bf16";
        std::printf("{\"bench\":\"%s_accuracy\",\"B\":%zu,\"rows\":%zu,\"max_abs_pred_diff\":%.3e,\"pred_sd\":%.3e,"
                    "\"max_diff_over_sd\":%.3e,\"fp32_mse\":%.6e,\"%s_mse\":%.6e}\n",
                    name, B, R, max_diff, sd, sd > 0 ? max_diff / sd : 0.0, mses[0], name, mses[math]);
    }
    std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
    const options o = parse(argc, argv);
    try {
        cudaStream_t stream = nullptr;
        cuda_ok(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
        cudaDeviceProp prop{};
        cuda_ok(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
        std::printf("{\"bench\":\"device\",\"name\":\"%s\",\"dim\":%zu,\"hidden\":%zu,\"depth\":%zu,\"replay\":%zu}\n",
                    prop.name, o.dim, o.hidden, o.depth, o.replay);
        for (const std::size_t B : o.batches) {
            double fp32 = 0, tf32 = 0;
            bench_gemm(o, B, stream, fp32, tf32);
            bench_train(o, B, stream, false, fp32);
            bench_train(o, B, stream, true, tf32);
            bench_step(o, B, stream, false);
            bench_step(o, B, stream, true);
        }
        bench_accuracy(o, o.batches.front(), stream);
        cuda_ok(cudaStreamDestroy(stream), "cudaStreamDestroy");
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_gpu_scheduler: %s\n", e.what());
        return 1;
    }
    return 0;
}
