// distributed_scheduler: one scheduling decision over a data-parallel batch. Each of R ranks
// holds B_r pairs; the wrapper gathers every rank's per-pair inputs, runs one scheduler over
// the concatenated global batch (rank 0's pairs first), and hands each rank the part of the
// decision for its own pairs. docs/distributed.md has the protocol, its cost and the launch
// commands.
#pragma once

#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <sams/core/decision.hpp>
#include <sams/core/error.hpp>
#include <sams/core/views.hpp>
#include <sams/distributed/communicator.hpp>
#include <sams/scheduler/checkpoint.hpp>
#include <sams/scheduler/concept.hpp>

namespace sams {

/// Where the scheduler runs.
enum class distributed_mode {
    /// Every rank receives the whole global batch (all-gather) and steps its own replica of
    /// the scheduler; replicas stay identical because the scheduler is deterministic. No
    /// decision is sent. The default (docs/distributed.md: faster at R = 2 here, and no
    /// rank waits for another's scheduler step).
    replicated,
    /// The root gathers the global batch, steps the only live scheduler and broadcasts the
    /// decision. Other ranks hold a scheduler that never steps (state for checkpoints only).
    root_broadcast,
};

struct distributed_options {
    distributed_mode mode = distributed_mode::replicated;
    /// The rank that writes checkpoints and, under root_broadcast, runs the scheduler.
    int root = 0;
    /// 0: any per-rank batch sizes (each ≥ 1). Otherwise the global batch size G: it must
    /// split evenly, every rank holding G / R pairs each step; checked at construction.
    std::size_t global_batch = 0;
};

/// Wraps any sams::batch_scheduler<T> (sams_scheduler, the baselines, a user's). Construct
/// it on every rank with the same scheduler configuration and seed and the same options;
/// the constructor is collective and checks that the ranks agree.
///
/// step(local) is collective. It validates the local batch, agrees with every other rank
/// on validity and shapes before any collective that depends on them, so a bad batch on
/// one rank makes every rank throw the same sams::invalid_argument (naming that rank) and
/// no rank is left blocked. The returned decision covers the local pairs only: indices are
/// local, weights and gradients are those of the global decision (w_i = 1/K with K chosen
/// over the global batch), so Σ over ranks of the local Σ w_i ℓ_i is the global loss.
template <class T, class Scheduler, communicator Comm>
    requires batch_scheduler<Scheduler, T>
class distributed_scheduler {
public:
    distributed_scheduler(Comm comm, Scheduler scheduler, distributed_options options = {})
        : comm_(std::move(comm)), scheduler_(std::move(scheduler)), options_(options) {
        constexpr const char* where = "distributed_scheduler";
        rank_ = comm_.rank();
        size_ = comm_.size();
        detail::require(size_ >= 1 && rank_ >= 0 && rank_ < size_, where, [&] {
            return "the communicator reports rank " + std::to_string(rank_) + " of " + std::to_string(size_);
        });
        // Agree on the options first: every check below is then the same on every rank.
        const std::array<std::uint64_t, 4> mine{
            static_cast<std::uint64_t>(options_.mode),
            static_cast<std::uint64_t>(static_cast<std::int64_t>(options_.root)), options_.global_batch,
            sizeof(T)};
        std::vector<std::array<std::uint64_t, 4>> all(static_cast<std::size_t>(size_));
        const std::vector<std::size_t> counts(static_cast<std::size_t>(size_), sizeof(mine));
        comm_.all_gather(std::as_bytes(std::span(mine)), std::as_writable_bytes(std::span(all)), counts);
        for (int r = 0; r < size_; ++r)
            detail::require(all[static_cast<std::size_t>(r)] == all[0], where, [&] {
                return "rank " + std::to_string(r) +
                       " was constructed with different options (mode, root, global_batch or scalar type) "
                       "than "
                       "rank 0";
            });
        detail::require(options_.root >= 0 && options_.root < size_, where, [&] {
            return "options.root is " + std::to_string(options_.root) + ", not a rank of this group of " +
                   std::to_string(size_);
        });
        const std::size_t g = options_.global_batch, r = static_cast<std::size_t>(size_);
        if (g != 0)
            detail::require(g % r == 0, where, [&] {
                return "options.global_batch " + std::to_string(g) + " does not split evenly over " +
                       std::to_string(r) + " ranks (" + std::to_string(g % r) +
                       " pairs left over); use a multiple of the rank count";
            });
        if (g != 0)
            detail::require(g >= r, where, [&] {
                return "options.global_batch " + std::to_string(g) + " is smaller than the rank count " +
                       std::to_string(r) + ": every rank needs at least one pair";
            });
        headers_.resize(r);
        header_counts_.assign(r, sizeof(header));
        counts_.resize(r);
        offsets_.resize(r + 1);
    }

