// Tests of the LibTorch adapter and of the example's DPO plumbing: zero-copy views, conversion
// and error messages; the torch loss family against the library's; the two ways of applying a
// decision giving the same parameter gradients; and a few steps of every method.
// Torch first, then doctest through doctest_after_torch.hpp (torch defines CHECK, ...).
#include "dpo_example.hpp"

#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "doctest_after_torch.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <sams/loss/evaluate.hpp>

namespace lt = sams::libtorch;

namespace {

torch::Tensor grid(std::vector<std::int64_t> shape, double scale = 1.0) {
    std::int64_t n = 1;
    for (const auto s : shape) n *= s;
    // Distinct, exactly representable values (multiples of 1/64) so comparisons can be exact.
    return (torch::arange(n, torch::kFloat).remainder(97.0) - 48.0).div(64.0).mul(scale).view(shape);
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

lt::batch_tensors random_batch(std::int64_t b, bool grad) {
    lt::batch_tensors t;
    t.policy_chosen = torch::randn({b}).mul(3.0).sub(10.0).set_requires_grad(grad);
    t.policy_rejected = torch::randn({b}).mul(3.0).sub(10.0).set_requires_grad(grad);
    t.reference_chosen = torch::randn({b}).mul(3.0).sub(10.0);
    t.reference_rejected = torch::randn({b}).mul(3.0).sub(10.0);
    t.chosen_length = torch::randint(1, 20, {b}, torch::kLong);
    t.rejected_length = torch::randint(1, 20, {b}, torch::kLong);
    return t;
}

dpo_demo::run_config tiny_config() {
    dpo_demo::run_config c;
    c.prompt_length = 4;
    c.train_pairs = 128;
    c.test_pairs = 32;
    c.model.d_model = 16;
    c.model.heads = 2;
    c.model.mlp = 32;
    c.sft_steps = 5;
    c.sft_batch = 16;
    c.batch = 8;
    c.scheduler_net.hidden = 32;
    c.replay_batches = 2;
    return c;
}

}  // namespace

TEST_CASE("host_batch reads contiguous float32 CPU tensors in place") {
    lt::batch_tensors t = random_batch(6, true);
    t.chosen_length = t.chosen_length.to(torch::kFloat);
    t.rejected_length = t.rejected_length.to(torch::kFloat);
    t.contexts = grid({6, 5});
    t.ids = torch::arange(100, 106, torch::kLong);
    const lt::host_batch hb(t);
    const auto& v = hb.view();
    CHECK_FALSE(hb.copied());
    CHECK(v.size() == 6);
    CHECK(v.policy_chosen.data() == t.policy_chosen.data_ptr<float>());
    CHECK(v.reference_rejected.data() == t.reference_rejected.data_ptr<float>());
    CHECK(v.chosen_length.data() == t.chosen_length.data_ptr<float>());
    CHECK(v.contexts.data == t.contexts.data_ptr<float>());
    CHECK(v.contexts.rows == 6);
    CHECK(v.contexts.cols == 5);
    CHECK(v.contexts(4, 3) == t.contexts[4][3].item<float>());
    CHECK(v.ids[5] == 105);
}

TEST_CASE("host_batch converts bfloat16, strided and integer tensors once") {
    const torch::Tensor base = grid({2, 6});
    lt::batch_tensors t;
    t.policy_chosen = base[0].to(torch::kBFloat16);  // multiples of 1/64 in [-0.75, 0.75]: exact in bf16
    t.policy_rejected = base.select(1, 1).repeat({3});
    t.reference_chosen = base[1].to(torch::kDouble);
    t.reference_rejected = base[1].flip({0});
    t.chosen_length = torch::arange(1, 7, torch::kInt);
    t.rejected_length = torch::arange(1, 7, torch::kLong);
    t.contexts = grid({4, 6}).t();  // [6, 4] with column stride 6: copied to unit column stride
    const lt::host_batch hb(t);
    const auto& v = hb.view();
    CHECK(hb.copied());
    for (std::int64_t i = 0; i < 6; ++i) {
        const auto u = static_cast<std::size_t>(i);
        CHECK(v.policy_chosen[u] == base[0][i].item<float>());
        CHECK(v.reference_chosen[u] == base[1][i].item<float>());
        CHECK(v.chosen_length[u] == static_cast<float>(i + 1));
        CHECK(v.rejected_length[u] == static_cast<float>(i + 1));
        for (std::int64_t k = 0; k < 4; ++k)
            CHECK(v.contexts(u, static_cast<std::size_t>(k)) == grid({4, 6})[k][i].item<float>());
    }

    // A non-contiguous [B] view: the strided column of a matrix.
    lt::batch_tensors s;
    const torch::Tensor m = grid({5, 3});
    s.policy_chosen = m.select(1, 2);
    s.policy_rejected = m.select(1, 0);
    const lt::host_batch hs(s);
    CHECK(hs.copied());
    CHECK(hs.view().policy_chosen[4] == m[4][2].item<float>());
}

TEST_CASE("host_batch errors name the tensor and what was expected") {
    lt::batch_tensors t = random_batch(4, false);
    auto bad = t;
    bad.policy_chosen = torch::zeros({4, 2});
    std::string msg = message_of([&] { lt::host_batch hb(bad); });
    CHECK(contains(msg, "policy_chosen"));
    CHECK(contains(msg, "[4, 2]"));
    CHECK(contains(msg, "expected [B]"));

    bad = t;
    bad.reference_rejected = torch::zeros({3});
    msg = message_of([&] { lt::host_batch hb(bad); });
    CHECK(contains(msg, "reference_rejected"));
    CHECK(contains(msg, "expected [4]"));

    bad = t;
    bad.policy_rejected = torch::zeros({4}, torch::kLong);
    msg = message_of([&] { lt::host_batch hb(bad); });
    CHECK(contains(msg, "policy_rejected"));
    CHECK(contains(msg, "dtype Long"));

    bad = t;
    bad.contexts = torch::zeros({5, 3});
    msg = message_of([&] { lt::host_batch hb(bad); });
    CHECK(contains(msg, "contexts"));
    CHECK(contains(msg, "expected [4, D]"));

    bad = t;
    bad.ids = torch::zeros({4}, torch::kInt);
    msg = message_of([&] { lt::host_batch hb(bad); });
    CHECK(contains(msg, "ids"));
    CHECK(contains(msg, "int64"));
}

TEST_CASE("split_log_probs views the halves of a concatenated forward") {
    const torch::Tensor a = grid({8}), r = grid({8}, 2.0);
    const lt::batch_tensors t = lt::split_log_probs(a, r);
    CHECK(t.policy_chosen.data_ptr<float>() == a.data_ptr<float>());
    CHECK(t.policy_rejected[1].item<float>() == a[5].item<float>());
    CHECK(t.reference_rejected[3].item<float>() == r[7].item<float>());
    const lt::batch_tensors i = lt::split_log_probs(a, torch::Tensor(), sams::pair_order::interleaved);
    CHECK(i.policy_chosen[2].item<float>() == a[4].item<float>());
    CHECK(i.policy_rejected[2].item<float>() == a[5].item<float>());
    CHECK_FALSE(i.reference_chosen.defined());
    CHECK(contains(message_of([&] { (void)lt::split_log_probs(grid({7}), r); }), "expected [2B]"));
    CHECK(contains(message_of([&] { (void)lt::split_log_probs(a, grid({6})); }), "reference log-probs"));
}

TEST_CASE("hidden_states views a stacked tensor and a per-layer list without copies") {
    const std::int64_t layers = 3, b = 2, tokens = 4, dim = 5;
    const torch::Tensor stacked = grid({layers, 2 * b, tokens, dim});
    const lt::hidden_states hs(stacked);
    CHECK_FALSE(hs.copied());
    CHECK(hs.view().data == stacked.data_ptr<float>());

    // A pair-major tensor [2B][L][T][d] permuted to [L][2B][T][d]: read through its strides.
    const torch::Tensor pair_major = grid({2 * b, layers, tokens, dim});
    const lt::hidden_states hp(pair_major.permute({1, 0, 2, 3}));
    CHECK_FALSE(hp.copied());

    std::vector<torch::Tensor> list;
    for (std::int64_t l = 0; l < layers; ++l) list.push_back(grid({2 * b, tokens, dim}, static_cast<double>(l + 1)));
    const lt::hidden_states hl(list);
    CHECK_FALSE(hl.copied());
    CHECK(hl.view().layer_data[2] == list[2].data_ptr<float>());

    const auto s = hs.split();
    const auto sp = hp.split();
    const auto sl = hl.split();
    for (std::size_t l = 0; l < 3; ++l)
        for (std::size_t p = 0; p < 2; ++p)
            for (std::size_t t = 0; t < 4; ++t)
                for (std::size_t k = 0; k < 5; ++k) {
                    const auto L = static_cast<std::int64_t>(l), P = static_cast<std::int64_t>(p),
                               T = static_cast<std::int64_t>(t), K = static_cast<std::int64_t>(k);
                    CHECK(s.chosen(l, p, t, k) == stacked[L][P][T][K].item<float>());
                    CHECK(s.rejected(l, p, t, k) == stacked[L][P + b][T][K].item<float>());
                    CHECK(sp.rejected(l, p, t, k) == pair_major[P + b][L][T][K].item<float>());
                    CHECK(sl.rejected(l, p, t, k) == list[l][P + b][T][K].item<float>());
                }

    // Layers with different strides (one is a transposed view): made contiguous, values kept.
    std::vector<torch::Tensor> mixed{grid({2 * b, tokens, dim}), grid({2 * b, dim, tokens}, 2.0).transpose(1, 2)};
    const lt::hidden_states hm(mixed);
    CHECK(hm.copied());
    CHECK(hm.split().rejected(1, 1, 3, 4) == mixed[1][1 + b][3][4].item<float>());
    CHECK(hm.split().chosen(0, 0, 2, 1) == mixed[0][0][2][1].item<float>());

    // Interleaved pairs: chosen at even rows, rejected at odd rows.
    const lt::hidden_states hi(stacked, sams::pair_order::interleaved);
    CHECK(hi.split().rejected(1, 1, 2, 3) == stacked[1][3][2][3].item<float>());

    // bfloat16 is converted once; a shape error names the layer.
    const lt::hidden_states hb(stacked.to(torch::kBFloat16));
    CHECK(hb.copied());
    list[1] = torch::zeros({2 * b, tokens + 1, dim});
    const std::string msg = message_of([&] { lt::hidden_states bad(list); });
    CHECK(contains(msg, "layer 1"));
    CHECK(contains(msg, "like layer 0"));
    CHECK(contains(message_of([&] { lt::hidden_states bad(grid({3, 4})); }), "expected [layers, 2B, T, d]"));
}

TEST_CASE("token_mask reads bool masks in place and converts other types") {
    const torch::Tensor m = torch::tensor({1, 1, 0, 0, 1, 1, 1, 0}, torch::kLong).view({4, 2}).ne(0);
    const lt::token_mask tm(m);
    CHECK_FALSE(tm.copied());
    const lt::token_mask tf(m.to(torch::kFloat));
    CHECK(tf.copied());
    const auto s = tf.split();
    CHECK(s.chosen.valid(0, 1));
    CHECK_FALSE(s.chosen.valid(1, 0));
    CHECK(s.rejected.valid(1, 0));
    CHECK_FALSE(s.rejected.valid(1, 1));
}

TEST_CASE("the library's extractor and device_mean_pool agree with a plain torch masked mean") {
    const std::int64_t layers = 3, b = 4, tokens = 5, dim = 6;
    torch::manual_seed(3);
    std::vector<torch::Tensor> hidden;
    for (std::int64_t l = 0; l < layers; ++l) hidden.push_back(torch::randn({2 * b, tokens, dim}));
    torch::Tensor mask = torch::rand({2 * b, tokens}).gt(0.4);
    mask.select(1, 0).fill_(true);  // every sequence has a valid token
    hidden[1][0][1].fill_(std::numeric_limits<float>::quiet_NaN());  // padding may hold anything
    mask[0][1] = false;

    // Reference: per layer, masked mean over tokens, straight from the definition.
    const auto masked_mean = [&](std::int64_t l, std::int64_t row) {
        torch::Tensor sum = torch::zeros({dim}, torch::kDouble);
        double n = 0;
        for (std::int64_t t = 0; t < tokens; ++t)
            if (mask[row][t].item<bool>()) sum += hidden[static_cast<std::size_t>(l)][row][t].to(torch::kDouble), n += 1;
        return sum / n;
    };

    struct variant {
        sams::context_combine combine;
        sams::layer_reduction reduce;
        std::vector<std::size_t> layers;
    };
    const std::vector<variant> variants{
        {sams::context_combine::average, sams::layer_reduction::flatten_layers, {}},
        {sams::context_combine::concatenate, sams::layer_reduction::flatten_layers, {}},
        {sams::context_combine::concatenate, sams::layer_reduction::flatten_layers, {0, 2}},
        {sams::context_combine::concatenate, sams::layer_reduction::mean_layers, {}},
        {sams::context_combine::average, sams::layer_reduction::last_layer, {0, 1}},
        {sams::context_combine::concatenate, sams::layer_reduction::random_projection, {}}};
    for (const variant& v : variants) {
        sams::mean_pool_options o;
        o.combine = v.combine;
        o.reduce = v.reduce;
        o.layers = v.layers;
        o.projection_dim = 7;
        o.seed = 11;
        sams::mean_pool_extractor<float> extractor(o);
        const lt::hidden_states hs(hidden);
        const lt::token_mask tm(mask);
        const auto h = hs.split();
        const auto m = tm.split();
        const auto ctx = extractor.extract(h.chosen, h.rejected, m.chosen, m.rejected);

        lt::device_mean_pool pool(o);
        const torch::Tensor dev = pool(hidden, mask);
        REQUIRE(dev.size(0) == b);
        REQUIRE(static_cast<std::size_t>(dev.size(1)) == ctx.cols);

        // Expected rows from the per-layer masked means.
        for (std::int64_t p = 0; p < b; ++p) {
            std::vector<torch::Tensor> per_layer;
            for (std::int64_t l = 0; l < layers; ++l) {
                if (!v.layers.empty() &&
                    std::find(v.layers.begin(), v.layers.end(), static_cast<std::size_t>(l)) == v.layers.end())
                    continue;
                const torch::Tensor c = masked_mean(l, p), r = masked_mean(l, p + b);
                per_layer.push_back(v.combine == sams::context_combine::average ? (c + r) / 2 : torch::cat({c, r}));
            }
            torch::Tensor expected;
            if (v.reduce == sams::layer_reduction::mean_layers) expected = torch::stack(per_layer).mean(0);
            else if (v.reduce == sams::layer_reduction::last_layer) expected = per_layer.back();
            else expected = torch::cat(per_layer);
            if (v.reduce == sams::layer_reduction::random_projection) {
                const auto r = extractor.projection();
                const torch::Tensor proj = torch::from_blob(const_cast<float*>(r.data),
                                                            {static_cast<std::int64_t>(r.rows),
                                                             static_cast<std::int64_t>(r.cols)},
                                                            torch::kFloat)
                                               .to(torch::kDouble);
                expected = expected.matmul(proj);
            }
            for (std::int64_t k = 0; k < expected.size(0); ++k) {
                const double e = expected[k].item<double>();
                CHECK(ctx(static_cast<std::size_t>(p), static_cast<std::size_t>(k)) == doctest::Approx(e).epsilon(1e-5));
                CHECK(dev[p][k].item<double>() == doctest::Approx(e).epsilon(1e-5));
            }
        }
    }
}

TEST_CASE("pair_losses matches the library's loss family, values and derivatives") {
    torch::manual_seed(5);
    for (const auto kind : {sams::loss_kind::sigmoid, sams::loss_kind::robust, sams::loss_kind::ipo,
                            sams::loss_kind::hinge, sams::loss_kind::sigmoid_norm, sams::loss_kind::simpo,
                            sams::loss_kind::nca_pair, sams::loss_kind::apo_zero, sams::loss_kind::sppo_hard}) {
        for (const bool variant : {false, true}) {
            CAPTURE(static_cast<int>(kind));
            CAPTURE(variant);
            sams::loss_config lc;
            lc.kind = kind;
            lc.beta = variant ? 0.5 : 0.1;
            lc.label_smoothing = variant ? 0.2 : 0.0;
            lc.length_normalize = variant;
            lt::batch_tensors t = random_batch(16, true);
            const lt::host_batch hb(t);
            const sams::pair_stats<float> st = sams::evaluate_loss(lc, hb.view());

            const torch::Tensor l = lt::pair_losses(lc, t);
            l.sum().backward();
            for (std::int64_t i = 0; i < 16; ++i) {
                const auto u = static_cast<std::size_t>(i);
                CHECK(l[i].item<double>() == doctest::Approx(st.loss[u]).epsilon(2e-5));
                CHECK(t.policy_chosen.grad()[i].item<double>() ==
                      doctest::Approx(st.d_policy_chosen[u]).epsilon(2e-5).scale(1e-3));
                CHECK(t.policy_rejected.grad()[i].item<double>() ==
                      doctest::Approx(st.d_policy_rejected[u]).epsilon(2e-5).scale(1e-3));
            }
        }
    }
}

TEST_CASE("weighted_loss and injected gradients give the closed-form DPO gradient") {
    // Leaf log-probs: ∂(Σ w ℓ)/∂a_w,i = −w_i β σ(−β h_i) for the sigmoid loss, 0 off the selection.
    lt::batch_tensors t = random_batch(10, true);
    sams::loss_config lc;
    lc.beta = 0.3;
    sams::selection_config sel;
    sel.ratio = 0.4;
    sams::uniform_selector<float> chooser(lc, sel, 9);
    const lt::host_batch hb(t);
    const sams::decision<float> d = chooser.step(hb.view());
    REQUIRE(d.selected.size() == 4);

    lt::weighted_loss(lc, d, t).backward();
    const torch::Tensor g_loss_w = t.policy_chosen.grad().clone(), g_loss_l = t.policy_rejected.grad().clone();
    t.policy_chosen.grad().zero_();
    t.policy_rejected.grad().zero_();
    lt::backward(d, t.policy_chosen, t.policy_rejected);
    for (std::int64_t i = 0; i < 10; ++i) {
        const auto u = static_cast<std::size_t>(i);
        const double h = (t.policy_chosen[i].item<double>() - t.reference_chosen[i].item<double>()) -
                         (t.policy_rejected[i].item<double>() - t.reference_rejected[i].item<double>());
        const double w = d.mask[u] ? 1.0 / 4.0 : 0.0;
        const double expected = -w * 0.3 / (1.0 + std::exp(0.3 * h));
        CHECK(g_loss_w[i].item<double>() == doctest::Approx(expected).epsilon(1e-5));
        CHECK(g_loss_l[i].item<double>() == doctest::Approx(-expected).epsilon(1e-5));
        CHECK(t.policy_chosen.grad()[i].item<double>() == doctest::Approx(expected).epsilon(1e-5));
        CHECK(t.policy_rejected.grad()[i].item<double>() == doctest::Approx(-expected).epsilon(1e-5));
    }
}

TEST_CASE("both ways of applying a decision give the same parameter gradients") {
    torch::manual_seed(7);
    const dpo_demo::run_config cfg = tiny_config();
    auto model = std::make_shared<dpo_demo::tiny_lm>(cfg.model);
    sams::rng g(3);
    const auto pairs = dpo_demo::make_pairs(8, cfg.prompt_length, 0.25, g);
    std::vector<const dpo_demo::preference_pair*> ptrs;
    for (const auto& p : pairs) ptrs.push_back(&p);
    const dpo_demo::token_batch tb = dpo_demo::encode_pairs(ptrs, torch::kCPU);
    const torch::Tensor ref = torch::randn({16}).mul(0.1).add(-12.0);

    const auto forward = [&] {
        const torch::Tensor a = dpo_demo::response_logps(model->forward(tb.inputs).logits, tb);
        lt::batch_tensors t;
        t.policy_chosen = a.narrow(0, 0, 8);
        t.policy_rejected = a.narrow(0, 8, 8);
        t.reference_chosen = ref.narrow(0, 0, 8);
        t.reference_rejected = ref.narrow(0, 8, 8);
        return t;
    };
    const auto grads = [&] {
        std::vector<torch::Tensor> out;
        for (auto& p : model->parameters()) out.push_back(p.grad().clone());
        model->zero_grad();
        return out;
    };
    sams::loss_config lc;
    sams::selection_config sel;
    sel.ratio = 0.5;
    sams::uniform_selector<float> chooser(lc, sel, 4);
    lt::batch_tensors t = forward();
    const sams::decision<float> d = [&] {
        const lt::host_batch hb(t);
        return chooser.step(hb.view());
    }();

    lt::weighted_loss(lc, d, t).backward();  // (a)
    const auto via_loss = grads();
    t = forward();
    lt::backward(d, t.policy_chosen, t.policy_rejected);  // (b)
    const auto via_injection = grads();

    // (c) the memory-saving form: forward only the selected pairs' 2K sequences.
    const torch::Tensor idx = lt::selected_indices(d);
    const torch::Tensor rows = torch::cat({idx, idx + 8});
    const dpo_demo::token_batch sub{tb.inputs.index_select(0, rows), tb.targets.index_select(0, rows),
                                    tb.mask.index_select(0, rows)};
    const torch::Tensor a_sub = dpo_demo::response_logps(model->forward(sub.inputs).logits, sub);
    lt::batch_tensors ts;
    ts.policy_chosen = a_sub.narrow(0, 0, 4);
    ts.policy_rejected = a_sub.narrow(0, 4, 4);
    ts.reference_chosen = ref.narrow(0, 0, 8).index_select(0, idx);
    ts.reference_rejected = ref.narrow(0, 8, 8).index_select(0, idx);
    lt::weighted_loss(lc, d, ts).backward();
    const auto via_subset = grads();
    const torch::Tensor a2 = dpo_demo::response_logps(model->forward(sub.inputs).logits, sub);
    lt::backward(d, a2.narrow(0, 0, 4), a2.narrow(0, 4, 4));
    const auto via_subset_injection = grads();

    REQUIRE(via_loss.size() == via_injection.size());
    double total = 0.0;
    for (std::size_t i = 0; i < via_loss.size(); ++i) {
        total += via_loss[i].abs().sum().item<double>();
        CHECK(torch::allclose(via_loss[i], via_injection[i], 1e-4, 1e-7));
        CHECK(torch::allclose(via_loss[i], via_subset[i], 1e-4, 1e-7));
        CHECK(torch::allclose(via_loss[i], via_subset_injection[i], 1e-4, 1e-7));
    }
    CHECK(total > 0.0);
}

TEST_CASE("backward and weighted_loss reject tensors that do not fit the decision") {
    lt::batch_tensors t = random_batch(6, true);
    sams::full_batch<float> all{sams::loss_config{}};
    const lt::host_batch hb(t);
    const sams::decision<float> d = all.step(hb.view());
    CHECK(contains(message_of([&] { lt::backward(d, t.policy_chosen.detach(), t.policy_rejected); }),
                   "require grad"));
    CHECK(contains(message_of([&] { lt::backward(d, t.policy_chosen.narrow(0, 0, 5), t.policy_rejected); }),
                   "expected [6]"));
    lt::batch_tensors no_ref = t;
    no_ref.reference_chosen = torch::Tensor();
    CHECK(contains(message_of([&] { (void)lt::pair_losses(sams::loss_config{}, no_ref); }), "reference"));
}

TEST_CASE("memory_meter counts live CPU tensor bytes and their peak") {
    dpo_demo::memory_meter& meter = dpo_demo::memory_meter::install();
    const std::size_t before = meter.current();
    meter.reset_peak();
    {
        const torch::Tensor a = torch::empty({1 << 18}, torch::kFloat);  // 1 MiB
        CHECK(meter.current() >= before + (std::size_t{1} << 20));
        const torch::Tensor c = torch::empty({1 << 17}, torch::kFloat);
        CHECK(meter.peak() >= before + (std::size_t{3} << 19));
    }
    CHECK(meter.current() == before);
    CHECK(meter.peak() >= before + (std::size_t{3} << 19));
}

TEST_CASE("a few DPO steps of every method: selection applied, gradients only through selected pairs") {
    dpo_demo::memory_meter::install();
    const dpo_demo::run_config cfg = tiny_config();
    torch::manual_seed(1);
    sams::rng g(1, 1);
    const auto train = dpo_demo::make_pairs(cfg.train_pairs, cfg.prompt_length, 0.25, g);
    const auto test = dpo_demo::make_pairs(cfg.test_pairs, cfg.prompt_length, 0.0, g);
    std::size_t flipped = 0;
    for (const auto& p : train) flipped += p.flipped ? 1 : 0;
    CHECK(flipped == 32);  // exactly round(0.25 · 128)
    for (const auto& p : test) {
        CHECK_FALSE(p.flipped);
        CHECK(p.chosen == dpo_demo::respond(p.prompt, dpo_demo::preferred_style(p.prompt)));
        CHECK(p.rejected != p.chosen);
    }

    auto sft = std::make_shared<dpo_demo::tiny_lm>(cfg.model);
    sams::rng sg(1, 2);
    CHECK(std::isfinite(dpo_demo::train_sft(*sft, cfg, sg)));

    for (const char* name : {"dpo", "sams", "uniform", "sams-lowmem", "uniform-lowmem"}) {
        CAPTURE(name);
        const auto spec = dpo_demo::method_spec::parse(name);
        REQUIRE(spec.has_value());
        CHECK(spec->name() == name);
        dpo_demo::dpo_trainer trainer(cfg, *spec, *sft, 5);
        trainer.trace_gradients = true;
        const std::size_t k = spec->kind == dpo_demo::method::dpo ? cfg.batch : cfg.batch / 2;
        for (int step = 0; step < 4; ++step) {
            const dpo_demo::step_report r = trainer.step(train);
            const auto& d = r.decision;
            REQUIRE(d.selected.size() == k);
            CHECK(std::isfinite(r.loss));
            CHECK(r.loss == doctest::Approx(d.metrics.selected_loss).epsilon(1e-4));
            REQUIRE(r.sequence_grad.defined());
            REQUIRE(r.sequence_grad.size(0) == static_cast<std::int64_t>(2 * cfg.batch));
            for (std::size_t i = 0; i < cfg.batch; ++i) {
                const auto c = static_cast<std::int64_t>(i), rj = static_cast<std::int64_t>(i + cfg.batch);
                if (d.mask[i]) {
                    CHECK(r.sequence_grad[c].item<float>() > 0.0f);
                    CHECK(r.sequence_grad[rj].item<float>() > 0.0f);
                } else {
                    CHECK(r.sequence_grad[c].item<float>() == 0.0f);
                    CHECK(r.sequence_grad[rj].item<float>() == 0.0f);
                }
            }
            CHECK(r.peak_bytes >= r.start_bytes);
            CHECK(r.step_ms > 0.0);
        }
        const dpo_demo::evaluation e = trainer.evaluate(test);
        CHECK(e.reward_accuracy >= 0.0);
        CHECK(e.reward_accuracy <= 1.0);
    }
    CHECK_FALSE(dpo_demo::method_spec::parse("sams-fast").has_value());
}

TEST_CASE("the closed-form LM-head gradient of h = a_w - a_l equals autograd's") {
    const dpo_demo::run_config cfg = tiny_config();
    torch::manual_seed(3);
    dpo_demo::tiny_lm model(cfg.model);
    sams::rng g(3, 1);
    const auto pairs = dpo_demo::make_pairs(2, cfg.prompt_length, 0.5, g);  // one of the two flipped
    const dpo_demo::token_batch tb = dpo_demo::encode_pairs({&pairs[0], &pairs[1]}, torch::kCPU);
    const dpo_demo::tiny_lm::output out = model.forward(tb.inputs);
    const torch::Tensor a = dpo_demo::response_logps(out.logits, tb);
    const torch::Tensor closed = dpo_demo::head_pair_gradients(out.logits, out.pre_head, tb);
    const std::int64_t v = cfg.model.vocab, d = cfg.model.d_model;
    REQUIRE(closed.sizes() == torch::IntArrayRef({2, v * d + v}));
    for (std::int64_t i = 0; i < 2; ++i) {
        CAPTURE(i);
        const torch::Tensor h = a[i] - a[2 + i];
        auto& head = model.head();
        const auto grads = torch::autograd::grad({h}, {head->weight, head->bias}, {}, /*retain_graph=*/true);
        const torch::Tensor reference = torch::cat({grads[0].reshape({-1}), grads[1].reshape({-1})});
        const torch::Tensor row = closed[i];
        CHECK(torch::isfinite(row).all().item<bool>());
        const double scale = reference.abs().max().item<double>();
        REQUIRE(scale > 0.0);
        CHECK((row - reference).abs().max().item<double>() <= 1e-4 * scale);
    }
}

TEST_CASE("torch_count_sketch equals the library's count_sketch row by row") {
    const std::int64_t p = 715;
    const dpo_demo::torch_count_sketch ts(64, 0x5eed, p, torch::kCPU);
    const torch::Tensor x = torch::randn({3, p});
    const torch::Tensor got = ts(x);
    REQUIRE(got.sizes() == torch::IntArrayRef({3, 64}));
    for (std::int64_t i = 0; i < 3; ++i) {
        const torch::Tensor row = x[i].contiguous();
        std::vector<float> expected(64);
        ts.sketch().apply(std::span<const float>(row.data_ptr<float>(), static_cast<std::size_t>(p)),
                          std::span<float>(expected));
        for (std::size_t c = 0; c < 64; ++c)
            CHECK(got[i][static_cast<std::int64_t>(c)].item<float>() == doctest::Approx(expected[c]).epsilon(1e-5));
    }
}

TEST_CASE("guided selection and its equal-count control: ids remembered, counts matched, gradients only "
          "through selected pairs") {
    dpo_demo::run_config cfg = tiny_config();
    cfg.trusted_pairs = 32;
    cfg.sketch_width = 64;
    cfg.dpo_steps = 6;  // matched needs one guided count per step
    torch::manual_seed(2);
    sams::rng g(2, 1);
    const auto train = dpo_demo::make_pairs(cfg.train_pairs, cfg.prompt_length, 0.25, g);
    auto sft = std::make_shared<dpo_demo::tiny_lm>(cfg.model);
    sams::rng sg(2, 2);
    dpo_demo::train_sft(*sft, cfg, sg);

    std::vector<std::size_t> counts;
    for (const std::string name : {"guided", "guided-lowmem", "matched"}) {
        CAPTURE(name);
        const auto spec = dpo_demo::method_spec::parse(name);
        REQUIRE(spec.has_value());
        CHECK(spec->name() == name);
        const bool matched = spec->kind == dpo_demo::method::matched;
        dpo_demo::dpo_trainer trainer(cfg, *spec, *sft, 5, matched ? counts : std::vector<std::size_t>{});
        trainer.trace_gradients = true;
        std::vector<std::size_t> seen;
        for (std::size_t step = 0; step < 6; ++step) {
            const dpo_demo::step_report r = trainer.step(train);
            const auto& d = r.decision;
            REQUIRE_FALSE(d.selected.empty());
            REQUIRE(d.selected.size() <= cfg.batch);
            if (matched) CHECK(d.selected.size() == counts[step]);
            else if (name == "guided") counts.push_back(d.selected.size());
            CHECK(std::isfinite(r.loss));
            CHECK(r.loss == doctest::Approx(d.metrics.selected_loss).epsilon(1e-4));
            REQUIRE(r.sequence_grad.defined());
            for (std::size_t i = 0; i < cfg.batch; ++i) {
                const auto c = static_cast<std::int64_t>(i);
                CHECK((r.sequence_grad[c].item<float>() > 0.0f) == static_cast<bool>(d.mask[i]));
            }
            if (const auto* gs = trainer.guided()) {
                CHECK(gs->steps() == step + 1);
                CHECK(gs->trusted_age() == 1);  // refreshed every step (refresh = 1)
                CHECK(gs->clean_agreement() > 0.0);
                for (const double x : gs->last_agreement()) CHECK(std::abs(x) <= 1.0);
            }
        }
        if (const auto* gs = trainer.guided()) {
            // 6 steps of 8 pairs from 128 distinct examples: every visited id is remembered once.
            CHECK(gs->memory().size() == 48);
        } else {
            CHECK(trainer.guided() == nullptr);
        }
    }
    REQUIRE(counts.size() == 6);
    CHECK_THROWS_AS(dpo_demo::dpo_trainer(cfg, *dpo_demo::method_spec::parse("matched"), *sft, 5, {1, 2}),
                    sams::invalid_argument);
}

TEST_CASE("the memory-saving mode needs less step memory than DPO on all pairs") {
    dpo_demo::memory_meter::install();
    dpo_demo::run_config cfg = tiny_config();
    cfg.batch = 32;
    cfg.model.d_model = 32;
    torch::manual_seed(2);
    sams::rng g(2, 1);
    const auto train = dpo_demo::make_pairs(cfg.train_pairs, cfg.prompt_length, 0.2, g);
    auto sft = std::make_shared<dpo_demo::tiny_lm>(cfg.model);
    const auto step_peak = [&](const char* name) {
        dpo_demo::dpo_trainer trainer(cfg, *dpo_demo::method_spec::parse(name), *sft, 3);
        std::size_t worst = 0;
        for (int step = 0; step < 3; ++step) {
            const auto r = trainer.step(train);
            worst = std::max(worst, r.peak_bytes - r.start_bytes);
        }
        return worst;
    };
    const std::size_t full = step_peak("dpo");
    const std::size_t low = step_peak("uniform-lowmem");
    CAPTURE(full);
    CAPTURE(low);
    CHECK(low < full);
}

TEST_CASE("the documented integration step runs and trains on the selected pairs") {
    const dpo_demo::run_config cfg = tiny_config();
    torch::manual_seed(4);
    auto policy = std::make_shared<dpo_demo::tiny_lm>(cfg.model);
    auto reference = dpo_demo::clone_model(*policy, torch::kCPU);
    sams::mean_pool_extractor<float> extractor(cfg.context);
    const std::size_t dim = extractor.output_dim(static_cast<std::size_t>(cfg.model.layers),
                                                 static_cast<std::size_t>(cfg.model.d_model));
    sams::sams_scheduler<sams::eigen_backend<float>> scheduler(cfg.scheduler(), dim, 8);
    sams::context_matrix<float> contexts(cfg.batch, dim);
    sams::rng g(4);
    const auto pairs = dpo_demo::make_pairs(cfg.batch, cfg.prompt_length, 0.0, g);
    std::vector<const dpo_demo::preference_pair*> ptrs;
    for (const auto& p : pairs) ptrs.push_back(&p);
    const dpo_demo::token_batch tb = dpo_demo::encode_pairs(ptrs, torch::kCPU);
    for (int step = 0; step < 3; ++step) {
        policy->zero_grad();
        const sams::decision<float> d = dpo_demo::sams_dpo_step(*policy, *reference, tb, scheduler, extractor, contexts);
        CHECK(d.selected.size() == cfg.batch / 2);
        double norm = 0.0;
        for (const auto& p : policy->parameters())
            if (p.grad().defined()) norm += p.grad().pow(2).sum().item<double>();
        CHECK(norm > 0.0);
        CHECK(std::isfinite(norm));
    }
    CHECK(scheduler.steps() == 3);
}
