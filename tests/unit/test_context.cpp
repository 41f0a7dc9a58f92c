// Context extractors (docs/contexts.md): the masked mean against a plain-loop reference, every
// combine/reduce option, layer selection, strided and per-layer layouts, the random
// projection, error paths and steady-state reuse.
#define EIGEN_RUNTIME_NO_MALLOC  // lets the steady-state test forbid Eigen heap use
#include <doctest/doctest.h>

#include <sams/context/concept.hpp>
#include <sams/context/context_matrix.hpp>
#include <sams/context/hidden_states.hpp>
#include <sams/context/identity.hpp>
#include <sams/context/mean_pool.hpp>
#include <sams/core/rng.hpp>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <new>
#include <string>
#include <vector>

// Counts global operator new calls, so the steady-state test can see that extract() allocates
// nothing. Only this test executable is affected.
#include "support/allocation_counter.hpp"

namespace {

using sams::context_combine;
using sams::layer_reduction;

constexpr double padding_value = 1.0e30;  // large enough that any padding leak shows

// Hidden states of one side, kept logically as [L][B][T][d] in double, with a mask [B][T].
struct side_data {
    std::size_t layers = 0, pairs = 0, tokens = 0, dim = 0;
    std::vector<double> x;
    std::vector<std::uint8_t> mask;
    [[nodiscard]] double at(std::size_t l, std::size_t p, std::size_t t, std::size_t k) const {
        return x[((l * pairs + p) * tokens + t) * dim + k];
    }
    double& at(std::size_t l, std::size_t p, std::size_t t, std::size_t k) {
        return x[((l * pairs + p) * tokens + t) * dim + k];
    }
};

// Random values at valid tokens (rounded to T so the reference sees what the extractor sees),
// padding_value elsewhere; each row gets a random nonempty set of valid tokens, not a prefix.
template <class T>
side_data make_side(sams::rng& r, std::size_t layers, std::size_t pairs, std::size_t tokens,
                    std::size_t dim) {
    side_data s{layers,
                pairs,
                tokens,
                dim,
                std::vector<double>(layers * pairs * tokens * dim),
                std::vector<std::uint8_t>(pairs * tokens)};
    for (std::size_t p = 0; p < pairs; ++p) {
        std::size_t valid = 0;
        for (std::size_t t = 0; t < tokens; ++t) {
            s.mask[p * tokens + t] = r.uniform() < 0.6 ? 1 : 0;
            valid += s.mask[p * tokens + t];
        }
        if (valid == 0) s.mask[p * tokens + r.below(tokens)] = 1;
    }
    for (std::size_t l = 0; l < layers; ++l)
        for (std::size_t p = 0; p < pairs; ++p)
            for (std::size_t t = 0; t < tokens; ++t)
                for (std::size_t k = 0; k < dim; ++k)
                    s.at(l, p, t, k) = s.mask[p * tokens + t] != 0
                                           ? static_cast<double>(static_cast<T>(r.normal() + 0.3 * double(l)))
                                           : padding_value;
    return s;
}

// The plain reference: masked mean of one side at (l, p).
std::vector<double> ref_mean(const side_data& s, std::size_t l, std::size_t p) {
    std::vector<double> m(s.dim, 0.0);
    double n = 0;
    for (std::size_t t = 0; t < s.tokens; ++t) {
        if (s.mask[p * s.tokens + t] == 0) continue;
        n += 1;
        for (std::size_t k = 0; k < s.dim; ++k) m[k] += s.at(l, p, t, k);
    }
    for (double& v : m) v /= n;
    return m;
}

// The reference contexts, straight from the definitions of docs/contexts.md; random_projection returns
// the flattened vectors (projected separately).
std::vector<std::vector<double>> ref_contexts(const side_data& w, const side_data& lo,
                                              const sams::mean_pool_options& o) {
    std::vector<std::size_t> sel = o.layers;
    if (sel.empty())
        for (std::size_t l = 0; l < w.layers; ++l) sel.push_back(l);
    std::vector<std::vector<double>> out(w.pairs);
    for (std::size_t p = 0; p < w.pairs; ++p) {
        std::vector<std::vector<double>> per_layer;
        for (std::size_t l : sel) {
            const auto a = ref_mean(w, l, p), b = ref_mean(lo, l, p);
            std::vector<double> c;
            if (o.combine == context_combine::average)
                for (std::size_t k = 0; k < w.dim; ++k) c.push_back((a[k] + b[k]) / 2);
            else {
                c = a;
                c.insert(c.end(), b.begin(), b.end());
            }
            per_layer.push_back(c);
        }
        std::vector<double>& row = out[p];
        switch (o.reduce) {
            case layer_reduction::flatten_layers:
            case layer_reduction::random_projection:
                for (const auto& c : per_layer) row.insert(row.end(), c.begin(), c.end());
                break;
            case layer_reduction::mean_layers:
                row.assign(per_layer[0].size(), 0.0);
                for (const auto& c : per_layer)
                    for (std::size_t k = 0; k < c.size(); ++k) row[k] += c[k] / double(per_layer.size());
                break;
            case layer_reduction::last_layer:
                row = per_layer.back();
                break;
        }
    }
    return out;
}

// The documented projection recipe, rebuilt independently: row-major N×D', N(0, 1/D') from
// sams::rng(seed, projection_stream).
template <class T>
std::vector<double> ref_projection(std::uint64_t seed, std::size_t n, std::size_t dp) {
    sams::rng r(seed, sams::mean_pool_extractor<T>::projection_stream);
    std::vector<double> m(n * dp);
    for (double& v : m) v = static_cast<double>(static_cast<T>(r.normal() / std::sqrt(double(dp))));
    return m;
}

enum class layout { layer_major, pair_major, per_layer, dim_first, reversed_tokens };

// One side's hidden states copied into a buffer of T in a given layout, with the view over it.
template <class T>
struct laid_out {
    std::vector<T> buf;
    std::vector<std::vector<T>> layer_bufs;
    std::vector<const T*> layer_ptrs;
    sams::hidden_states_view<T> view;
};

template <class T>
laid_out<T> lay_out(const side_data& s, layout how) {
    const std::size_t L = s.layers, B = s.pairs, Tk = s.tokens, d = s.dim;
    laid_out<T> o;
    o.buf.resize(L * B * Tk * d);
    auto put = [&](auto index_of) {
        for (std::size_t l = 0; l < L; ++l)
            for (std::size_t p = 0; p < B; ++p)
                for (std::size_t t = 0; t < Tk; ++t)
                    for (std::size_t k = 0; k < d; ++k)
                        o.buf[index_of(l, p, t, k)] = static_cast<T>(s.at(l, p, t, k));
    };
    using sd = std::ptrdiff_t;
    switch (how) {
        case layout::layer_major:
            put([&](auto l, auto p, auto t, auto k) { return ((l * B + p) * Tk + t) * d + k; });
            o.view = sams::hidden_states_view<T>::layer_major(o.buf.data(), L, B, Tk, d);
            break;
        case layout::pair_major:
            put([&](auto l, auto p, auto t, auto k) { return ((p * L + l) * Tk + t) * d + k; });
            o.view = sams::hidden_states_view<T>::pair_major(o.buf.data(), B, L, Tk, d);
            break;
        case layout::dim_first:  // storage [d][T][B][L]: every stride but the layer's is non-unit
            put([&](auto l, auto p, auto t, auto k) { return ((k * Tk + t) * B + p) * L + l; });
            o.view = {o.buf.data(), L, B, Tk, d, 1, sd(L), sd(B * L), sd(Tk * B * L), {}, 0};
            break;
        case layout::reversed_tokens:  // tokens stored last-to-first: a negative stride
            put([&](auto l, auto p, auto t, auto k) { return ((l * B + p) * Tk + (Tk - 1 - t)) * d + k; });
            o.view = {o.buf.data() + (Tk - 1) * d, L, B, Tk, d, sd(B * Tk * d), sd(Tk * d), -sd(d), 1, {}, 0};
            break;
        case layout::per_layer:  // separate allocations, one per layer
            o.buf.clear();
            for (std::size_t l = 0; l < L; ++l) {
                std::vector<T> b(B * Tk * d);
                for (std::size_t p = 0; p < B; ++p)
                    for (std::size_t t = 0; t < Tk; ++t)
                        for (std::size_t k = 0; k < d; ++k)
                            b[(p * Tk + t) * d + k] = static_cast<T>(s.at(l, p, t, k));
                o.layer_bufs.push_back(std::move(b));
            }
            for (auto& b : o.layer_bufs) o.layer_ptrs.push_back(b.data());
            o.view = sams::hidden_states_view<T>::from_layers(o.layer_ptrs, B, Tk, d);
            break;
    }
    return o;
}

template <class T>
sams::token_mask_view<std::uint8_t> mask_of(const side_data& s) {
    return sams::token_mask_view<std::uint8_t>::contiguous(s.mask.data(), s.pairs, s.tokens);
}

template <class T>
double tolerance() {
    return std::is_same_v<T, float> ? 2e-5 : 1e-12;
}

template <class T>
void check_close(const sams::context_matrix<T>& got, const std::vector<std::vector<double>>& want) {
    REQUIRE(got.rows == want.size());
    double worst = 0.0;  // largest |got - want| / (1 + |want|), and where
    std::size_t worst_p = 0, worst_c = 0;
    for (std::size_t p = 0; p < got.rows; ++p) {
        REQUIRE(got.cols == want[p].size());
        for (std::size_t c = 0; c < got.cols; ++c) {
            double e = std::abs(static_cast<double>(got(p, c)) - want[p][c]) / (1.0 + std::abs(want[p][c]));
            if (std::isnan(e)) e = std::numeric_limits<double>::infinity();
            if (e > worst) worst = e, worst_p = p, worst_c = c;
        }
    }
    INFO("worst at pair ", worst_p, " column ", worst_c, ": got ", static_cast<double>(got(worst_p, worst_c)),
         ", want ", want[worst_p][worst_c]);
    CHECK(worst <= tolerance<T>());
}

struct fixture {
    side_data w, l;
};

template <class T>
fixture make_fixture(std::uint64_t seed, std::size_t L = 4, std::size_t B = 5, std::size_t Tc = 7,
                     std::size_t Tr = 6, std::size_t d = 3) {
    sams::rng r(seed);
    fixture f;
    f.w = make_side<T>(r, L, B, Tc, d);
    f.l = make_side<T>(r, L, B, Tr, d);
    return f;
}

std::vector<sams::mean_pool_options> all_plain_options() {
    std::vector<sams::mean_pool_options> v;
    for (auto c : {context_combine::average, context_combine::concatenate})
        for (auto r :
             {layer_reduction::flatten_layers, layer_reduction::mean_layers, layer_reduction::last_layer})
            for (const std::vector<std::size_t>& sel :
                 {std::vector<std::size_t>{}, std::vector<std::size_t>{0, 2, 3}, std::vector<std::size_t>{1}})
                v.push_back({sel, c, r, 0, 0});
    return v;
}

}  // namespace

