// Counts the global operator new calls of a test program, so a test can check that a
// steady-state call allocates nothing: compare sams_test::allocations() before and after.
// It replaces the global operator new/delete, so include it in one translation unit of a
// test executable only (each tests/unit/test_<area>.cpp is one).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

namespace sams_test {

inline std::atomic<std::size_t> new_calls{0};

/// operator new calls so far, on any thread.
inline std::size_t allocations() noexcept { return new_calls.load(std::memory_order_relaxed); }

}  // namespace sams_test

void* operator new(std::size_t n) {
    sams_test::new_calls.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
