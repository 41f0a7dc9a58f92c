// The checkpoint byte format: a bounds-checked writer and reader, a checksum, the
// field-by-field encoding of scheduler_config, and an atomic file write (temporary file,
// then rename) so a crash mid-save never leaves a broken checkpoint behind.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <utility>
#include <iterator>
#include <type_traits>
#include <vector>

#include <sams/core/error.hpp>
#include <sams/core/rng.hpp>
#include <sams/scheduler/scheduler_config.hpp>

namespace sams::detail {

inline constexpr std::array<char, 8> checkpoint_magic{'S', 'A', 'M', 'S', 'C', 'K', 'P', 'T'};
inline constexpr std::uint32_t checkpoint_version = 1;

/// FNV-1a, 64 bit: enough to catch truncation and bit rot; not a security measure.
inline std::uint64_t fnv1a64(std::span<const std::uint8_t> bytes) noexcept {
    std::uint64_t h = 0xcbf29ce484222325ULL;
    for (const std::uint8_t b : bytes) {
        h ^= b;
        h *= 0x100000001b3ULL;
    }
    return h;
}

/// Appends little-endian-as-in-memory values to a byte buffer. Checkpoints are meant to be
/// read on the machine kind that wrote them (same endianness and float format).
class byte_writer {
public:
    template <class V>
        requires std::is_trivially_copyable_v<V>
    void put(const V& v) {
        const auto* p = reinterpret_cast<const std::uint8_t*>(&v);
        bytes_.insert(bytes_.end(), p, p + sizeof(V));
    }
    template <class V>
        requires std::is_trivially_copyable_v<V>
    void put_array(std::span<const V> values) {
        put<std::uint64_t>(values.size());
        if (values.empty()) return;
        const auto* p = reinterpret_cast<const std::uint8_t*>(values.data());
        bytes_.insert(bytes_.end(), p, p + values.size_bytes());
    }
    void put_tag(const char* tag) {
        const std::size_t n = std::strlen(tag);
        put<std::uint32_t>(static_cast<std::uint32_t>(n));
        bytes_.insert(bytes_.end(), tag, tag + n);
    }
    [[nodiscard]] std::vector<std::uint8_t>& bytes() noexcept { return bytes_; }

private:
    std::vector<std::uint8_t> bytes_;
};

/// Reads what byte_writer wrote; every read checks the remaining length and throws
/// checkpoint_error instead of reading past the end.
class byte_reader {
public:
    explicit byte_reader(std::span<const std::uint8_t> bytes) noexcept : bytes_(bytes) {}

    template <class V>
        requires std::is_trivially_copyable_v<V>
    V get(const char* what) {
        need(sizeof(V), what);
        V v;
        std::memcpy(&v, bytes_.data() + pos_, sizeof(V));
        pos_ += sizeof(V);
        return v;
    }
    /// Reads an array written by put_array; `expected` (if not SIZE_MAX) must match its length.
    template <class V>
        requires std::is_trivially_copyable_v<V>
    void get_array(std::vector<V>& out, const char* what, std::size_t expected = SIZE_MAX) {
        const auto n = get<std::uint64_t>(what);
        if (expected != SIZE_MAX && n != expected)
            throw checkpoint_error(std::string("checkpoint: ") + what + " has " + std::to_string(n) +
                                   " elements, expected " + std::to_string(expected));
        if (n > (bytes_.size() - pos_) / sizeof(V)) fail_truncated(what);
        out.resize(static_cast<std::size_t>(n));
        if (n > 0) std::memcpy(out.data(), bytes_.data() + pos_, static_cast<std::size_t>(n) * sizeof(V));
        pos_ += static_cast<std::size_t>(n) * sizeof(V);
    }
    void expect_tag(const char* tag) {
        const std::size_t n = std::strlen(tag);
        const auto len = get<std::uint32_t>(tag);
        need(len, tag);
        if (len != n || std::memcmp(bytes_.data() + pos_, tag, n) != 0)
            throw checkpoint_error(std::string("checkpoint: expected section '") + tag +
                                   "', the file is corrupted or from an incompatible version");
        pos_ += n;
    }
    [[nodiscard]] bool at_end() const noexcept { return pos_ == bytes_.size(); }

private:
    void need(std::size_t n, const char* what) const {
        if (n > bytes_.size() - pos_) fail_truncated(what);
    }
    [[noreturn]] static void fail_truncated(const char* what) {
        throw checkpoint_error(std::string("checkpoint: truncated while reading ") + what);
    }