TEST_CASE_TEMPLATE(
    "mean_pool: masked mean matches the plain loop for every combine, reduce and layer selection", T, float,
    double) {
    const fixture f = make_fixture<T>(11);
    const auto hw = lay_out<T>(f.w, layout::layer_major);
    const auto hl = lay_out<T>(f.l, layout::layer_major);
    for (const auto& o : all_plain_options()) {
        CAPTURE(static_cast<int>(o.combine));
        CAPTURE(static_cast<int>(o.reduce));
        CAPTURE(o.layers.size());
        sams::mean_pool_extractor<T> ex(o);
        const auto got = ex.extract(hw.view, hl.view, mask_of<T>(f.w), mask_of<T>(f.l));
        check_close(got, ref_contexts(f.w, f.l, o));
        CHECK(got.cols == ex.output_dim(4, 3));
    }
}

TEST_CASE("mean_pool: output_dim follows the options") {
    using o = sams::mean_pool_options;
    CHECK(sams::mean_pool_extractor<float>(o{}).output_dim(5, 8) == 40);
    CHECK(sams::mean_pool_extractor<float>(
              o{{}, context_combine::concatenate, layer_reduction::flatten_layers, 0, 0})
              .output_dim(5, 8) == 80);
    CHECK(sams::mean_pool_extractor<float>(
              o{{1, 4}, context_combine::concatenate, layer_reduction::flatten_layers, 0, 0})
              .output_dim(5, 8) == 32);
    CHECK(
        sams::mean_pool_extractor<float>(o{{}, context_combine::average, layer_reduction::mean_layers, 0, 0})
            .output_dim(5, 8) == 8);
    CHECK(sams::mean_pool_extractor<float>(
              o{{}, context_combine::concatenate, layer_reduction::last_layer, 0, 0})
              .output_dim(5, 8) == 16);
    CHECK(sams::mean_pool_extractor<float>(
              o{{}, context_combine::average, layer_reduction::random_projection, 7, 0})
              .output_dim(5, 8) == 7);
    CHECK_THROWS_WITH_AS((void)sams::mean_pool_extractor<float>(o{{1, 5}, {}, {}, 0, 0}).output_dim(5, 8),
                         doctest::Contains("selects layer 5 but the hidden states have 5 layers"),
                         sams::invalid_argument);
}

