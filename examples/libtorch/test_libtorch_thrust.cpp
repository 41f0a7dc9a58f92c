// Tests of the thrust scheduler session from LibTorch: 30 steps on tensors against the Eigen
// scheduler fed the same batches through the host path (tolerances as in
// tests/thrust/test_thrust_parity.cpp), conversions giving the decision of float32
// contiguous tensors, bad inputs refused with the session unchanged, and the example's
// trainer choosing the same pairs with either scheduler backend. On thrust's CPP system the
// tensors are CPU tensors; a session built for CUDA is fed CUDA tensors.
// Torch first, then doctest through doctest_after_torch.hpp (torch defines CHECK, ...).
#include "dpo_example.hpp"
#include "sams_torch_thrust.hpp"

#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "doctest_after_torch.hpp"

#include "support/parity_checks.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <sams/backend/eigen/eigen_backend.hpp>
#include <sams/core/rng.hpp>
#include <sams/scheduler/sams_scheduler.hpp>

namespace lt = sams::libtorch;

namespace {

using sams_test::check_scores;
using sams_test::check_step_metrics;
using sams_test::compare_selection;
using sams_test::selection_match;

using eigen_scheduler = sams::sams_scheduler<sams::eigen_backend<float>>;

const bool on_cuda = lt::thrust_session::built_for_cuda();
const double score_tol = on_cuda ? 1e-3 : 1e-4;
const double mse_tol = on_cuda ? 1e-2 : 1e-3;

torch::Device session_device() {
    return on_cuda ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
}

std::string message_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const sams::invalid_argument& e) {
        return e.what();
    }
    return "(no sams::invalid_argument)";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

torch::Tensor normal(sams::rng& g, std::vector<std::int64_t> shape, double mean, double sd) {
    torch::Tensor t = torch::empty(shape, torch::kFloat);
    float* p = t.data_ptr<float>();
    for (std::int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(mean + sd * g.normal());
    return t;
}

/// A batch of CPU float32 tensors from the library's RNG (independent of torch's).
lt::batch_tensors make_batch(sams::rng& g, std::int64_t b, std::int64_t d) {
    lt::batch_tensors t;
    t.policy_chosen = normal(g, {b}, -10.0, 3.0);
    t.policy_rejected = normal(g, {b}, -10.0, 3.0);
    t.reference_chosen = normal(g, {b}, -10.0, 1.0);
    t.reference_rejected = normal(g, {b}, -10.0, 1.0);
    t.chosen_length = normal(g, {b}, 10.0, 3.0).abs().add(1.0).floor();
    t.rejected_length = normal(g, {b}, 10.0, 3.0).abs().add(1.0).floor();
    t.contexts = normal(g, {b, d}, 0.0, 2.0);
    return t;
}

lt::batch_tensors moved(const lt::batch_tensors& t, torch::Device device) {
    const auto to = [&](const torch::Tensor& x) { return x.defined() ? x.to(device) : x; };
    return {to(t.policy_chosen), to(t.policy_rejected), to(t.reference_chosen), to(t.reference_rejected),
            to(t.chosen_length), to(t.rejected_length), to(t.contexts),         to(t.ids)};
}

sams::scheduler_config parity_config() {
    sams::scheduler_config c;
    c.net.hidden = 32;
    c.net.depth = 4;
    c.net.block_size = 8;
    c.net.explore_depth = 3;
    c.net.dropout = 0.1;
    c.pool.capacity_rows = 64;
    c.pool.replay_batches = 3;
    c.opt.learning_rate = 1e-3;
    c.opt.early_stop_mse = 0.0;
    return c;
}

/// The same inputs reach the same kernels: on the host systems bit for bit.
void check_same(const sams::decision<float>& got, const sams::decision<float>& want) {
    CHECK(got.selected == want.selected);
    CHECK(got.loss == want.loss);
    if (on_cuda)
        check_scores(got, want, score_tol);
    else
        CHECK(got.score == want.score);
}

}  // namespace