    std::span<const std::uint8_t> bytes_;
    std::size_t pos_ = 0;
};

/// Calls f(name, field) for every field of the config, in a fixed order: one list serves
/// both writing and reading, so the two cannot drift apart.
template <class Config, class F>
    requires std::is_same_v<std::remove_const_t<Config>, scheduler_config>
void visit_config(Config& c, F&& f) {
    f("loss.kind", c.loss.kind);
    f("loss.beta", c.loss.beta);
    f("loss.label_smoothing", c.loss.label_smoothing);
    f("loss.simpo_gamma", c.loss.simpo_gamma);
    f("loss.length_normalize", c.loss.length_normalize);
    f("net.hidden", c.net.hidden);
    f("net.depth", c.net.depth);
    f("net.block_size", c.net.block_size);
    f("net.explore_depth", c.net.explore_depth);
    f("net.act", c.net.act);
    f("net.dropout", c.net.dropout);
    f("net.layer_norm_eps", c.net.layer_norm_eps);
    f("opt.learning_rate", c.opt.learning_rate);
    f("opt.beta1", c.opt.beta1);
    f("opt.beta2", c.opt.beta2);
    f("opt.eps", c.opt.eps);
    f("opt.weight_decay", c.opt.weight_decay);
    f("opt.reset_each_update", c.opt.reset_each_update);
    f("opt.exploit_steps", c.opt.exploit_steps);
    f("opt.explore_steps", c.opt.explore_steps);
    f("opt.early_stop_mse", c.opt.early_stop_mse);
    f("reward.mode", c.reward.mode);
    f("reward.a", c.reward.a);
    f("reward.b", c.reward.b);
    f("reward.alpha", c.reward.alpha);
    f("reward.smoothing", c.reward.smoothing);
    f("reward.smoothing_lambda", c.reward.smoothing_lambda);
    f("reward.length_normalized_chosen", c.reward.length_normalized_chosen);
    f("reward.chosen_reward_term", c.reward.chosen_reward_term);
    f("reward.reference_compat", c.reward.reference_compat);
    f("pool.capacity_rows", c.pool.capacity_rows);
    f("pool.replay_batches", c.pool.replay_batches);
    f("select.ratio", c.select.ratio);
    f("select.rule", c.select.rule);
    f("select.temperature", c.select.temperature);
    f("select.explore_weight", c.select.explore_weight);
    f("select.warmup_steps", c.select.warmup_steps);
    f("select.weights", c.select.weights);
}

// The last enumerator of each config enum, for range checks on decoding.
constexpr loss_kind last_enumerator(loss_kind) { return loss_kind::sppo_hard; }
constexpr activation last_enumerator(activation) { return activation::silu; }
constexpr reward_mode last_enumerator(reward_mode) { return reward_mode::weight; }
constexpr selection_rule last_enumerator(selection_rule) { return selection_rule::softmax_sample; }
constexpr weight_scaling last_enumerator(weight_scaling) { return weight_scaling::per_batch; }

inline void write_config(byte_writer& w, const scheduler_config& c) {
    visit_config(c, [&](const char*, const auto& field) {
        using F = std::remove_cvref_t<decltype(field)>;
        if constexpr (std::is_enum_v<F>)
            w.put<std::int32_t>(static_cast<std::int32_t>(field));
        else if constexpr (std::is_same_v<F, bool>)
            w.put<std::uint8_t>(field ? 1 : 0);
        else if constexpr (std::is_same_v<F, std::size_t>)
            w.put<std::uint64_t>(field);
        else
            w.put<double>(field);
    });
}

/// Reads a config; the result is validated, so a corrupted file cannot produce a scheduler
/// with impossible settings.
inline scheduler_config read_config(byte_reader& r) {
    scheduler_config c;
    visit_config(c, [&](const char* name, auto& field) {
        using F = std::remove_cvref_t<decltype(field)>;
        if constexpr (std::is_enum_v<F>) {
            const auto v = r.get<std::int32_t>(name);
            if (v < 0 || v > static_cast<std::int32_t>(last_enumerator(F{})))
                throw checkpoint_error(std::string("checkpoint: ") + name + " holds an unknown value " +
                                       std::to_string(v));
            field = static_cast<F>(v);
        }
        else if constexpr (std::is_same_v<F, bool>)
            field = r.get<std::uint8_t>(name) != 0;
        else if constexpr (std::is_same_v<F, std::size_t>)
            field = static_cast<std::size_t>(r.get<std::uint64_t>(name));
        else
            field = r.get<double>(name);
    });
    try {
        c.validate();
    } catch (const invalid_argument& e) {
        throw checkpoint_error(std::string("checkpoint: stored configuration is invalid (") + e.what() + ")");
    }
    return c;
}

/// Names the first field where two configs differ, or returns an empty string.
inline std::string first_config_difference(const scheduler_config& a, const scheduler_config& b) {
    auto encode_fields = [](const scheduler_config& c) {
        std::vector<std::pair<std::string, std::vector<std::uint8_t>>> fields;
        visit_config(c, [&](const char* name, const auto& field) {
            byte_writer w;
            w.put(field);
            fields.emplace_back(name, std::move(w.bytes()));
        });
        return fields;
    };
    const auto fa = encode_fields(a);
    const auto fb = encode_fields(b);
    for (std::size_t i = 0; i < fa.size(); ++i)
        if (fa[i].second != fb[i].second) return fa[i].first;
    return {};
}

inline void write_rng(byte_writer& w, const rng& g) {
    for (const std::uint64_t s : g.state()) w.put(s);
}
inline void read_rng(byte_reader& r, rng& g, const char* what) {
    rng::state_type s{};
    for (auto& v : s) v = r.get<std::uint64_t>(what);
    g.set_state(s);
}

/// Frames a payload: magic, format version, payload length, payload, checksum.
inline std::vector<std::uint8_t> frame_checkpoint(const std::vector<std::uint8_t>& payload) {
    byte_writer w;
    for (char ch : checkpoint_magic) w.put(ch);
    w.put(checkpoint_version);
    w.put<std::uint64_t>(payload.size());
    auto& out = w.bytes();
    out.insert(out.end(), payload.begin(), payload.end());
    w.put(fnv1a64(payload));
    return std::move(out);
}

/// Checks the frame and returns a view of the payload.
inline std::span<const std::uint8_t> unframe_checkpoint(std::span<const std::uint8_t> bytes) {
    constexpr std::size_t head = checkpoint_magic.size() + sizeof(std::uint32_t) + sizeof(std::uint64_t);
    if (bytes.size() < head + sizeof(std::uint64_t))
        throw checkpoint_error("checkpoint: file too short (" + std::to_string(bytes.size()) +
                               " bytes) to be a sams checkpoint");
    if (std::memcmp(bytes.data(), checkpoint_magic.data(), checkpoint_magic.size()) != 0)
        throw checkpoint_error("checkpoint: bad magic, not a sams checkpoint");
    byte_reader r(bytes.subspan(checkpoint_magic.size()));
    const auto version = r.get<std::uint32_t>("format version");
    if (version != checkpoint_version)
        throw checkpoint_error("checkpoint: format version " + std::to_string(version) +
                               " is not supported (this build reads version " +
                               std::to_string(checkpoint_version) + ")");
    const auto length = r.get<std::uint64_t>("payload length");
    if (length != bytes.size() - head - sizeof(std::uint64_t))
        throw checkpoint_error("checkpoint: payload length " + std::to_string(length) + " does not match the file size " +
                               std::to_string(bytes.size()) + " (truncated or corrupted)");
    const auto payload = bytes.subspan(head, static_cast<std::size_t>(length));
    std::uint64_t stored = 0;
    std::memcpy(&stored, bytes.data() + head + length, sizeof(stored));
    if (stored != fnv1a64(payload)) throw checkpoint_error("checkpoint: checksum mismatch (the file is corrupted)");
    return payload;
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, flushed and
/// closed, then renamed over the target. On failure the temporary file is removed and the
/// previous checkpoint (if any) is untouched.
inline void write_file_atomically(const std::filesystem::path& path, std::span<const std::uint8_t> bytes) {
    std::filesystem::path tmp = path;
    tmp += ".tmp";
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        if (!out) throw checkpoint_error("checkpoint: cannot open '" + tmp.string() + "' for writing");
        out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
        out.flush();
        if (!out) {
            out.close();
            std::error_code ignored;
            std::filesystem::remove(tmp, ignored);
            throw checkpoint_error("checkpoint: writing '" + tmp.string() + "' failed");
        }
    }
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec) {
        std::error_code ignored;
        std::filesystem::remove(tmp, ignored);
        throw checkpoint_error("checkpoint: cannot rename '" + tmp.string() + "' to '" + path.string() +
                               "': " + ec.message());
    }
}

inline std::vector<std::uint8_t> read_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw checkpoint_error("checkpoint: cannot open '" + path.string() + "' for reading");
    std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad()) throw checkpoint_error("checkpoint: reading '" + path.string() + "' failed");
    return bytes;
}

}  // namespace sams::detail