TEST_CASE_TEMPLATE("mean_pool: strided, permuted, negative-stride and per-layer layouts agree bit for bit", T,
                   float, double) {
    const fixture f = make_fixture<T>(23);
    for (const auto& o : all_plain_options()) {
        sams::mean_pool_extractor<T> ex(o);
        const auto base =
            ex.extract(lay_out<T>(f.w, layout::layer_major).view, lay_out<T>(f.l, layout::layer_major).view,
                       mask_of<T>(f.w), mask_of<T>(f.l));
        for (layout how :
             {layout::pair_major, layout::per_layer, layout::dim_first, layout::reversed_tokens}) {
            CAPTURE(static_cast<int>(how));
            const auto hw = lay_out<T>(f.w, how);
            // Mix layouts between the sides: each view is read on its own.
            const auto hl = lay_out<T>(f.l, how == layout::dim_first ? layout::per_layer : how);
            const auto got = ex.extract(hw.view, hl.view, mask_of<T>(f.w), mask_of<T>(f.l));
            CHECK(got.values == base.values);
        }
    }
}

TEST_CASE_TEMPLATE("mean_pool: any mask type and mask layout, nonzero means valid", T, float, double) {
    const fixture f = make_fixture<T>(31);
    const auto hw = lay_out<T>(f.w, layout::layer_major);
    const auto hl = lay_out<T>(f.l, layout::layer_major);
    sams::mean_pool_extractor<T> ex;
    const auto base = ex.extract(hw.view, hl.view, mask_of<T>(f.w), mask_of<T>(f.l));

    // A transposed int64 mask [tokens][pairs] with values 0 and 7 (an HF attention mask type).
    auto transposed = [](const side_data& s) {
        std::vector<std::int64_t> m(s.tokens * s.pairs);
        for (std::size_t p = 0; p < s.pairs; ++p)
            for (std::size_t t = 0; t < s.tokens; ++t)
                m[t * s.pairs + p] = s.mask[p * s.tokens + t] != 0 ? 7 : 0;
        return m;
    };
    const auto mw = transposed(f.w), ml = transposed(f.l);
    const sams::token_mask_view<std::int64_t> vw{mw.data(), f.w.pairs, f.w.tokens, 1,
                                                 static_cast<std::ptrdiff_t>(f.w.pairs)};
    const sams::token_mask_view<std::int64_t> vl{ml.data(), f.l.pairs, f.l.tokens, 1,
                                                 static_cast<std::ptrdiff_t>(f.l.pairs)};
    CHECK(ex.extract(hw.view, hl.view, vw, vl).values == base.values);

    // A floating mask of the hidden states' own type.
    std::vector<T> fw(f.w.mask.begin(), f.w.mask.end()), fl(f.l.mask.begin(), f.l.mask.end());
    CHECK(ex.extract(hw.view, hl.view, sams::token_mask_view<T>::contiguous(fw.data(), f.w.pairs, f.w.tokens),
                     sams::token_mask_view<T>::contiguous(fl.data(), f.l.pairs, f.l.tokens))
              .values == base.values);
}

