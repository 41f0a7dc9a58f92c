# Shared by the consumer projects: the one program, strict warnings, and the version that
# the parent build expects the headers to carry.
if(NOT SAMS_EXPECTED_VERSION)
  message(FATAL_ERROR "pass -DSAMS_EXPECTED_VERSION=<major.minor.patch>")
endif()
string(REPLACE "." ";" _sams_expected "${SAMS_EXPECTED_VERSION}")
list(GET _sams_expected 0 _sams_major)
list(GET _sams_expected 1 _sams_minor)
list(GET _sams_expected 2 _sams_patch)

add_executable(consumer ${CMAKE_CURRENT_LIST_DIR}/main.cpp)
target_compile_features(consumer PRIVATE cxx_std_20)
target_compile_definitions(consumer PRIVATE SAMS_EXPECTED_VERSION_MAJOR=${_sams_major}
                           SAMS_EXPECTED_VERSION_MINOR=${_sams_minor} SAMS_EXPECTED_VERSION_PATCH=${_sams_patch})
if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
  target_compile_options(consumer PRIVATE -Wall -Wextra -Wpedantic -Wconversion -Wshadow -Werror)
endif()
# Set by the parent build for the consumers that get sams::sams (not the bare single header).
if(SAMS_EXPECT_CBLAS)
  target_compile_definitions(consumer PRIVATE SAMS_EXPECT_CBLAS=1)
endif()
