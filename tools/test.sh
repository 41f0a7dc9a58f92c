#!/usr/bin/env bash
# The README's second command: install what is missing, build everything in the `dev` preset
# (Debug, warnings as errors) and run the whole test suite.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash tools/setup.sh
# Builds that tests start themselves (header self-containment, consumer projects) use it too.
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}"
cmake --preset dev
cmake --build --preset dev -j2
ctest --preset dev --output-on-failure -j2