TEST_CASE_TEMPLATE("mean_pool: NaN and Inf in padding are never read", T, float, double) {
    fixture f = make_fixture<T>(37);
    const auto clean = [&] {
        sams::mean_pool_extractor<T> ex;
        return ex.extract(lay_out<T>(f.w, layout::layer_major).view,
                          lay_out<T>(f.l, layout::layer_major).view, mask_of<T>(f.w), mask_of<T>(f.l));
    }();
    for (std::size_t i = 0; i < f.w.x.size(); ++i)
        if (f.w.x[i] == padding_value) f.w.x[i] = std::numeric_limits<double>::quiet_NaN();
    for (std::size_t i = 0; i < f.l.x.size(); ++i)
        if (f.l.x[i] == padding_value) f.l.x[i] = -std::numeric_limits<double>::infinity();
    sams::mean_pool_extractor<T> ex;
    const auto got = ex.extract(lay_out<T>(f.w, layout::layer_major).view,
                                lay_out<T>(f.l, layout::layer_major).view, mask_of<T>(f.w), mask_of<T>(f.l));
    CHECK(got.values == clean.values);
}

TEST_CASE_TEMPLATE("mean_pool: a combined 2B batch splits into chosen and rejected", T, float, double) {
    const std::size_t L = 3, B = 4, Tk = 5, d = 2;
    const fixture f = make_fixture<T>(41, L, B, Tk, Tk, d);
    sams::mean_pool_extractor<T> ex(
        {{}, context_combine::concatenate, layer_reduction::flatten_layers, 0, 0});
    const auto want = ex.extract(lay_out<T>(f.w, layout::layer_major).view,
                                 lay_out<T>(f.l, layout::layer_major).view, mask_of<T>(f.w), mask_of<T>(f.l));

    for (auto order : {sams::pair_order::chosen_first, sams::pair_order::interleaved}) {
        CAPTURE(static_cast<int>(order));
        // The combined [L][2B][T][d] tensor and [2B][T] mask, rows placed by `order`.
        auto row_of = [&](std::size_t p, bool chosen) {
            return order == sams::pair_order::chosen_first ? (chosen ? p : B + p) : 2 * p + (chosen ? 0 : 1);
        };
        std::vector<T> both(L * 2 * B * Tk * d);
        std::vector<std::uint8_t> mask(2 * B * Tk);
        for (int side = 0; side < 2; ++side) {
            const side_data& s = side == 0 ? f.w : f.l;
            for (std::size_t p = 0; p < B; ++p) {
                const std::size_t row = row_of(p, side == 0);
                for (std::size_t t = 0; t < Tk; ++t) mask[row * Tk + t] = s.mask[p * Tk + t];
                for (std::size_t l = 0; l < L; ++l)
                    for (std::size_t t = 0; t < Tk; ++t)
                        for (std::size_t k = 0; k < d; ++k)
                            both[((l * 2 * B + row) * Tk + t) * d + k] = static_cast<T>(s.at(l, p, t, k));
            }
        }
        const auto [hc, hr] = sams::split_chosen_rejected(
            sams::hidden_states_view<T>::layer_major(both.data(), L, 2 * B, Tk, d), order);
        const auto [mc, mr] = sams::split_chosen_rejected(
            sams::token_mask_view<std::uint8_t>::contiguous(mask.data(), 2 * B, Tk), order);
        CHECK(hc.pairs == B);
        CHECK(ex.extract(hc, hr, mc, mr).values == want.values);

        // The same through a per-layer list of [2B][T][d] tensors (pair_range shifts via offset).
        std::vector<const T*> ptrs;
        for (std::size_t l = 0; l < L; ++l) ptrs.push_back(both.data() + l * 2 * B * Tk * d);
        const auto [pc, pr] =
            sams::split_chosen_rejected(sams::hidden_states_view<T>::from_layers(ptrs, 2 * B, Tk, d), order);
        CHECK(ex.extract(pc, pr, mc, mr).values == want.values);
    }
    std::vector<T> odd(3);
    CHECK_THROWS_WITH_AS(
        (void)sams::split_chosen_rejected(sams::hidden_states_view<T>::layer_major(odd.data(), 1, 3, 1, 1)),
        doctest::Contains("expected an even number"), sams::invalid_argument);
}

TEST_CASE_TEMPLATE("mean_pool: random projection equals the flattened contexts times the documented matrix",
                   T, float, double) {
    const fixture f = make_fixture<T>(43);
    const std::size_t dp = 6;
    for (auto c : {context_combine::average, context_combine::concatenate}) {
        const sams::mean_pool_options o{{0, 1, 3}, c, layer_reduction::random_projection, dp, 99};
        sams::mean_pool_extractor<T> ex(o);
        const auto flat = ref_contexts(f.w, f.l, o);
        const std::size_t n = flat[0].size();
        const auto r = ref_projection<T>(99, n, dp);
        std::vector<std::vector<double>> want(flat.size(), std::vector<double>(dp, 0.0));
        for (std::size_t p = 0; p < flat.size(); ++p)
            for (std::size_t j = 0; j < dp; ++j)
                for (std::size_t i = 0; i < n; ++i) want[p][j] += flat[p][i] * r[i * dp + j];

        // Written into a caller buffer with a row stride, whose padding columns stay untouched.
        const std::size_t stride = dp + 3;
        std::vector<T> buf(f.w.pairs * stride, T(-7));
        ex.extract(lay_out<T>(f.w, layout::layer_major).view, lay_out<T>(f.l, layout::dim_first).view,
                   mask_of<T>(f.w), mask_of<T>(f.l), sams::matrix_view<T>{buf.data(), f.w.pairs, dp, stride});
        sams::context_matrix<T> got(f.w.pairs, dp);
        for (std::size_t p = 0; p < f.w.pairs; ++p) {
            for (std::size_t j = 0; j < dp; ++j) got(p, j) = buf[p * stride + j];
            for (std::size_t j = dp; j < stride; ++j) CHECK(buf[p * stride + j] == T(-7));
        }
        check_close(got, want);
        CHECK(ex.projection().rows == n);
        CHECK(ex.projection().cols == dp);
    }
}

