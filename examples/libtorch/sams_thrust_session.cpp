// The thrust session's implementation: the only file of the LibTorch example that includes
// thrust. g++ compiles it for thrust's CPP system (target sams_thrust_host); nvcc compiles it
// for the CUDA system through sams_thrust_session.cu. It must not include torch.
#include "sams_thrust_session.hpp"

#include <sams/adapters/thrust.hpp>
#include <sams/backend/thrust/config.hpp>
#include <sams/backend/thrust/thrust_backend.hpp>
#include <sams/scheduler/sams_scheduler.hpp>

#include <utility>

namespace sams::libtorch {

namespace {

using backend_type = thrust_backend<float>;
using scheduler_type = sams_scheduler<backend_type>;

backend_type make_backend(const thrust_session_options& options) {
    backend_type be(
        thrust_backend_options{.allow_tf32 = options.allow_tf32, .allow_bf16 = options.allow_bf16});
#if SAMS_THRUST_CUDA
    be.set_stream(static_cast<cudaStream_t>(options.stream));
#endif
    return be;
}

device_array<float> array_of(const raw_array& a) { return {a.data, a.size}; }

}  // namespace

struct thrust_session::impl {
    explicit impl(scheduler_type s) : scheduler(std::move(s)) {}
    scheduler_type scheduler;
    host_staging<float> staging;  // one pinned buffer (CUDA) reused by every step
};

thrust_session::thrust_session(const scheduler_config& config, std::size_t context_dim, std::uint64_t seed,
                               const thrust_session_options& options)
    : impl_(std::make_unique<impl>(scheduler_type(config, context_dim, seed, make_backend(options)))) {}

thrust_session::thrust_session(std::unique_ptr<impl> p) noexcept : impl_(std::move(p)) {}
thrust_session::thrust_session(thrust_session&&) noexcept = default;
thrust_session& thrust_session::operator=(thrust_session&&) noexcept = default;
thrust_session::~thrust_session() = default;

bool thrust_session::built_for_cuda() noexcept { return SAMS_THRUST_CUDA != 0; }

void thrust_session::step(const raw_device_batch& batch, decision<float>& out) {
    const device_pair_batch<float> db{.policy_chosen = array_of(batch.policy_chosen),
                                      .policy_rejected = array_of(batch.policy_rejected),
                                      .reference_chosen = array_of(batch.reference_chosen),
                                      .reference_rejected = array_of(batch.reference_rejected),
                                      .chosen_length = array_of(batch.chosen_length),
                                      .rejected_length = array_of(batch.rejected_length),
                                      .contexts = {batch.contexts, batch.rows, batch.cols, batch.row_stride},
                                      .ids = batch.ids};
    // Staging writes only the session's own buffer; the scheduler checks the staged batch
    // before it changes any state, so a bad batch leaves the scheduler as it was.
    const pair_batch<float>& staged = impl_->staging.stage(db, impl_->scheduler.backend());
    impl_->scheduler.step(staged, out);
}

void thrust_session::set_stream(void* stream) {
#if SAMS_THRUST_CUDA
    impl_->scheduler.backend().set_stream(static_cast<cudaStream_t>(stream));
#else
    (void)stream;
#endif
}

std::vector<std::uint8_t> thrust_session::serialize() const { return impl_->scheduler.serialize(); }

thrust_session thrust_session::deserialize(std::span<const std::uint8_t> bytes,
                                           const thrust_session_options& options) {
    return thrust_session(std::make_unique<impl>(scheduler_type::deserialize(bytes, make_backend(options))));
}

const scheduler_config& thrust_session::config() const noexcept { return impl_->scheduler.config(); }
std::size_t thrust_session::context_dim() const noexcept { return impl_->scheduler.context_dim(); }
std::uint64_t thrust_session::steps() const noexcept { return impl_->scheduler.steps(); }
std::size_t thrust_session::device_bytes() const noexcept {
    return impl_->scheduler.backend().device_bytes();
}
std::size_t thrust_session::peak_device_bytes() const noexcept {
    return impl_->scheduler.backend().peak_device_bytes();
}

}  // namespace sams::libtorch
