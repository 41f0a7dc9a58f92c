#!/usr/bin/env bash
# Installs the system packages sams needs to build, test and run its demo (Debian/Ubuntu).
# Idempotent and fast when everything is there: it asks dpkg first and runs apt-get (update
# included) only for what is missing.
#
#   bash tools/setup.sh                       the base set below
#   bash tools/setup.sh gnuplot               the base set plus extra packages
#   SAMS_EXTRA_PACKAGES="libtorch-dev" bash tools/setup.sh
set -euo pipefail

# The one list of what the project needs. Later pieces append here.
SAMS_PACKAGES=(
    cmake g++ make python3
    ccache             # compiler cache: the presets compile through it (CMAKE_CXX_COMPILER_LAUNCHER)
    clang-format       # .ci/run checks the files of tools/formatted_files.txt
    libeigen3-dev      # the core library's only dependency
    libopenblas-dev    # optional CBLAS GEMM of the Eigen backend (SAMS_WITH_BLAS, off by default)
    doctest-dev        # tests
    xtensor-dev        # xtensor adapter, its tests and example
    libbenchmark-dev   # bench/
    libthrust-dev      # thrust backend, tested on the CPU (CPP system)
    libtorch-dev       # examples/libtorch (CPU LibTorch 1.13), built by the dev preset
    libopenmpi-dev openmpi-bin  # sams/distributed/mpi.hpp, its tests under mpirun, examples/mpi
    libgloo-dev        # gloo's headers: LibTorch's c10d ProcessGroupGloo (examples/libtorch)
    # python/ (SAMS_BUILD_PYTHON, on in the dev preset): the module, its install and pytest suite
    pybind11-dev python3-dev python3-numpy python3-torch python3-pytest python3-pip python3-setuptools
    python3-venv
    clang libclang-rt-14-dev  # tests/fuzz: the checkpoint decoder under libFuzzer (.ci/run)
)

read -r -a extra_from_env <<< "${SAMS_EXTRA_PACKAGES:-}"
wanted=("${SAMS_PACKAGES[@]}" "${extra_from_env[@]}" "$@")

missing=()
for pkg in "${wanted[@]}"; do
    [[ -z "$pkg" ]] && continue
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done

if ((${#missing[@]} == 0)); then
    echo "setup.sh: all ${#wanted[@]} packages present"
    exit 0
fi

echo "setup.sh: installing ${missing[*]}"
if [[ $(id -u) -eq 0 ]]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    echo "setup.sh: need root (or sudo) to install: ${missing[*]}" >&2
    exit 1
fi
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
