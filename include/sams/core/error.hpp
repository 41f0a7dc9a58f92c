// Exception types. Everything the library throws derives from sams::error, so a host can
// catch one type; the subclasses say whether the caller passed bad input, a checkpoint was
// unreadable, or a compute backend failed.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>

namespace sams {

/// Base of every exception thrown by the library.
class error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// An argument had the wrong shape, range or value. The message names the argument and
/// what was expected. The call that threw changed no state.
class invalid_argument : public error {
public:
    using error::error;
};

/// A checkpoint could not be written or read: I/O failure, bad magic, unsupported version,
/// checksum mismatch, truncation, or a configuration that does not match.
class checkpoint_error : public error {
public:
    using error::error;
};

/// A compute backend reported a failure (e.g. a CUDA or cuBLAS error); the message carries
/// the backend's own error text.
class backend_error : public error {
public:
    using error::error;
};

namespace detail {

/// Where a check failed: a function or type ("sams_scheduler::step"), or a configuration
/// field given as a scope and a field name ("scheduler_config.net", "hidden"), which are
/// joined with '.' only when a message is built.
struct where_t {
    const char* scope;
    const char* field = nullptr;
    where_t(const char* s) noexcept : scope(s) {}  // NOLINT: implicit, so a plain string works
    where_t(const char* s, const char* f) noexcept : scope(s), field(f) {}
    [[nodiscard]] std::string str() const {
        std::string out(scope);
        if (field != nullptr) out.append(".").append(field);
        return out;
    }
};

/// Throws sams::invalid_argument("<where>: <what>"): the one way the library reports bad input.
[[noreturn]] inline void fail(where_t where, std::string_view what) {
    std::string message = where.str();
    message.append(": ").append(what);
    throw invalid_argument(message);
}

/// The library's argument check: throws sams::invalid_argument("<where>: <what>") unless
/// `ok`. `what` is a string literal or a callable returning the message; a callable runs
/// only when the check fails, so a passing check builds and allocates nothing (per-step
/// validation must not allocate).
template <class What>
void require(bool ok, where_t where, What&& what) {
    if (ok) [[likely]]
        return;
    if constexpr (std::is_invocable_v<What>)
        fail(where, std::string(what()));
    else
        fail(where, std::string_view(what));
}

}  // namespace detail
}  // namespace sams