TEST_CASE("thrust session: 30 steps on tensors agree with the Eigen scheduler on the host path") {
    const std::int64_t b = 16, d = 12;
    const std::size_t steps = 30;
    const auto cfg = parity_config();
    eigen_scheduler eigen(cfg, static_cast<std::size_t>(d), 7);
    lt::thrust_session session(cfg, static_cast<std::size_t>(d), 7);
    CHECK(session.context_dim() == static_cast<std::size_t>(d));
    sams::rng g(99);
    sams::decision<float> dt, de;
    std::size_t separated = 0, steady = 0;
    for (std::size_t t = 0; t < steps; ++t) {
        CAPTURE(t);
        const lt::batch_tensors host = make_batch(g, b, d);
        const lt::batch_tensors dev = moved(host, session_device());
        {
            // float32 contiguous tensors are read in place: nothing converted, contexts not copied.
            const lt::device_batch raw(dev);
            CHECK_FALSE(raw.copied());
            CHECK(raw.view().contexts == dev.contexts.data_ptr<float>());
            CHECK(raw.view().policy_chosen.data == dev.policy_chosen.data_ptr<float>());
        }
        const lt::host_batch hb(host);
        eigen.step(hb.view(), de);
        lt::thrust_step(session, dev, dt);

        check_step_metrics(dt, de, score_tol, mse_tol);
        const auto match = compare_selection(dt, de, score_tol, t);
        separated += match == selection_match::separated ? 1 : 0;
        if (match == selection_match::diverged) break;
        // Weights and gradients come from the staged scalars on the host: identical.
        CHECK(dt.weight == de.weight);
        CHECK(dt.d_policy_chosen == de.d_policy_chosen);
        CHECK(dt.d_policy_rejected == de.d_policy_rejected);
        if (t == 20) steady = session.device_bytes();
        if (t > 20) CHECK(session.device_bytes() == steady);
    }
    CHECK(separated >= 20);
    CHECK(session.steps() == steps);
    CHECK(steady > 0);
    CHECK(session.peak_device_bytes() >= steady);

    // The checkpoint is the scheduler's: resumed on Eigen, the next step agrees again.
    auto resumed = eigen_scheduler::deserialize(session.serialize());
    const lt::batch_tensors host = make_batch(g, b, d);
    lt::thrust_step(session, moved(host, session_device()), dt);
    const lt::host_batch hb(host);
    resumed.step(hb.view(), de);
    check_scores(dt, de, score_tol);
    CHECK(dt.selected == de.selected);
    auto twin = lt::thrust_session::deserialize(session.serialize());
    CHECK(twin.steps() == session.steps());
    CHECK(twin.serialize() == session.serialize());
}

TEST_CASE(
    "thrust session: float64, bfloat16, integer and strided tensors give float32 contiguous decisions") {
    const std::int64_t b = 8, d = 6;
    const auto cfg = parity_config();
    const auto dim = static_cast<std::size_t>(d);
    lt::thrust_session plain(cfg, dim, 3), f64(cfg, dim, 3), bf16(cfg, dim, 3), strided(cfg, dim, 3);
    sams::rng g(5);
    sams::decision<float> dp, d64, dbf, dst;
    const torch::Device dev = session_device();
    for (int t = 0; t < 8; ++t) {
        CAPTURE(t);
        // Values exactly representable in bfloat16, so that every variant holds the same numbers.
        lt::batch_tensors base = make_batch(g, b, d);
        for (torch::Tensor* x : {&base.policy_chosen, &base.policy_rejected, &base.reference_chosen,
                                 &base.reference_rejected, &base.contexts})
            *x = x->to(torch::kBFloat16).to(torch::kFloat);
        lt::batch_tensors p = moved(base, dev);
        lt::thrust_step(plain, p, dp);

        lt::batch_tensors v = p;
        for (torch::Tensor* x : {&v.policy_chosen, &v.policy_rejected, &v.reference_chosen,
                                 &v.reference_rejected, &v.chosen_length, &v.rejected_length, &v.contexts})
            *x = x->to(torch::kDouble);
        CHECK(lt::device_batch(v).copied());
        lt::thrust_step(f64, v, d64);
        check_same(d64, dp);

        v = p;
        for (torch::Tensor* x :
             {&v.policy_chosen, &v.policy_rejected, &v.reference_chosen, &v.reference_rejected, &v.contexts})
            *x = x->to(torch::kBFloat16);
        v.chosen_length = v.chosen_length.to(torch::kInt);
        v.rejected_length = v.rejected_length.to(torch::kLong);
        lt::thrust_step(bf16, v, dbf);
        check_same(dbf, dp);

        // Log-probs interleaved in a [2B] tensor (stride 2), a reference column of a [B, 2]
        // tensor, contexts with a row stride (read in place, NaN padding never read) on even
        // steps and transposed storage (column stride B, copied) on odd ones.
        v = p;
        v.policy_chosen =
            torch::stack({p.policy_chosen, p.policy_rejected}, 1).reshape({2 * b}).slice(0, 0, 2 * b, 2);
        v.policy_rejected =
            torch::stack({p.policy_chosen, p.policy_rejected}, 1).reshape({2 * b}).slice(0, 1, 2 * b, 2);
        v.reference_chosen = torch::stack({p.reference_chosen, p.reference_rejected}, 1).select(1, 0);
        CHECK_FALSE(v.policy_chosen.is_contiguous());
        CHECK_FALSE(v.reference_chosen.is_contiguous());
        if (t % 2 == 0) {
            v.contexts =
                torch::cat({p.contexts, torch::full({b, 3}, NAN, p.contexts.options())}, 1).narrow(1, 0, d);
            const lt::device_batch raw(v);
            CHECK(raw.view().contexts == v.contexts.data_ptr<float>());  // row stride D + 3, no copy
            CHECK(raw.view().row_stride == static_cast<std::size_t>(d + 3));
        } else {
            v.contexts = p.contexts.t().contiguous().t();
            CHECK(lt::device_batch(v).copied());
        }
        lt::thrust_step(strided, v, dst);
        check_same(dst, dp);
    }
}