TEST_CASE_TEMPLATE("mean_pool: a projection larger than one GEMM tile is exact and allocation-free", T, float,
                   double) {
    // 300 pairs and D' = 300 span two 256-wide tiles each way; N = 300 spans several depth chunks.
    const std::size_t L = 2, B = 300, Tk = 2, d = 150, dp = 300;
    const fixture f = make_fixture<T>(45, L, B, Tk, Tk, d);
    const sams::mean_pool_options o{{}, context_combine::average, layer_reduction::random_projection, dp, 17};
    sams::mean_pool_extractor<T> ex(o);
    const auto hw = lay_out<T>(f.w, layout::layer_major), hl = lay_out<T>(f.l, layout::layer_major);
    sams::context_matrix<T> got(B, dp);
    ex.prepare(L, B, d);
    const std::size_t before = sams_test::allocations();
    Eigen::internal::set_is_malloc_allowed(false);  // an Eigen heap allocation would assert (Debug)
    ex.extract(hw.view, hl.view, mask_of<T>(f.w), mask_of<T>(f.l), got.view());
    Eigen::internal::set_is_malloc_allowed(true);
    CHECK(sams_test::allocations() == before);

    const auto flat = ref_contexts(f.w, f.l, o);
    const auto r = ref_projection<T>(17, flat[0].size(), dp);
    std::vector<std::vector<double>> want(B, std::vector<double>(dp, 0.0));
    for (std::size_t p = 0; p < B; ++p)
        for (std::size_t i = 0; i < flat[p].size(); ++i)
            for (std::size_t j = 0; j < dp; ++j) want[p][j] += flat[p][i] * r[i * dp + j];
    check_close(got, want);
}

TEST_CASE_TEMPLATE("mean_pool: random projection is deterministic for a seed and differs across seeds", T,
                   float, double) {
    const fixture f = make_fixture<T>(47);
    const auto hw = lay_out<T>(f.w, layout::layer_major);
    const auto hl = lay_out<T>(f.l, layout::layer_major);
    auto run = [&](std::uint64_t seed) {
        sams::mean_pool_extractor<T> ex(
            {{}, context_combine::average, layer_reduction::random_projection, 5, seed});
        return ex.extract(hw.view, hl.view, mask_of<T>(f.w), mask_of<T>(f.l)).values;
    };
    CHECK(run(3) == run(3));
    CHECK(run(3) != run(4));
}

TEST_CASE("mean_pool: the projection matrix has N(0, 1/D') entries") {
    const std::size_t dp = 64, L = 4, d = 100;  // N = 400 rows, 25600 entries
    sams::mean_pool_extractor<double> ex(
        {{}, context_combine::average, layer_reduction::random_projection, dp, 5});
    ex.prepare(L, 1, d);
    const auto r = ex.projection();
    REQUIRE(r.rows == L * d);
    const double n = double(r.rows * r.cols);
    double s = 0, s2 = 0;
    for (std::size_t i = 0; i < r.rows; ++i)
        for (std::size_t j = 0; j < r.cols; ++j) {
            s += r(i, j);
            s2 += r(i, j) * r(i, j);
        }
    const double var = 1.0 / double(dp);
    // Standard errors of the sample mean and of the mean square of n Gaussians with variance var.
    CHECK(std::abs(s / n) < 5.0 * std::sqrt(var / n));
    CHECK(std::abs(s2 / n - var) < 5.0 * var * std::sqrt(2.0 / n));
}

TEST_CASE("mean_pool: random projection preserves pairwise distances within the JL bound") {
    // B points of width N = L·2d = 1536 projected to D' = 512. For one pair the squared-distance
    // ratio r satisfies P(|r - 1| > e) <= 2 exp(-(e²/2 - e³/3)·D'/2); the tolerance is the e that
    // makes the union bound over all pairs 1e-3.
    const std::size_t L = 6, B = 12, Tk = 3, d = 128, dp = 512;
    const fixture f = make_fixture<double>(53, L, B, Tk, Tk, d);
    const sams::mean_pool_options o{
        {}, context_combine::concatenate, layer_reduction::random_projection, dp, 2024};
    sams::mean_pool_extractor<double> ex(o);
    const auto got = ex.extract(lay_out<double>(f.w, layout::layer_major).view,
                                lay_out<double>(f.l, layout::layer_major).view, mask_of<double>(f.w),
                                mask_of<double>(f.l));
    const auto flat = ref_contexts(f.w, f.l, o);
    const double pairs = double(B * (B - 1) / 2);
    const double target = std::log(2.0 * pairs / 1e-3) * 2.0 / double(dp);
    double lo = 0.0, hi = 1.0;
    for (int i = 0; i < 60; ++i) {
        const double e = 0.5 * (lo + hi);
        (e * e / 2 - e * e * e / 3 >= target ? hi : lo) = e;
    }
    const double eps = hi;
    CHECK(eps < 0.4);
    for (std::size_t a = 0; a < B; ++a)
        for (std::size_t b = a + 1; b < B; ++b) {
            double orig = 0, proj = 0;
            for (std::size_t i = 0; i < flat[a].size(); ++i)
                orig += (flat[a][i] - flat[b][i]) * (flat[a][i] - flat[b][i]);
            for (std::size_t j = 0; j < dp; ++j) proj += (got(a, j) - got(b, j)) * (got(a, j) - got(b, j));
            CAPTURE(a);
            CAPTURE(b);
            CHECK(std::abs(proj / orig - 1.0) <= eps);
        }
}

