// The checkpoint byte format: a bounds-checked writer and reader, a checksum, the
// field-by-field encoding of scheduler_config, and an atomic, durable file write (a
// uniquely named temporary file created exclusively, fsync, rename, fsync of the folder),
// so a crash or a concurrent save never leaves a broken checkpoint behind.
//
// The decoder trusts nothing past the checksum (FNV-1a protects against bit rot, not
// against whoever writes the file): every count is checked against the bytes that remain
// and against the caps of sams/core/limits.hpp before anything is allocated or looped over.
#pragma once

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <new>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <iterator>
#include <type_traits>
#include <vector>

#if __has_include(<unistd.h>) && __has_include(<fcntl.h>)
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#define SAMS_CHECKPOINT_POSIX 1
#else
#define SAMS_CHECKPOINT_POSIX 0
#endif

#include <sams/core/error.hpp>
#include <sams/core/limits.hpp>
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
/// checkpoint_error instead of reading past the end. Every count is checked against the
/// bytes that remain before anything is allocated for it.
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
    /// Reads an element count and checks that `count · element_bytes` bytes remain (so a
    /// forged count can neither allocate nor loop beyond the file) and that count <= cap.
    std::size_t get_count(const char* what, std::size_t element_bytes, std::uint64_t cap = UINT64_MAX) {
        const auto n = get<std::uint64_t>(what);
        if (n > cap)
            throw checkpoint_error(std::string("checkpoint: ") + what + " claims " + std::to_string(n) +
                                   " elements, more than the limit " + std::to_string(cap));
        require_elements(n, element_bytes, what);
        return static_cast<std::size_t>(n);
    }
    /// Throws unless `count · element_bytes` bytes remain (overflow-checked).
    void require_elements(std::uint64_t count, std::size_t element_bytes, const char* what) const {
        const auto bytes = checked_mul(count, element_bytes);
        if (!bytes || *bytes > remaining())
            throw checkpoint_error(std::string("checkpoint: ") + what + " claims " + std::to_string(count) +
                                   " elements, more than the " + std::to_string(remaining()) +
                                   " bytes left in the file");
    }
    /// Reads an array written by put_array; `expected` (if not SIZE_MAX) must match its length.
    template <class V>
        requires std::is_trivially_copyable_v<V>
    void get_array(std::vector<V>& out, const char* what, std::size_t expected = SIZE_MAX) {
        const auto n = get<std::uint64_t>(what);
        if (expected != SIZE_MAX && n != expected)
            throw checkpoint_error(std::string("checkpoint: ") + what + " has " + std::to_string(n) +
                                   " elements, expected " + std::to_string(expected));
        require_elements(n, sizeof(V), what);
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
    [[nodiscard]] std::size_t remaining() const noexcept { return bytes_.size() - pos_; }

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
        else if constexpr (std::is_same_v<F, bool>) {
            const auto v = r.get<std::uint8_t>(name);
            if (v > 1)  // only 0 and 1 are written: anything else is a forged or corrupted file
                throw checkpoint_error(std::string("checkpoint: ") + name + " holds " + std::to_string(v) +
                                       ", expected 0 or 1");
            field = v != 0;
        }
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

/// The sizes a scheduler of this configuration and context width D would allocate, against
/// the caps of sams/core/limits.hpp. Returns an empty string when they fit, else the reason.
/// All products are overflow-checked.
inline std::string size_limit_violation(const scheduler_config& c, std::uint64_t context_dim) {
    using namespace sams::limits;
    const auto too_big = [](const char* name, std::uint64_t v, std::uint64_t cap) {
        return std::string(name) + " = " + std::to_string(v) + " exceeds the limit " + std::to_string(cap);
    };
    if (context_dim > max_width) return too_big("context_dim", context_dim, max_width);
    if (c.net.hidden > max_width) return too_big("net.hidden", c.net.hidden, max_width);
    if (c.net.depth > max_depth) return too_big("net.depth", c.net.depth, max_depth);
    if (c.net.explore_depth > max_depth) return too_big("net.explore_depth", c.net.explore_depth, max_depth);
    const auto raw_features = checked_mul(c.net.hidden, c.net.depth >= 2 ? c.net.depth - 2 : 0);
    if (!raw_features) return "net.hidden * (net.depth - 2) overflows";
    const std::uint64_t e = c.net.block_size == 0 ? 0 : *raw_features / c.net.block_size;
    if (e > max_width) return too_big("feature width hidden*(depth-2)/block_size", e, max_width);
    const auto p1 = residual_net_parameters(context_dim, c.net.hidden, c.net.depth);
    if (!p1 || *p1 > max_net_parameters)
        return "the exploitation net would have more than " + std::to_string(max_net_parameters) + " parameters";
    const auto p2 = residual_net_parameters(e, e, c.net.explore_depth);
    if (!p2 || *p2 > max_net_parameters)
        return "the exploration net would have more than " + std::to_string(max_net_parameters) + " parameters";
    if (c.opt.exploit_steps > max_train_steps) return too_big("opt.exploit_steps", c.opt.exploit_steps, max_train_steps);
    if (c.opt.explore_steps > max_train_steps) return too_big("opt.explore_steps", c.opt.explore_steps, max_train_steps);
    if (c.pool.replay_batches > max_replay_batches)
        return too_big("pool.replay_batches", c.pool.replay_batches, max_replay_batches);
    if (c.pool.capacity_rows > max_pool_rows) return too_big("pool.capacity_rows", c.pool.capacity_rows, max_pool_rows);
    const std::uint64_t row = context_dim + 1 + (c.reward.reference_compat ? e + 1 : 0);
    const auto pool = checked_mul(c.pool.capacity_rows, row);
    if (!pool || *pool > max_pool_elements)
        return "the full pool (pool.capacity_rows * (context_dim + 1" +
               std::string(c.reward.reference_compat ? " + feature width + 1" : "") + ")) exceeds " +
               std::to_string(max_pool_elements) + " elements";
    return {};
}

/// Before a decoder builds the nets of a stored configuration: the nets' values and both Adam
/// moments are stored in full, so 3·(P1 + P2)·sizeof(T) bytes must remain. A forged depth or
/// width is refused here instead of driving a long loop or a huge allocation.
inline void check_nets_fit(const scheduler_config& c, std::uint64_t context_dim, std::size_t value_size,
                           std::size_t bytes_left) {
    if (const std::string why = size_limit_violation(c, context_dim); !why.empty())
        throw checkpoint_error("checkpoint: stored configuration is out of range (" + why + ")");
    const std::uint64_t e = c.net.feature_dim();
    const auto p1 = residual_net_parameters(context_dim, c.net.hidden, c.net.depth);
    const auto p2 = residual_net_parameters(e, e, c.net.explore_depth);
    const auto stored = checked_mul(3 * (*p1 + *p2), value_size);  // each P <= 2^32: no wrap before the multiply
    if (!stored || *stored > bytes_left)
        throw checkpoint_error("checkpoint: the stored configuration's nets need " +
                               (stored ? std::to_string(*stored) : std::string("more than 2^64")) +
                               " bytes, only " + std::to_string(bytes_left) + " are left in the file");
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
/// xoshiro256** is stuck at zero from the all-zero state (every draw is 0 and rejection
/// loops such as rng::below never end), so such a state is refused.
inline void read_rng(byte_reader& r, rng& g, const char* what) {
    rng::state_type s{};
    for (auto& v : s) v = r.get<std::uint64_t>(what);
    if ((s[0] | s[1] | s[2] | s[3]) == 0)
        throw checkpoint_error(std::string("checkpoint: ") + what + " has the all-zero state, which never leaves zero");
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

/// "<name>.<pid>.<counter>.<random>.tmp": unique per process, thread and call.
inline std::filesystem::path temporary_sibling(const std::filesystem::path& path, unsigned attempt) {
    static std::atomic<std::uint64_t> counter{0};
    const std::uint64_t n = counter.fetch_add(1, std::memory_order_relaxed);
    rng g(reinterpret_cast<std::uintptr_t>(&n) ^ (n << 20) ^ attempt,
          static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()));
#if SAMS_CHECKPOINT_POSIX
    const auto pid = static_cast<unsigned long long>(::getpid());
#else
    const auto pid = 0ULL;
#endif
    char suffix[96];
    std::snprintf(suffix, sizeof suffix, ".%llu.%llu.%016llx.tmp", pid, static_cast<unsigned long long>(n),
                  static_cast<unsigned long long>(g()));
    std::filesystem::path tmp = path;
    tmp += suffix;
    return tmp;
}

/// Writes `bytes` to `path` atomically and durably:
///   1. a temporary file in the same folder, with a name unique to this call, created
///      exclusively (O_CREAT | O_EXCL | O_NOFOLLOW: a file or symlink planted under that
///      name is never opened, let alone followed);
///   2. every byte written, then fsync of the file;
///   3. rename over `path` (atomic within one file system: a reader sees the old file or
///      the new one, never a mix; concurrent saves to one path all succeed, the last rename
///      wins);
///   4. fsync of the folder, so the rename itself survives a power loss.
/// On failure the temporary file is removed, the previous checkpoint (if any) is untouched,
/// and sams::checkpoint_error is thrown.
inline void write_file_atomically(const std::filesystem::path& path, std::span<const std::uint8_t> bytes) {
    const auto fail = [&](const std::string& what, int err) {
        throw checkpoint_error("checkpoint: " + what + " ('" + path.string() +
                               "'): " + std::generic_category().message(err));
    };
#if SAMS_CHECKPOINT_POSIX
    std::filesystem::path tmp;
    int fd = -1;
    for (unsigned attempt = 0; attempt < 16 && fd < 0; ++attempt) {
        tmp = temporary_sibling(path, attempt);
        fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST) fail("cannot create a temporary file next to the checkpoint", errno);
    }
    if (fd < 0) fail("cannot create a unique temporary file next to the checkpoint", EEXIST);
    const auto abandon = [&](const std::string& what, int err) {
        ::close(fd);
        ::unlink(tmp.c_str());
        fail(what, err);
    };
    std::size_t done = 0;
    while (done < bytes.size()) {
        const ::ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) abandon("writing the temporary file failed", n < 0 ? errno : EIO);
        done += static_cast<std::size_t>(n);
    }
    if (::fsync(fd) != 0) abandon("fsync of the temporary file failed", errno);
    if (::close(fd) != 0) {
        const int err = errno;
        ::unlink(tmp.c_str());
        fail("closing the temporary file failed", err);
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        const int err = errno;
        ::unlink(tmp.c_str());
        fail("cannot rename the temporary file over the checkpoint", err);
    }
    const std::filesystem::path folder = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
    const int dir = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) fail("cannot open the checkpoint's folder to sync it", errno);
    const int synced = ::fsync(dir);
    const int err = errno;
    ::close(dir);
    if (synced != 0 && err != EINVAL) fail("fsync of the checkpoint's folder failed", err);  // EINVAL: fs without dir sync