TEST_CASE("thrust session: bad tensors throw naming the argument and leave the session unchanged") {
    const std::int64_t b = 8, d = 6;
    const auto cfg = parity_config();
    lt::thrust_session session(cfg, static_cast<std::size_t>(d), 11),
        twin(cfg, static_cast<std::size_t>(d), 11);
    sams::rng g(21);
    sams::decision<float> out, twin_out;
    for (int t = 0; t < 3; ++t) {
        const lt::batch_tensors good = moved(make_batch(g, b, d), session_device());
        lt::thrust_step(session, good, out);
        lt::thrust_step(twin, good, twin_out);
    }
    const auto before = session.serialize();
    const lt::batch_tensors good = moved(make_batch(g, b, d), session_device());
    const torch::Device dev = session_device();
    const auto expect = [&](const std::function<void(lt::batch_tensors&)>& spoil, const std::string& name,
                            const std::string& what) {
        CAPTURE(name);
        CAPTURE(what);
        lt::batch_tensors bad = good;
        spoil(bad);
        const std::string m = message_of([&] { lt::thrust_step(session, bad, out); });
        CAPTURE(m);
        CHECK(contains(m, name));
        CHECK(contains(m, what));
        CHECK(session.serialize() == before);
        CHECK(session.steps() == 3);
    };
    expect([](lt::batch_tensors& x) { x.policy_chosen = torch::Tensor(); }, "policy_chosen", "undefined");
    expect(
        [&](lt::batch_tensors& x) { x.policy_rejected = torch::zeros({b + 1}, x.policy_chosen.options()); },
        "policy_rejected", "expected [8]");
    expect([](lt::batch_tensors& x) { x.reference_chosen = x.reference_chosen.unsqueeze(1); },
           "reference_chosen", "expected [8]");
    expect([](lt::batch_tensors& x) { x.reference_rejected = torch::Tensor(); }, "reference_rejected",
           "undefined");
    expect([](lt::batch_tensors& x) { x.chosen_length = x.chosen_length.to(torch::kBool); }, "chosen_length",
           "integer count");
    expect([](lt::batch_tensors& x) { x.contexts = x.contexts.narrow(0, 0, 7); }, "contexts",
           "expected [8, D]");
    expect(
        [](lt::batch_tensors& x) {
            x.contexts = torch::cat({x.contexts, x.contexts.narrow(1, 0, 1)}, 1);
        },
        "contexts", "context_dim 6");
    expect([](lt::batch_tensors& x) { x.contexts = x.contexts.to(torch::kInt); }, "contexts",
           "floating type");
    expect([](lt::batch_tensors& x) { x.contexts = torch::Tensor(); }, "contexts", "undefined");
    expect([](lt::batch_tensors& x) { x.ids = torch::arange(8, torch::kInt); }, "ids", "int64");
    expect(
        [](lt::batch_tensors& x) {
            x.contexts = x.contexts.clone();
            x.contexts.index_put_({3, 2}, NAN);
        },
        "contexts", "NaN");
    // A tensor on another device type: meta tensors exist without any hardware.
    const torch::Device meta(torch::kMeta);
    expect(
        [&](lt::batch_tensors& x) {
            x.contexts = torch::empty({b, d}, torch::TensorOptions().device(meta));
        },
        "contexts", "expected " + dev.str() + " like policy_chosen");
    expect(
        [&](lt::batch_tensors& x) {
            x.rejected_length = torch::empty({b}, torch::TensorOptions().device(meta));
        },
        "rejected_length", "is on device meta");
    expect([&](lt::batch_tensors& x) { x = moved(good, meta); }, "policy_chosen",
           on_cuda ? "expected a CUDA tensor" : "expected a CPU tensor");
    if (on_cuda)
        expect([](lt::batch_tensors& x) { x.policy_chosen = x.policy_chosen.cpu(); }, "policy_chosen",
               "expected a CUDA tensor");

    // The raw boundary checks on its own (for callers that do not come from tensors).
    {
        const lt::device_batch raw(good);
        lt::raw_device_batch r = raw.view();
        r.policy_rejected.size = static_cast<std::size_t>(b - 1);
        CHECK_THROWS_AS(session.step(r, out), sams::invalid_argument);
        r = raw.view();
        r.reference_chosen.data = nullptr;
        CHECK(contains(message_of([&] { session.step(r, out); }), "reference_chosen"));
        r = raw.view();
        r.contexts = nullptr;
        CHECK(contains(message_of([&] { session.step(r, out); }), "contexts"));
        r = raw.view();
        r.cols = static_cast<std::size_t>(d - 1);
        CHECK_THROWS_AS(session.step(r, out), sams::invalid_argument);
        CHECK(session.serialize() == before);
        CHECK(session.steps() == 3);
    }

    // A session is made for the device type it was built for.
    const std::string m = message_of([&] {
        (void)lt::make_thrust_session(cfg, static_cast<std::size_t>(d), 1, torch::Device(torch::kMeta));
    });
    CHECK(contains(m, "device is meta, expected " + std::string(on_cuda ? "cuda" : "cpu")));
    CHECK(lt::make_thrust_session(cfg, static_cast<std::size_t>(d), 11, dev).serialize() ==
          lt::thrust_session(cfg, static_cast<std::size_t>(d), 11).serialize());

    // The next good step is the one a twin that never saw the bad batches takes.
    lt::thrust_step(session, good, out);
    lt::thrust_step(twin, good, twin_out);
    check_same(out, twin_out);
    CHECK(session.serialize() == twin.serialize());
}