    [[nodiscard]] decision<T> step(const pair_batch<T>& local) {
        decision<T> d;
        step(local, d);
        return d;
    }

    /// As step(local), writing into `out` (its buffers are reused).
    void step(const pair_batch<T>& local, decision<T>& out) {
        const bool root_mode = options_.mode == distributed_mode::root_broadcast;
        exchange(local, "distributed_scheduler::step", root_mode, true);
        // One decision over the global batch.
        if (!root_mode) {
            scheduler_.step(unpack(), global_);  // deterministic: throws the same error on every rank
        } else {
            run_on_root();
        }
        ++steps_;
        slice(out);
    }

    /// Guided selection (sams::guided_scheduler): every rank passes its share of the trusted
    /// pairs, with their sketches; the scheduler sets its direction from all of them, on every
    /// rank, exactly as one scheduler would from the concatenated trusted set. Collective;
    /// errors as in step().
    void set_trusted(const pair_batch<T>& local_trusted) requires
        requires(Scheduler& s, const pair_batch<T>& b) {
        s.set_trusted(b);
    }
    {
        const std::vector<std::size_t> kept = offsets_;  // offset() keeps describing the last step
        try {
            exchange(local_trusted, "distributed_scheduler::set_trusted", false, false);
            scheduler_.set_trusted(unpack());
        } catch (...) {
            offsets_ = kept;
            throw;
        }
        offsets_ = kept;
    }

    /// Whether the guided scheduler wants a new trusted direction before the next step, the
    /// same answer on every rank: under root_broadcast only the root's scheduler steps, so
    /// its answer is broadcast (collective there; local under replicated).
    [[nodiscard]] bool needs_trusted_refresh() requires requires(const Scheduler& s) {
        { s.needs_trusted_refresh() } -> std::convertible_to<bool>;
    }
    {
        std::uint8_t answer = scheduler_.needs_trusted_refresh() ? 1 : 0;
        if (options_.mode == distributed_mode::root_broadcast)
            comm_.broadcast(std::as_writable_bytes(std::span(&answer, 1)), options_.root);
        return answer != 0;
    }

    /// Guided selection from a direction the ranks computed in parts: each passes the sketch
    /// of its own trusted pairs' gradient; the parts are summed (all-reduce, in double) and
    /// the sum set on every rank (S is linear, so the sum is the sketch of the whole
    /// gradient). `clean_agreement` is taken from the root. Collective; a part of the wrong
    /// size on any rank makes every rank throw the same sams::invalid_argument.
    void set_trusted_direction(std::span<const T> local_part,
                               std::optional<double> clean_agreement = std::nullopt) requires
        requires(Scheduler& s, std::span<const T> g) {
        s.set_trusted_direction(g, clean_agreement);
    }
    {
        constexpr const char* where = "distributed_scheduler::set_trusted_direction";
        const auto n = static_cast<double>(local_part.size());
        std::array<double, 2> sizes{n, -n};  // max and -min of the sizes in one all-reduce
        comm_.all_reduce(std::span(sizes), reduce_op::max);
        detail::require(sizes[0] == -sizes[1], where, "the ranks passed direction parts of different sizes");
        sum_.assign(local_part.begin(), local_part.end());
        comm_.all_reduce(std::span(sum_), reduce_op::sum);
        std::array<double, 2> agreement{clean_agreement ? 1.0 : 0.0, clean_agreement.value_or(0.0)};
        comm_.broadcast(std::as_writable_bytes(std::span(agreement)), options_.root);
        direction_.resize(sum_.size());
        for (std::size_t i = 0; i < sum_.size(); ++i) direction_[i] = static_cast<T>(sum_[i]);
        scheduler_.set_trusted_direction(
            std::span<const T>(direction_),
            agreement[0] != 0.0 ? std::optional<double>(agreement[1]) : std::nullopt);
    }

