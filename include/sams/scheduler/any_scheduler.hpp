// A run-time choice of scheduler: any_scheduler<T> holds anything that models
// batch_scheduler<S, T> (sams_scheduler, a baseline, a user's selector) behind one type, so a
// host can pick the method from its command line without a dispatch of its own.
#pragma once

#include <concepts>
#include <memory>
#include <type_traits>
#include <typeinfo>
#include <utility>

#include <sams/core/convert.hpp>
#include <sams/core/decision.hpp>
#include <sams/core/error.hpp>
#include <sams/core/views.hpp>
#include <sams/scheduler/concept.hpp>

namespace sams {

/// Type-erased batch_scheduler over scalar type T. Owns the scheduler it is given (moved in),
/// is move-only, and costs one virtual call per step. A moved-from any_scheduler is empty:
/// step() on it throws sams::invalid_argument. The wrapped scheduler stays reachable through
/// target<S>() (e.g. to save a sams_scheduler's checkpoint).
template <std::floating_point T>
class any_scheduler {
public:
    using value_type = T;

    template <class S>
        requires(!std::same_as<std::remove_cvref_t<S>, any_scheduler> &&
                 batch_scheduler<std::remove_cvref_t<S>, T>)
    any_scheduler(S&& scheduler)  // NOLINT: implicit, so any scheduler converts where one is expected
        : impl_(std::make_unique<model<std::remove_cvref_t<S>>>(std::forward<S>(scheduler))) {}

    any_scheduler(any_scheduler&&) noexcept = default;
    any_scheduler& operator=(any_scheduler&&) noexcept = default;

    [[nodiscard]] decision<T> step(const pair_batch<T>& batch) {
        decision<T> d;
        step(batch, d);
        return d;
    }
    void step(const pair_batch<T>& batch, decision<T>& out) { checked().step(batch, out); }

    /// A batch in another floating-point type (host memory), converted into buffers this
    /// object reuses: a double host steps a float scheduler without a copy loop.
    template <std::floating_point U>
        requires(!std::same_as<U, T>)
    [[nodiscard]] decision<T> step(const pair_batch<U>& batch) {
        decision<T> d;
        step(batch, d);
        return d;
    }
    template <std::floating_point U>
        requires(!std::same_as<U, T>)
    void step(const pair_batch<U>& batch, decision<T>& out) {
        auto& s = checked();
        s.step(converter_.convert(batch), out);
    }

    /// False once moved from.
    [[nodiscard]] explicit operator bool() const noexcept { return impl_ != nullptr; }
    /// The wrapped scheduler's type (typeid of S).
    [[nodiscard]] const std::type_info& target_type() const noexcept {
        return impl_ ? impl_->type() : typeid(void);
    }
    /// The wrapped scheduler if it is an S, else nullptr.
    template <class S>
    [[nodiscard]] S* target() noexcept {
        auto* m = dynamic_cast<model<S>*>(impl_.get());
        return m ? &m->scheduler : nullptr;
    }
    template <class S>
    [[nodiscard]] const S* target() const noexcept {
        const auto* m = dynamic_cast<const model<S>*>(impl_.get());
        return m ? &m->scheduler : nullptr;
    }

private:
    struct interface {
        virtual ~interface() = default;
        virtual void step(const pair_batch<T>& batch, decision<T>& out) = 0;
        [[nodiscard]] virtual const std::type_info& type() const noexcept = 0;
    };
    template <class S>
    struct model final : interface {
        template <class A>
        explicit model(A&& s) : scheduler(std::forward<A>(s)) {}
        void step(const pair_batch<T>& batch, decision<T>& out) override { scheduler.step(batch, out); }
        [[nodiscard]] const std::type_info& type() const noexcept override { return typeid(S); }
        S scheduler;
    };

    interface& checked() {
        detail::require(impl_ != nullptr, "sams::any_scheduler::step", "the scheduler is empty (moved from)");
        return *impl_;
    }

    std::unique_ptr<interface> impl_;
    batch_converter<T> converter_;
};

static_assert(batch_scheduler<any_scheduler<float>, float>,
              "sams::any_scheduler<T> must model sams::batch_scheduler (see docs/concepts.md)");

}  // namespace sams