TEST_CASE_TEMPLATE("mean_pool: steady state reuses its buffers and allocates nothing", T, float, double) {
    const fixture f1 = make_fixture<T>(59), f2 = make_fixture<T>(61);
    const auto w1 = lay_out<T>(f1.w, layout::layer_major), l1 = lay_out<T>(f1.l, layout::layer_major);
    const auto w2 = lay_out<T>(f2.w, layout::dim_first), l2 = lay_out<T>(f2.l, layout::reversed_tokens);
    for (auto reduce : {layer_reduction::flatten_layers, layer_reduction::mean_layers,
                        layer_reduction::last_layer, layer_reduction::random_projection}) {
        CAPTURE(static_cast<int>(reduce));
        const sams::mean_pool_options o{{0, 3}, context_combine::concatenate, reduce, 4, 8};
        sams::mean_pool_extractor<T> ex(o), fresh(o);
        sams::context_matrix<T> out(5, ex.output_dim(4, 3));
        ex.extract(w1.view, l1.view, mask_of<T>(f1.w), mask_of<T>(f1.l), out.view());  // sizes the workspaces

        const std::size_t before = sams_test::allocations();
        Eigen::internal::set_is_malloc_allowed(false);
        ex.extract(w2.view, l2.view, mask_of<T>(f2.w), mask_of<T>(f2.l), out.view());
        Eigen::internal::set_is_malloc_allowed(true);
        CHECK(sams_test::allocations() == before);
        // Nothing from the first batch leaks into the second.
        CHECK(out.values == fresh.extract(w2.view, l2.view, mask_of<T>(f2.w), mask_of<T>(f2.l)).values);
    }
    // prepare() makes even the first call allocation-free.
    sams::mean_pool_extractor<T> ex({{}, context_combine::average, layer_reduction::random_projection, 4, 8});
    ex.prepare(4, 5, 3);
    sams::context_matrix<T> out(5, 4);
    const std::size_t before = sams_test::allocations();
    ex.extract(w1.view, l1.view, mask_of<T>(f1.w), mask_of<T>(f1.l), out.view());
    CHECK(sams_test::allocations() == before);
}