    /// The decision over the whole global batch of the last step (on every rank).
    [[nodiscard]] const decision<T>& global_decision() const noexcept { return global_; }
    /// Global index of this rank's first pair in the last step's batch.
    [[nodiscard]] std::size_t offset() const noexcept { return offsets_[static_cast<std::size_t>(rank_)]; }
    /// Pairs in the last step's global batch.
    [[nodiscard]] std::size_t global_size() const noexcept { return offsets_.back(); }
    [[nodiscard]] std::uint64_t steps() const noexcept { return steps_; }
    [[nodiscard]] int rank() const noexcept { return rank_; }
    [[nodiscard]] int size() const noexcept { return size_; }
    [[nodiscard]] const distributed_options& options() const noexcept { return options_; }
    [[nodiscard]] Scheduler& scheduler() noexcept { return scheduler_; }
    [[nodiscard]] const Scheduler& scheduler() const noexcept { return scheduler_; }
    [[nodiscard]] Comm& communicator() noexcept { return comm_; }
    /// Bytes this rank sent and received in the collectives of the last step (headers,
    /// rows, and under root_broadcast the decision), for logs and docs/distributed.md.
    [[nodiscard]] std::size_t last_payload_bytes() const noexcept { return payload_bytes_; }

    /// Collective. The root writes the checkpoint (Scheduler::save); a failure there makes
    /// every rank throw the same sams::checkpoint_error.
    void save(const std::filesystem::path& path) const requires requires(const Scheduler& s) { s.save(path); }
    {
        std::string message;
        if (rank_ == options_.root) {
            try {
                scheduler_.save(path);
            } catch (const std::exception& e) {
                message = e.what();
            }
        }
        share_outcome<checkpoint_error>(message, "distributed_scheduler::save");
    }

    /// Collective. The root reads the checkpoint and broadcasts its bytes; every rank
    /// rebuilds its scheduler from them (no shared file system needed). The checkpoint must
    /// match the scheduler's configuration (where the scheduler has one); on any failure every
    /// rank throws the same sams::checkpoint_error and keeps its state.
    void restore(const std::filesystem::path& path) requires requires(std::span<const std::uint8_t> b) {
        Scheduler::deserialize(b);
    }
    {
        constexpr const char* where = "distributed_scheduler::restore";
        std::vector<std::uint8_t> bytes;
        std::string message;
        if (rank_ == options_.root) {
            try {
                bytes = detail::read_file(path);
            } catch (const std::exception& e) {
                message = e.what();
            }
        }
        share_outcome<checkpoint_error>(message, where);
        std::uint64_t n = bytes.size();
        comm_.broadcast(std::as_writable_bytes(std::span(&n, 1)), options_.root);
        bytes.resize(static_cast<std::size_t>(n));
        comm_.broadcast(std::as_writable_bytes(std::span(bytes)), options_.root);
        // Same bytes on every rank: deserialisation succeeds or fails the same way everywhere.
        Scheduler loaded = Scheduler::deserialize(std::span<const std::uint8_t>(bytes));
        if constexpr (requires { detail::first_config_difference(scheduler_.config(), loaded.config()); }) {
            const std::string diff = detail::first_config_difference(scheduler_.config(), loaded.config());
            if (!diff.empty())
                throw checkpoint_error(std::string(where) +
                                       ": checkpoint written with a different configuration (field " + diff +
                                       " differs)");
        }
        if constexpr (requires { scheduler_.context_dim(); })
            if (loaded.context_dim() != scheduler_.context_dim())
                throw checkpoint_error(std::string(where) + ": checkpoint has context_dim " +
                                       std::to_string(loaded.context_dim()) + ", this scheduler " +
                                       std::to_string(scheduler_.context_dim()));
        scheduler_ = std::move(loaded);
        if constexpr (requires { scheduler_.steps(); })
            steps_ = static_cast<std::uint64_t>(scheduler_.steps());
    }

