// Exception types. Everything the library throws derives from sams::error, so a host can
// catch one type; the subclasses say whether the caller passed bad input, a checkpoint was
// unreadable, or a compute backend failed.
#pragma once

#include <stdexcept>
#include <string>

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
inline void require(bool condition, const char* where, const std::string& what) {
    if (!condition) throw invalid_argument(std::string(where) + ": " + what);
}

}  // namespace detail
}  // namespace sams