TEST_CASE_TEMPLATE("mean_pool: bad input throws a message that names it and leaves out untouched", T, float,
                   double) {
    fixture f = make_fixture<T>(67);
    sams::mean_pool_extractor<T> ex;
    const std::size_t D = ex.output_dim(4, 3);
    std::vector<T> buf(5 * D, T(42));
    const sams::matrix_view<T> out{buf.data(), 5, D, 0};
    auto attempt = [&](const side_data& w, const side_data& l) {
        const auto hw = lay_out<T>(w, layout::layer_major), hl = lay_out<T>(l, layout::layer_major);
        ex.extract(hw.view, hl.view, mask_of<T>(w), mask_of<T>(l), out);
    };
    auto untouched = [&] {
        for (T v : buf)
            if (v != T(42)) return false;
        return true;
    };

    SUBCASE("a pair without a valid chosen token") {
        for (std::size_t t = 0; t < f.w.tokens; ++t) f.w.mask[3 * f.w.tokens + t] = 0;
        CHECK_THROWS_WITH_AS(attempt(f.w, f.l),
                             doctest::Contains("pair 3 has no valid token in the chosen mask"),
                             sams::invalid_argument);
    }
    SUBCASE("a pair without a valid rejected token") {
        for (std::size_t t = 0; t < f.l.tokens; ++t) f.l.mask[0 * f.l.tokens + t] = 0;
        CHECK_THROWS_WITH_AS(attempt(f.w, f.l),
                             doctest::Contains("pair 0 has no valid token in the rejected mask"),
                             sams::invalid_argument);
    }
    SUBCASE("NaN at a valid token") {
        std::size_t t = 0;
        while (f.l.mask[4 * f.l.tokens + t] == 0) ++t;
        f.l.at(2, 4, t, 1) = std::numeric_limits<double>::quiet_NaN();
        CHECK_THROWS_WITH_AS(attempt(f.w, f.l),
                             doctest::Contains("rejected hidden states of pair 4 have NaN or Inf"),
                             sams::invalid_argument);
    }
    SUBCASE("Inf at a valid token") {
        std::size_t t = 0;
        while (f.w.mask[1 * f.w.tokens + t] == 0) ++t;
        f.w.at(0, 1, t, 0) = std::numeric_limits<double>::infinity();
        CHECK_THROWS_WITH_AS(attempt(f.w, f.l), doctest::Contains("of layer 0"), sams::invalid_argument);
    }
    SUBCASE("a NaN entry in a floating mask") {
        const auto hw = lay_out<T>(f.w, layout::layer_major), hl = lay_out<T>(f.l, layout::layer_major);
        std::vector<T> mw(f.w.mask.begin(), f.w.mask.end()), ml(f.l.mask.begin(), f.l.mask.end());
        mw[2] = std::numeric_limits<T>::quiet_NaN();
        CHECK_THROWS_WITH_AS(
            ex.extract(hw.view, hl.view, sams::token_mask_view<T>::contiguous(mw.data(), 5, f.w.tokens),
                       sams::token_mask_view<T>::contiguous(ml.data(), 5, f.l.tokens), out),
            doctest::Contains("chosen mask has NaN or Inf at pair 0, token 2"), sams::invalid_argument);
    }
    SUBCASE("shapes") {
        const auto hw = lay_out<T>(f.w, layout::layer_major), hl = lay_out<T>(f.l, layout::layer_major);
        const auto mw = mask_of<T>(f.w), ml = mask_of<T>(f.l);
        CHECK_THROWS_WITH_AS(
            ex.extract(hw.view, hl.view, mw, ml, sams::matrix_view<T>{buf.data(), 5, D - 1, 0}),
            doctest::Contains("expected 5x12 (pairs x output_dim)"), sams::invalid_argument);
        CHECK_THROWS_WITH_AS(ex.extract(hw.view, hl.view, mw, ml, sams::matrix_view<T>{buf.data(), 4, D, 0}),
                             doctest::Contains("out is 4x12"), sams::invalid_argument);
        CHECK_THROWS_WITH_AS(ex.extract(hw.view, hl.view, mw, ml, sams::matrix_view<T>{nullptr, 5, D, 0}),
                             doctest::Contains("out has a null data pointer"), sams::invalid_argument);
        CHECK_THROWS_WITH_AS(ex.extract(hw.view, hl.view, ml, mw, out),
                             doctest::Contains("chosen mask is 5x6, expected 5x7"), sams::invalid_argument);
        auto fewer_layers = hl.view;
        fewer_layers.layers = 3;
        CHECK_THROWS_WITH_AS(ex.extract(hw.view, fewer_layers, mw, ml, out),
                             doctest::Contains("layers, pairs and dim must match"), sams::invalid_argument);
        auto unset = hw.view;
        unset.token_stride = 0;
        CHECK_THROWS_WITH_AS(ex.extract(unset, hl.view, mw, ml, out),
                             doctest::Contains("chosen hidden states: token_stride is 0"),
                             sams::invalid_argument);
        auto empty = hw.view;
        empty.dim = 0;
        CHECK_THROWS_WITH_AS(ex.extract(empty, hl.view, mw, ml, out),
                             doctest::Contains("must have layers, pairs"), sams::invalid_argument);
        std::vector<const T*> two(2, hw.view.data);
        auto short_list = sams::hidden_states_view<T>::from_layers(two, 5, f.w.tokens, 3);
        short_list.layers = 4;
        CHECK_THROWS_WITH_AS(ex.extract(short_list, hl.view, mw, ml, out),
                             doctest::Contains("layer_data has 2 pointers, expected 4"),
                             sams::invalid_argument);
        sams::mean_pool_extractor<T> out_of_range({{2, 4}, {}, {}, 0, 0});
        CHECK_THROWS_WITH_AS(out_of_range.extract(hw.view, hl.view, mw, ml, out),
                             doctest::Contains("selects layer 4 but the hidden states have 4 layers"),
                             sams::invalid_argument);
    }
    CHECK(untouched());
}

TEST_CASE("mean_pool_options: validate names the field") {
    CHECK_THROWS_WITH_AS(sams::mean_pool_extractor<float>({{1, 1}, {}, {}, 0, 0}),
                         doctest::Contains("mean_pool_options.layers: must be strictly increasing"),
                         sams::invalid_argument);
    CHECK_THROWS_WITH_AS(sams::mean_pool_extractor<float>({{}, {}, layer_reduction::random_projection, 0, 0}),
                         doctest::Contains("mean_pool_options.projection_dim: must be > 0"),
                         sams::invalid_argument);
    CHECK_NOTHROW(sams::mean_pool_extractor<float>({{0, 3, 9}, {}, layer_reduction::last_layer, 0, 0}));
}

TEST_CASE_TEMPLATE("identity_extractor: checks and copies host contexts", T, float, double) {
    const std::size_t B = 3, D = 4, stride = 6;
    std::vector<T> host(B * stride, T(0));
    for (std::size_t p = 0; p < B; ++p)
        for (std::size_t k = 0; k < D; ++k) host[p * stride + k] = static_cast<T>(10 * p + k);
    const sams::matrix_view<const T> ctx{host.data(), B, D, stride};
    const sams::identity_extractor id;

    const auto copy = id.extract(ctx);
    for (std::size_t p = 0; p < B; ++p)
        for (std::size_t k = 0; k < D; ++k) CHECK(copy(p, k) == static_cast<T>(10 * p + k));

    // Through the concept interface: [1 × B × 1 × D], rejected side and masks ignored.
    sams::context_matrix<T> out(B, D);
    const auto h = sams::contexts_as_hidden_states(ctx);
    const sams::token_mask_view<std::uint8_t> none{};
    sams::identity_extractor mutable_id;
    sams::extract_contexts(mutable_id, h, h, none, none, out.view());
    CHECK(out.values == copy.values);
    CHECK(id.output_dim(1, D) == D);
    CHECK_THROWS_WITH_AS((void)id.output_dim(2, D), doctest::Contains("must be 1"), sams::invalid_argument);

    host[1 * stride + 2] = std::numeric_limits<T>::quiet_NaN();
    std::vector<T> dst(B * D, T(5));
    CHECK_THROWS_WITH_AS(id.extract(ctx, sams::matrix_view<T>{dst.data(), B, D, 0}),
                         doctest::Contains("NaN or Inf at pair 1, column 2"), sams::invalid_argument);
    CHECK_THROWS_WITH_AS(id.extract(h, h, none, none, sams::matrix_view<T>{dst.data(), B, D, 0}),
                         doctest::Contains("NaN or Inf at pair 1, column 2"), sams::invalid_argument);
    for (T v : dst) CHECK(v == T(5));
    CHECK_THROWS_WITH_AS(id.extract(ctx, sams::matrix_view<T>{dst.data(), B, D - 1, 0}),
                         doctest::Contains("expected 3x4"), sams::invalid_argument);
}

