// A read-only matrix_view cannot be turned into a writable one: the library hands contexts
// to the host as matrix_view<const T>, and that must not leak write access.
// expect: matrix_view<const float>.*matrix_view<float>
#include <sams/core/views.hpp>

#include <vector>

int main() {
    std::vector<float> storage(6, 0.0f);
    const sams::matrix_view<float> writable{storage.data(), 2, 3, 0};
    const sams::matrix_view<const float> read_only = writable;  // the allowed direction
#ifdef SAMS_COMPILE_FAIL
    const sams::matrix_view<float> back = read_only;
    return static_cast<int>(back.rows);
#else
    return static_cast<int>(read_only.rows) - 2;
#endif
}
