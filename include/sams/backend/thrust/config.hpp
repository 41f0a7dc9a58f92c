// Build configuration of the thrust backend: which thrust system it runs on (CUDA under
// nvcc; CPP, OMP or TBB on the host, where GEMMs fall back to Eigen), and SAMS_HOST_DEVICE.
#pragma once

#include <thrust/execution_policy.h>
#include <thrust/version.h>

/// SAMS_THRUST_CUDA is 1 when the backend runs on THRUST_DEVICE_SYSTEM_CUDA (nvcc, CCCL from
/// the toolkit, cuBLAS) and 0 when it runs on a host system (CPP/OMP/TBB, Eigen GEMMs).
#if THRUST_DEVICE_SYSTEM == THRUST_DEVICE_SYSTEM_CUDA
#if !defined(__CUDACC__)
#error "sams thrust backend: THRUST_DEVICE_SYSTEM is CUDA, so this file must be compiled by nvcc (a .cu file). For a CPU build define THRUST_DEVICE_SYSTEM=THRUST_DEVICE_SYSTEM_CPP (or _OMP)."
#endif
#if THRUST_VERSION < 200000
#error "sams thrust backend: nvcc found thrust < 2.0 (Debian's libthrust-dev?) ahead of the toolkit's CCCL; keep -I/-isystem /usr/include out of CUDA builds."
#endif
#define SAMS_THRUST_CUDA 1
#else
#define SAMS_THRUST_CUDA 0
#endif

/// Marks functions that kernels call: __host__ __device__ under nvcc, nothing for g++/clang.
#if defined(__CUDACC__)
#define SAMS_HOST_DEVICE __host__ __device__
#else
#define SAMS_HOST_DEVICE
#endif