namespace {

// The skeleton of docs/concepts.md (context_extractor): keep the two in sync.
/// The last layer's hidden state at each response's last valid token, chosen minus rejected.
struct last_token_extractor {
    [[nodiscard]] std::size_t output_dim(std::size_t /*layers*/, std::size_t dim) const { return dim; }

    template <class T, class M>
    void extract(const sams::hidden_states_view<T>& chosen, const sams::hidden_states_view<T>& rejected,
                 const sams::token_mask_view<M>& chosen_mask, const sams::token_mask_view<M>& rejected_mask,
                 sams::matrix_view<T> out) {
        // Validate everything before writing anything (strong guarantee).
        if (rejected.pairs != chosen.pairs || rejected.dim != chosen.dim ||
            rejected.layers != chosen.layers || out.rows != chosen.pairs ||
            out.cols != output_dim(chosen.layers, chosen.dim) || chosen_mask.pairs != chosen.pairs ||
            rejected_mask.pairs != chosen.pairs)
            throw sams::invalid_argument("last_token_extractor::extract: shapes do not match");
        for (std::size_t p = 0; p < chosen.pairs; ++p)
            if (last_valid(chosen_mask, p) == npos || last_valid(rejected_mask, p) == npos)
                throw sams::invalid_argument("last_token_extractor::extract: pair " + std::to_string(p) +
                                             " has no valid token");
        const std::size_t top = chosen.layers - 1;
        for (std::size_t p = 0; p < chosen.pairs; ++p) {
            const std::size_t tw = last_valid(chosen_mask, p), tl = last_valid(rejected_mask, p);
            for (std::size_t k = 0; k < chosen.dim; ++k)
                out(p, k) = chosen(top, p, tw, k) - rejected(top, p, tl, k);
        }
    }

private:
    static constexpr std::size_t npos = static_cast<std::size_t>(-1);
    template <class M>
    static std::size_t last_valid(const sams::token_mask_view<M>& mask, std::size_t p) {
        for (std::size_t t = mask.tokens; t-- > 0;)
            if (mask.valid(p, t)) return t;
        return npos;
    }
};
static_assert(sams::context_extractor<last_token_extractor, float>);

}  // namespace

TEST_CASE_TEMPLATE("context_extractor: the documented user skeleton works through extract_contexts", T, float,
                   double) {
    const fixture f = make_fixture<T>(71);
    const auto hw = lay_out<T>(f.w, layout::pair_major), hl = lay_out<T>(f.l, layout::per_layer);
    last_token_extractor ex;
    sams::context_matrix<T> out(f.w.pairs, ex.output_dim(f.w.layers, f.w.dim));
    sams::extract_contexts(ex, hw.view, hl.view, mask_of<T>(f.w), mask_of<T>(f.l), out.view());
    for (std::size_t p = 0; p < f.w.pairs; ++p) {
        std::size_t tw = 0, tl = 0;
        for (std::size_t t = 0; t < f.w.tokens; ++t)
            if (f.w.mask[p * f.w.tokens + t] != 0) tw = t;
        for (std::size_t t = 0; t < f.l.tokens; ++t)
            if (f.l.mask[p * f.l.tokens + t] != 0) tl = t;
        for (std::size_t k = 0; k < f.w.dim; ++k)
            CHECK(out(p, k) == static_cast<T>(f.w.at(3, p, tw, k)) - static_cast<T>(f.l.at(3, p, tl, k)));
    }
}

namespace {
struct no_output_dim {
    template <class T, class M>
    void extract(const sams::hidden_states_view<T>&, const sams::hidden_states_view<T>&,
                 const sams::token_mask_view<M>&, const sams::token_mask_view<M>&, sams::matrix_view<T>) {}
};
struct float_only_masks {
    [[nodiscard]] std::size_t output_dim(std::size_t, std::size_t d) const { return d; }
    void extract(const sams::hidden_states_view<float>&, const sams::hidden_states_view<float>&,
                 const sams::token_mask_view<float>&, const sams::token_mask_view<float>&,
                 sams::matrix_view<float>) {}
};
}  // namespace

TEST_CASE("context_extractor: shipped models satisfy it, incomplete types do not") {
    static_assert(sams::context_extractor<sams::mean_pool_extractor<float>, float>);
    static_assert(sams::context_extractor<sams::mean_pool_extractor<double>, double>);
    static_assert(!sams::context_extractor<sams::mean_pool_extractor<float>, double>);
    static_assert(sams::context_extractor<sams::identity_extractor, float>);
    static_assert(!sams::context_extractor<no_output_dim, float>);
    static_assert(!sams::context_extractor<float_only_masks, float>);
    static_assert(!sams::context_extractor<sams::identity_extractor, int>);
    CHECK(true);
}
