// Exception types. Everything the library throws derives from sams::error, so a host can
// catch one type; the subclasses say whether the caller passed bad input, a checkpoint was
// unreadable, or a compute backend failed.
#pragma once

#include <stdexcept>
#include <string>
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

/// Throws sams::invalid_argument with "<where>: <what>" unless `condition` holds.
/// For checks on a hot path prefer check_arg() or the lazy overload below: this one takes a
/// std::string, which the caller builds even when the check passes.
inline void require(bool condition, const char* where, const std::string& what) {
    if (!condition) throw invalid_argument(std::string(where) + ": " + what);
}

/// The overload for a literal message: nothing is built unless the check fails.
inline void require(bool condition, const char* where, const char* what) {
    if (!condition) throw invalid_argument(std::string(where) + ": " + what);
}

/// As require(), but `what()` builds the message only when the check fails, so a passing
/// check allocates nothing (per-step validation must not allocate).
template <class What>
    requires std::is_invocable_r_v<std::string, What>
void require(bool condition, const char* where, What&& what) {
    if (!condition) throw invalid_argument(std::string(where) + ": " + what());
}

/// Throws sams::invalid_argument("<where>: <what>") unless ok; C strings only, so a passing
/// check builds nothing (kernels and training loops call it on every invocation).
inline void check_arg(bool ok, const char* where, const char* what) {
    if (!ok) throw invalid_argument(std::string(where) + ": " + what);
}

}  // namespace detail
}  // namespace sams