TEST_CASE(
    "the example's trainer chooses the same pairs with the thrust session as with the Eigen scheduler") {
    dpo_demo::run_config cfg;
    cfg.prompt_length = 4;
    cfg.train_pairs = 128;
    cfg.test_pairs = 32;
    cfg.model.d_model = 16;
    cfg.model.heads = 2;
    cfg.model.mlp = 32;
    cfg.sft_steps = 5;
    cfg.sft_batch = 16;
    cfg.batch = 8;
    cfg.scheduler_net.hidden = 32;
    cfg.replay_batches = 2;
    cfg.device = session_device();
    CHECK(cfg.resolved_scheduler_backend() ==
          (on_cuda ? dpo_demo::scheduler_backend_kind::thrust : dpo_demo::scheduler_backend_kind::eigen));
    torch::manual_seed(1);
    sams::rng g(1, 1);
    const auto train = dpo_demo::make_pairs(cfg.train_pairs, cfg.prompt_length, 0.25, g);
    auto sft = std::make_shared<dpo_demo::tiny_lm>(cfg.model);
    sft->to(cfg.device);
    sams::rng sg(1, 2);
    CHECK(std::isfinite(dpo_demo::train_sft(*sft, cfg, sg)));

    for (const char* name : {"sams", "sams-lowmem"}) {
        CAPTURE(name);
        const auto spec = dpo_demo::method_spec::parse(name);
        REQUIRE(spec.has_value());
        dpo_demo::run_config ce = cfg, ct = cfg;
        ce.scheduler_backend = dpo_demo::scheduler_backend_kind::eigen;
        ct.scheduler_backend = dpo_demo::scheduler_backend_kind::thrust;
        dpo_demo::dpo_trainer eigen(ce, *spec, *sft, 5), thrust(ct, *spec, *sft, 5);
        CHECK_FALSE(eigen.uses_thrust_session());
        REQUIRE(thrust.uses_thrust_session());
        for (int step = 0; step < 6; ++step) {
            CAPTURE(step);
            const dpo_demo::step_report re = eigen.step(train);
            const dpo_demo::step_report rt = thrust.step(train);
            // Eigen's extractor sums in double on the host, device_mean_pool in float: the
            // contexts agree to float rounding, the scores to score_tol.
            check_scores(rt.decision, re.decision, score_tol);
            if (compare_selection(rt.decision, re.decision, score_tol, static_cast<std::size_t>(step)) ==
                selection_match::diverged)
                break;
            CHECK(rt.loss == doctest::Approx(re.loss).epsilon(1e-5));
        }
        CHECK(thrust.session()->steps() == 6);
    }
    // The other methods never use the session, whatever the backend says.
    dpo_demo::run_config ct = cfg;
    ct.scheduler_backend = dpo_demo::scheduler_backend_kind::thrust;
    CHECK_FALSE(
        dpo_demo::dpo_trainer(ct, *dpo_demo::method_spec::parse("dpo"), *sft, 5).uses_thrust_session());
}