    /// Collective: whether every rank's scheduler state serialises to the same bytes (the
    /// replicas of the replicated mode have not diverged). A debugging aid: it serialises.
    [[nodiscard]] bool replicas_identical() requires requires(const Scheduler& s) { s.serialize(); }
    {
        const auto bytes = scheduler_.serialize();
        const std::uint64_t h = detail::fnv1a64(std::span<const std::uint8_t>(bytes));
        // Two exact halves: a double holds any 32-bit integer.
        std::array<double, 4> v{double(h >> 32), double(h & 0xffffffffu), -double(h >> 32),
                                -double(h & 0xffffffffu)};
        comm_.all_reduce(std::span(v), reduce_op::max);
        return v[0] == -v[2] && v[1] == -v[3];
    }

private:
    /// What every rank tells every other before the rows move. Fixed size.
    struct header {
        std::uint64_t status = 0;  ///< 0: the local batch passed its checks
        std::uint64_t pairs = 0;
        std::uint64_t context_cols = 0;
        std::uint64_t sketch_cols = 0;
        std::uint64_t fields = 0;  ///< bit set of the optional fields present
        std::uint64_t step = 0;
        std::uint64_t message_bytes = 0;
        std::uint64_t call = 0;  ///< which collective call this is (0 step, 1 set_trusted)
    };
    static constexpr std::uint64_t has_reference = 1, has_lengths = 2, has_ids = 4, has_contexts = 8,
                                   has_sketches = 16;

    /// Steps 1-3 of the protocol: local checks, the header all-gather (agreement on status
    /// and shapes before anything that could block), then the rows to every rank or the root.
    void exchange(const pair_batch<T>& local, const char* where, bool to_root, bool enforce_split) {
        header h{};
        std::string message;
        try {
            check_local(local, h);
        } catch (const error& e) {
            message = e.what();
            h.status = 1;
        }
        h.message_bytes = message.size();
        h.step = steps_;
        h.call = enforce_split ? 0 : 1;

        comm_.all_gather(std::as_bytes(std::span(&h, 1)), std::as_writable_bytes(std::span(headers_)),
                         header_counts_);
        for (int r = 0; r < size_; ++r) {
            const header& o = headers_[static_cast<std::size_t>(r)];
            if (o.status == 0) continue;
            std::string text(o.message_bytes, '\0');
            if (r == rank_) text = message;
            comm_.broadcast(std::as_writable_bytes(std::span(text.data(), text.size())), r);
            throw invalid_argument(std::string(where) + ": rank " + std::to_string(r) + ": " + text);
        }
        check_agreement(where, enforce_split);

        pack(local);
        const std::size_t total = offsets_.back() * row_bytes_;
        for (std::size_t r = 0; r < counts_.size(); ++r) counts_[r] = headers_[r].pairs * row_bytes_;
        recv_.resize(!to_root || rank_ == options_.root ? total : 0);
        if (to_root)
            comm_.gather(std::span<const std::byte>(send_), std::span<std::byte>(recv_), counts_,
                         options_.root);
        else
            comm_.all_gather(std::span<const std::byte>(send_), std::span<std::byte>(recv_), counts_);
        payload_bytes_ += send_.size() + recv_.size();
    }

    template <class M>
    static bool finite_rows(const matrix_view<const M>& m) {
        return detail::all_finite(m);
    }

