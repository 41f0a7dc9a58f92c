// Gradient sketches for guided selection: a seeded CountSketch that maps a gradient of any
// length P to k numbers, linearly, without storing a k×P matrix. Hosts may use any linear
// sketch of their own (a Gaussian projection, the last layer's gradient, a LoRA block's);
// this one is cheap (one add per parameter) and reproducible in any language, because the
// bucket and sign of parameter j are a documented hash of (seed, j).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include <sams/core/error.hpp>

namespace sams {

/// CountSketch S: R^P → R^k with S_{b(j), j} = σ(j) ∈ {−1, +1} and zeros elsewhere, where
/// h = splitmix64(seed ⊕ splitmix64(offset + j)), b(j) = (h >> 1) mod k and σ(j) = +1 when h
/// is even. E[⟨Sx, Sy⟩] = ⟨x, y⟩, and S is linear: the sketch of a sum of gradients (one
/// backward pass over a whole trusted set) is the sum of their sketches.
class count_sketch {
public:
    /// @param width k ≥ 1, the sketch width
    /// @param seed  selects the hash; every gradient of one run must use the same seed
    count_sketch(std::size_t width, std::uint64_t seed) : width_(width), seed_(seed) {
        detail::require(width > 0, "sams::count_sketch: width", "must be >= 1");
    }

    [[nodiscard]] std::size_t width() const noexcept { return width_; }
    [[nodiscard]] std::uint64_t seed() const noexcept { return seed_; }

    /// The bucket and sign of global parameter index j.
    [[nodiscard]] std::size_t bucket(std::uint64_t j) const noexcept {
        return static_cast<std::size_t>((hash(j) >> 1) % width_);
    }
    [[nodiscard]] int sign(std::uint64_t j) const noexcept { return (hash(j) & 1U) == 0 ? 1 : -1; }

    /// out += S · x, where x holds the parameters with global indices offset .. offset+|x|−1
    /// (so a host can sketch a model tensor by tensor). `out` must have width() entries.
    template <class In, class Out>
    void accumulate(std::span<const In> x, std::span<Out> out, std::uint64_t offset = 0) const {
        detail::require(out.size() == width_, "sams::count_sketch::accumulate: out", [&] {
            return "must have the sketch width " + std::to_string(width_) + ", got " + std::to_string(out.size());
        });
        for (std::size_t j = 0; j < x.size(); ++j) {
            const std::uint64_t h = hash(offset + j);
            const auto v = static_cast<Out>(x[j]);
            out[static_cast<std::size_t>((h >> 1) % width_)] += (h & 1U) == 0 ? v : -v;
        }
    }

    /// out = S · x.
    template <class In, class Out>
    void apply(std::span<const In> x, std::span<Out> out) const {
        detail::require(out.size() == width_, "sams::count_sketch::apply: out", [&] {
            return "must have the sketch width " + std::to_string(width_) + ", got " + std::to_string(out.size());
        });
        for (auto& v : out) v = Out(0);
        accumulate(x, out, 0);
    }

    /// The hash behind bucket() and sign().
    [[nodiscard]] std::uint64_t hash(std::uint64_t j) const noexcept { return splitmix64(seed_ ^ splitmix64(j)); }

    /// splitmix64's finaliser (Steele, Lea & Flood 2014): the mixing step of the hash.
    [[nodiscard]] static constexpr std::uint64_t splitmix64(std::uint64_t x) noexcept {
        x += 0x9e3779b97f4a7c15ULL;
        x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
        x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
        return x ^ (x >> 31);
    }

private:
    std::size_t width_;
    std::uint64_t seed_;
};

}  // namespace sams