#else
    // Portable fallback: unique name and rename, without O_EXCL/O_NOFOLLOW or fsync.
    const std::filesystem::path tmp = temporary_sibling(path, 0);
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        if (!out) fail("cannot open a temporary file next to the checkpoint", EIO);
        out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
        out.flush();
        if (!out) {
            out.close();
            std::error_code ignored;
            std::filesystem::remove(tmp, ignored);
            fail("writing the temporary file failed", EIO);
        }
    }
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec) {
        std::error_code ignored;
        std::filesystem::remove(tmp, ignored);
        fail("cannot rename the temporary file over the checkpoint", ec.value());
    }
#endif
}

/// Reads a whole checkpoint file. A missing file, a directory or other non-regular file, a
/// file larger than limits::max_checkpoint_bytes, or an I/O error: sams::checkpoint_error.
inline std::vector<std::uint8_t> read_file(const std::filesystem::path& path) {
    const std::string name = "'" + path.string() + "'";
    try {
        std::error_code ec;
        const auto status = std::filesystem::status(path, ec);
        if (ec || !std::filesystem::exists(status))
            throw checkpoint_error("checkpoint: cannot open " + name + " for reading: " +
                                   (ec ? ec.message() : std::string("no such file")));
        if (!std::filesystem::is_regular_file(status))
            throw checkpoint_error("checkpoint: cannot open " + name + " for reading: not a regular file");
        std::ifstream in(path, std::ios::binary);
        if (!in) throw checkpoint_error("checkpoint: cannot open " + name + " for reading");
        in.seekg(0, std::ios::end);
        const auto end = static_cast<std::streamoff>(in.tellg());
        if (!in || end < 0) throw checkpoint_error("checkpoint: cannot determine the size of " + name);
        if (static_cast<std::uint64_t>(end) > limits::max_checkpoint_bytes)
            throw checkpoint_error("checkpoint: " + name + " has " + std::to_string(end) +
                                   " bytes, more than the limit " + std::to_string(limits::max_checkpoint_bytes));
        in.seekg(0, std::ios::beg);
        std::vector<std::uint8_t> bytes(static_cast<std::size_t>(end));
        if (!bytes.empty()) in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
        // A short read means the file changed size while it was read: refuse rather than guess.
        if (in.bad() || static_cast<std::size_t>(in.gcount()) != bytes.size() || in.peek() != std::char_traits<char>::eof())
            throw checkpoint_error("checkpoint: reading " + name + " failed (I/O error, or it changed while read)");
        return bytes;
    } catch (const error&) {
        throw;
    } catch (const std::bad_alloc&) {
        throw checkpoint_error("checkpoint: out of memory reading " + name);
    } catch (const std::exception& e) {  // std::ios_base::failure, std::filesystem::filesystem_error
        throw checkpoint_error("checkpoint: reading " + name + " failed: " + e.what());
    }
}

}  // namespace sams::detail