    /// Checks that need only the local batch. Contexts and sketches must be host memory.
    static void check_local(const pair_batch<T>& b, header& h) {
        constexpr const char* where = "local batch";
        const std::size_t n = b.size();
        detail::require(n > 0, where, "the local batch is empty (policy_chosen has no entries)");
        detail::check_span(b.policy_chosen, n, true, where, "batch.policy_chosen");
        detail::check_span(b.policy_rejected, n, true, where, "batch.policy_rejected");
        if (b.has_reference()) {
            detail::check_span(b.reference_chosen, n, true, where, "batch.reference_chosen");
            detail::check_span(b.reference_rejected, n, true, where, "batch.reference_rejected");
        }
        if (b.has_lengths()) {
            detail::check_span(b.chosen_length, n, true, where, "batch.chosen_length");
            detail::check_span(b.rejected_length, n, true, where, "batch.rejected_length");
        }
        detail::require(b.ids.empty() || b.ids.size() == n, where,
                        "batch.ids must be empty or have one entry per pair");
        check_matrix(b.contexts, n, where, "batch.contexts");
        check_matrix(b.sketches, n, where, "batch.sketches");
        h.pairs = n;
        h.context_cols = b.contexts.empty() ? 0 : b.contexts.cols;
        h.sketch_cols = b.sketches.empty() ? 0 : b.sketches.cols;
        h.fields = (b.has_reference() ? has_reference : 0) | (b.has_lengths() ? has_lengths : 0) |
                   (b.ids.empty() ? 0 : has_ids) | (h.context_cols ? has_contexts : 0) |
                   (h.sketch_cols ? has_sketches : 0);
    }
    static void check_matrix(const matrix_view<const T>& m, std::size_t n, const char* where,
                             const char* name) {
        if (m.empty()) return;
        detail::require(m.data != nullptr && m.rows == n, where, [&] {
            return std::string(name) + " must have one row per pair (" + std::to_string(n) + "), got " +
                   std::to_string(m.rows) + (m.data == nullptr ? " with a null data pointer" : "");
        });
        detail::require(m.stride() >= m.cols, where,
                        [&] { return std::string(name) + ".row_stride must be >= cols"; });
        detail::require(finite_rows(m), where, [&] { return std::string(name) + " contains NaN or Inf"; });
    }

    /// Shapes every rank must share, and the split; the same verdict on every rank.
    void check_agreement(const char* where, bool enforce_split) {
        const header& h0 = headers_[0];
        offsets_[0] = 0;
        for (std::size_t r = 0; r < headers_.size(); ++r) {
            const header& o = headers_[r];
            const std::string who = "rank " + std::to_string(r);
            if (o.call != h0.call)
                throw invalid_argument(std::string(where) + ": " + who + " called " +
                                       (o.call == 0 ? "step" : "set_trusted") + " while rank 0 called " +
                                       (h0.call == 0 ? "step" : "set_trusted"));
            if (o.step != h0.step)
                throw invalid_argument(std::string(where) + ": " + who + " is at step " +
                                       std::to_string(o.step) + ", rank 0 at step " +
                                       std::to_string(h0.step) + " (a rank skipped or repeated a step)");
            if (o.fields != h0.fields)
                throw invalid_argument(std::string(where) + ": " + who +
                                       " passes a different set of optional "
                                       "fields (reference, lengths, ids, contexts, sketches) than rank 0");
            if (o.context_cols != h0.context_cols || o.sketch_cols != h0.sketch_cols)
                throw invalid_argument(
                    std::string(where) + ": " + who + " has " + std::to_string(o.context_cols) +
                    " context and " + std::to_string(o.sketch_cols) + " sketch columns, rank 0 has " +
                    std::to_string(h0.context_cols) + " and " + std::to_string(h0.sketch_cols));
            if (enforce_split && options_.global_batch != 0 &&
                o.pairs * headers_.size() != options_.global_batch)
                throw invalid_argument(std::string(where) + ": " + who + " holds " + std::to_string(o.pairs) +
                                       " pairs; options.global_batch " +
                                       std::to_string(options_.global_batch) + " over " +
                                       std::to_string(headers_.size()) + " ranks needs " +
                                       std::to_string(options_.global_batch / headers_.size()) + " on each");
            offsets_[r + 1] = offsets_[r] + static_cast<std::size_t>(o.pairs);
        }
        fields_ = h0.fields;
        dim_ = static_cast<std::size_t>(h0.context_cols);
        sketch_dim_ = static_cast<std::size_t>(h0.sketch_cols);
        scalars_ =
            2 + ((fields_ & has_reference) ? 2 : 0) + ((fields_ & has_lengths) ? 2 : 0) + dim_ + sketch_dim_;
        row_bytes_ = scalars_ * sizeof(T) + ((fields_ & has_ids) ? sizeof(std::int64_t) : 0);
        payload_bytes_ = headers_.size() * sizeof(header);
    }

