// SamS on the GPU: a CUDA trainer keeps contexts and log-probs in device memory; the
// scheduler runs on sams::thrust_backend<float> on the trainer's stream, reads the B×D
// contexts in place, and only the per-pair log-probs are staged to the host. Prints the
// decision of a few steps. Build: nvcc -std=c++20 -arch=sm_90 -I include -isystem
// /usr/include/eigen3 examples/cuda/scheduler_on_gpu.cu -lcublas (or CMake, SAMS_BUILD_CUDA).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

#include <cuda_runtime.h>
#include <thrust/device_vector.h>
#include <thrust/iterator/counting_iterator.h>
#include <thrust/transform.h>

#include <sams/adapters/thrust.hpp>
#include <sams/backend/thrust/thrust_backend.hpp>
#include <sams/scheduler/sams_scheduler.hpp>

namespace {

// Stands in for the trainer's forward kernels: value i of a step is a hash of (salt, i)
// mapped to [shift − scale, shift + scale).
struct fake_forward {
    std::uint64_t salt;
    float shift, scale;
    __host__ __device__ float operator()(std::size_t i) const {
        std::uint64_t z = salt * 0x9E3779B97F4A7C15ULL + i;
        z = (z ^ (z >> 31)) * 0xBF58476D1CE4E5B9ULL;
        z ^= z >> 29;
        const float u = static_cast<float>(z >> 40) * 0x1.0p-24f;
        return shift + scale * (2.0f * u - 1.0f);
    }
};

void cuda_ok(cudaError_t status, const char* what) {
    if (status != cudaSuccess) throw sams::backend_error(std::string(what) + ": " + cudaGetErrorString(status));
}

void fill(thrust::device_vector<float>& v, cudaStream_t stream, std::uint64_t salt, float shift, float scale) {
    thrust::transform(thrust::cuda::par.on(stream), thrust::counting_iterator<std::size_t>(0),
                      thrust::counting_iterator<std::size_t>(v.size()), v.begin(), fake_forward{salt, shift, scale});
}

void run(cudaStream_t stream) {
    constexpr std::size_t B = 16, D = 256;
    sams::scheduler_config cfg;  // library defaults: H = 256, N = 4, ρ = 0.5
    sams::thrust_backend<float> backend;
    backend.set_stream(stream);  // the trainer's stream: the scheduler's work is ordered after its kernels
    sams::sams_scheduler<sams::thrust_backend<float>> scheduler(cfg, D, /*seed=*/42, backend);

    // What the trainer's forward passes leave on the device each step.
    thrust::device_vector<float> contexts(B * D), a_w(B), a_l(B), r_w(B), r_l(B);
    sams::host_staging<float> staging;

    for (std::uint64_t step = 0; step < 6; ++step) {
        fill(contexts, stream, 5 * step, 0.0f, 1.0f);
        fill(a_w, stream, 5 * step + 1, -40.0f, 8.0f);
        fill(a_l, stream, 5 * step + 2, -42.0f, 8.0f);
        fill(r_w, stream, 5 * step + 3, -41.0f, 2.0f);
        fill(r_l, stream, 5 * step + 4, -41.0f, 2.0f);

        const sams::device_pair_batch<float> device_batch{.policy_chosen = a_w,
                                                          .policy_rejected = a_l,
                                                          .reference_chosen = r_w,
                                                          .reference_rejected = r_l,
                                                          .contexts = sams::device_matrix(contexts, B, D)};
        const sams::pair_batch<float>& batch = staging.stage(device_batch, scheduler.backend());
        const sams::decision<float> d = scheduler.step(batch);

        std::printf("step %llu%s: selected", static_cast<unsigned long long>(step),
                    d.metrics.warmup ? " (warm-up)" : "");
        for (const std::size_t i : d.selected) std::printf(" %zu", i);
        std::printf(" | batch loss %.4f, f1 mse %.3g, f2 mse %.3g\n", d.metrics.batch_loss, d.metrics.exploit_mse,
                    d.metrics.explore_mse);
    }
    std::printf("device memory held by the scheduler: %.2f MiB (peak %.2f MiB)\n",
                static_cast<double>(scheduler.backend().device_bytes()) / (1 << 20),
                static_cast<double>(scheduler.backend().peak_device_bytes()) / (1 << 20));
    cuda_ok(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
}

}  // namespace

int main() {
    try {
        cudaStream_t stream = nullptr;
        cuda_ok(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
        run(stream);
        cuda_ok(cudaStreamDestroy(stream), "cudaStreamDestroy");
    } catch (const sams::error& e) {
        std::fprintf(stderr, "sams error: %s\n", e.what());
        return 1;
    }
    return 0;
}
