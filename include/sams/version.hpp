// The library version: the one place it is written down (CMake reads it from here).
#pragma once

#define SAMS_VERSION_MAJOR 0
#define SAMS_VERSION_MINOR 1
#define SAMS_VERSION_PATCH 0

namespace sams {
inline constexpr int version_major = SAMS_VERSION_MAJOR;
inline constexpr int version_minor = SAMS_VERSION_MINOR;
inline constexpr int version_patch = SAMS_VERSION_PATCH;
}  // namespace sams