    void pack(const pair_batch<T>& b) {
        const std::size_t n = b.size();
        send_.resize(n * row_bytes_);
        std::byte* p = send_.data();
        auto put = [&p](const void* src, std::size_t bytes) {
            std::memcpy(p, src, bytes);
            p += bytes;
        };
        for (std::size_t i = 0; i < n; ++i) {
            put(&b.policy_chosen[i], sizeof(T));
            put(&b.policy_rejected[i], sizeof(T));
            if (fields_ & has_reference) {
                put(&b.reference_chosen[i], sizeof(T));
                put(&b.reference_rejected[i], sizeof(T));
            }
            if (fields_ & has_lengths) {
                put(&b.chosen_length[i], sizeof(T));
                put(&b.rejected_length[i], sizeof(T));
            }
            if (dim_) put(b.contexts.row(i), dim_ * sizeof(T));
            if (sketch_dim_) put(b.sketches.row(i), sketch_dim_ * sizeof(T));
            if (fields_ & has_ids) put(&b.ids[i], sizeof(std::int64_t));
        }
    }

    /// The global batch from the gathered rows (views over this object's buffers).
    pair_batch<T> unpack() {
        const std::size_t g = offsets_.back();
        const bool ref = fields_ & has_reference, len = fields_ & has_lengths, ids = fields_ & has_ids;
        a_w_.resize(g);
        a_l_.resize(g);
        r_w_.resize(ref ? g : 0);
        r_l_.resize(ref ? g : 0);
        n_w_.resize(len ? g : 0);
        n_l_.resize(len ? g : 0);
        ids_.resize(ids ? g : 0);
        contexts_.resize(g * dim_);
        sketches_.resize(g * sketch_dim_);
        const std::byte* p = recv_.data();
        auto get = [&p](void* dst, std::size_t bytes) {
            std::memcpy(dst, p, bytes);
            p += bytes;
        };
        for (std::size_t i = 0; i < g; ++i) {
            get(&a_w_[i], sizeof(T));
            get(&a_l_[i], sizeof(T));
            if (ref) {
                get(&r_w_[i], sizeof(T));
                get(&r_l_[i], sizeof(T));
            }
            if (len) {
                get(&n_w_[i], sizeof(T));
                get(&n_l_[i], sizeof(T));
            }
            if (dim_) get(contexts_.data() + i * dim_, dim_ * sizeof(T));
            if (sketch_dim_) get(sketches_.data() + i * sketch_dim_, sketch_dim_ * sizeof(T));
            if (ids) get(&ids_[i], sizeof(std::int64_t));
        }
        pair_batch<T> out;
        out.policy_chosen = a_w_;
        out.policy_rejected = a_l_;
        out.reference_chosen = r_w_;
        out.reference_rejected = r_l_;
        out.chosen_length = n_w_;
        out.rejected_length = n_l_;
        out.ids = ids_;
        if (dim_) out.contexts = {contexts_.data(), g, dim_, dim_};
        if (sketch_dim_) out.sketches = {sketches_.data(), g, sketch_dim_, sketch_dim_};
        return out;
    }

    /// Broadcasts the root's outcome: every rank throws E(message) if the root failed.
    template <class E>
    void share_outcome(const std::string& message, const char* where) const {
        std::uint64_t n = message.size();
        comm_.broadcast(std::as_writable_bytes(std::span(&n, 1)), options_.root);
        if (n == 0) return;
        std::string text = message;
        text.resize(static_cast<std::size_t>(n));
        comm_.broadcast(std::as_writable_bytes(std::span(text.data(), text.size())), options_.root);
        throw E(std::string(where) + ": rank " + std::to_string(options_.root) + ": " + text);
    }

    /// root_broadcast: the root steps, then sends its outcome and the decision.
    void run_on_root() {
        const std::size_t g = offsets_.back();
        const bool root = rank_ == options_.root;
        std::string message;
        std::uint64_t kind = 0;  // 0 invalid_argument, 1 checkpoint_error, 2 backend_error, 3 other
        if (root) {
            try {
                scheduler_.step(unpack(), global_);
            } catch (const invalid_argument& e) {
                message = e.what();
            } catch (const checkpoint_error& e) {
                message = e.what();
                kind = 1;
            } catch (const backend_error& e) {
                message = e.what();
                kind = 2;
            } catch (const std::exception& e) {
                message = e.what();
                kind = 3;
            }
        }
        std::array<std::uint64_t, 3> status{message.size(), kind, root ? global_.score.size() : 0};
        comm_.broadcast(std::as_writable_bytes(std::span(status)), options_.root);
        if (status[0] != 0) {
            std::string text = message;
            text.resize(static_cast<std::size_t>(status[0]));
            comm_.broadcast(std::as_writable_bytes(std::span(text.data(), text.size())), options_.root);
            if (status[1] == 0) throw invalid_argument(text);
            if (status[1] == 1) throw checkpoint_error(text);
            if (status[1] == 2) throw backend_error(text);
            throw error(text);
        }
        // Per pair: weight, loss, two gradients, (score); then the mask; then the metrics.
        const std::size_t scores = static_cast<std::size_t>(status[2]);
        const std::size_t bytes = (4 * g + scores) * sizeof(T) + g + sizeof(step_metrics);
        decision_bytes_.resize(bytes);
        static_assert(std::is_trivially_copyable_v<step_metrics>);
        if (root) {
            std::byte* p = decision_bytes_.data();
            auto write = [&p](const auto& v) {
                if (!v.empty()) std::memcpy(p, v.data(), v.size() * sizeof(v[0]));
                p += v.size() * sizeof(v[0]);
            };
            write(global_.weight);
            write(global_.loss);
            write(global_.d_policy_chosen);
            write(global_.d_policy_rejected);
            write(global_.score);
            write(global_.mask);
            std::memcpy(p, &global_.metrics, sizeof(step_metrics));
        }
        comm_.broadcast(std::span<std::byte>(decision_bytes_), options_.root);
        payload_bytes_ += decision_bytes_.size();
        if (root) return;
        const std::byte* p = decision_bytes_.data();
        auto read_array = [&](auto& v, std::size_t n) {
            using V = typename std::remove_reference_t<decltype(v)>::value_type;
            v.resize(n);
            if (n) std::memcpy(v.data(), p, n * sizeof(V));
            p += n * sizeof(V);
        };
        read_array(global_.weight, g);
        read_array(global_.loss, g);
        read_array(global_.d_policy_chosen, g);
        read_array(global_.d_policy_rejected, g);
        read_array(global_.score, scores);
        read_array(global_.mask, g);
        std::memcpy(&global_.metrics, p, sizeof(step_metrics));
        global_.selected.clear();
        for (std::size_t i = 0; i < g; ++i)
            if (global_.mask[i]) global_.selected.push_back(i);
    }

    /// This rank's part of the global decision.
    void slice(decision<T>& out) const {
        const std::size_t lo = offset(), n = offsets_[static_cast<std::size_t>(rank_) + 1] - lo;
        auto part = [&](const auto& from, auto& to) {
            if (from.empty()) {
                to.clear();
                return;
            }
            to.assign(from.begin() + static_cast<std::ptrdiff_t>(lo),
                      from.begin() + static_cast<std::ptrdiff_t>(lo + n));
        };
        out.selected.clear();
        for (const std::size_t i : global_.selected)
            if (i >= lo && i < lo + n) out.selected.push_back(i - lo);
        part(global_.mask, out.mask);
        part(global_.weight, out.weight);
        part(global_.loss, out.loss);
        part(global_.d_policy_chosen, out.d_policy_chosen);
        part(global_.d_policy_rejected, out.d_policy_rejected);
        part(global_.score, out.score);
        out.metrics = global_.metrics;
    }

    mutable Comm comm_;
    Scheduler scheduler_;
    distributed_options options_;
    int rank_ = 0, size_ = 1;
    std::uint64_t steps_ = 0;

    std::vector<header> headers_;
    std::vector<std::size_t> header_counts_, counts_, offsets_;
    std::uint64_t fields_ = 0;
    std::size_t dim_ = 0, sketch_dim_ = 0, scalars_ = 0, row_bytes_ = 0, payload_bytes_ = 0;
    std::vector<std::byte> send_, recv_, decision_bytes_;
    std::vector<T> a_w_, a_l_, r_w_, r_l_, n_w_, n_l_, contexts_, sketches_;
    std::vector<std::int64_t> ids_;
    std::vector<double> sum_;
    std::vector<T> direction_;
    decision<T> global_;
};

}  // namespace sams
