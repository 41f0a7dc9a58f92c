# Optional third-party packages used by some tests, examples and benchmarks. The core target
# sams::sams needs only Eigen; nothing here is ever required. Each probe sets SAMS_HAS_<NAME>
# so that subdirectories can add their targets conditionally:
#   SAMS_HAS_XTENSOR    target `xtensor` (Debian 0.24.3: flat header paths, no namespace)
#   SAMS_HAS_THRUST     target sams_thrust_host: Debian's thrust 1.17 with THRUST_DEVICE_SYSTEM=CPP
#                       (never mix with nvcc's CCCL 3.x in one binary)
#   SAMS_HAS_BENCHMARK  target benchmark::benchmark (bench/ only)
#   SAMS_HAS_TORCH      LibTorch's ${TORCH_LIBRARIES} (examples/libtorch only; opt in with SAMS_WITH_LIBTORCH)
#   SAMS_HAS_MPI        target MPI::MPI_CXX and SAMS_MPIEXEC_PREFIX, the mpirun command line for
#                       2 ranks (opt in with SAMS_WITH_MPI)
#   SAMS_HAS_CUDA       the CUDA language is enabled (opt in with SAMS_WITH_CUDA)

set(SAMS_HAS_XTENSOR OFF)
set(SAMS_HAS_THRUST OFF)
set(SAMS_HAS_BENCHMARK OFF)
set(SAMS_HAS_TORCH OFF)
set(SAMS_HAS_CUDA OFF)
set(SAMS_HAS_MPI OFF)

if(SAMS_BUILD_TESTS OR SAMS_BUILD_EXAMPLES OR SAMS_BUILD_BENCHMARKS)
  find_package(xtensor QUIET)
  if(TARGET xtensor)
    set(SAMS_HAS_XTENSOR ON)
  endif()
  # Major version 1 only: nvcc's CCCL 3.x also ships a thrust-config.cmake and is found first
  # on PATH; Debian's 1.17 is the one meant for the CPU (CPP system) build of the thrust backend.
  find_package(Thrust 1.17 CONFIG QUIET)
  if(Thrust_FOUND AND NOT TARGET sams_thrust_host)
    thrust_create_target(sams_thrust_host HOST CPP DEVICE CPP)
  endif()
  if(TARGET sams_thrust_host)
    set(SAMS_HAS_THRUST ON)
  endif()
endif()

if(SAMS_BUILD_BENCHMARKS)
  find_package(benchmark QUIET)
  if(TARGET benchmark::benchmark)
    set(SAMS_HAS_BENCHMARK ON)
  endif()
endif()

if(SAMS_WITH_LIBTORCH)
  find_package(Torch QUIET)
  if(Torch_FOUND)
    set(SAMS_HAS_TORCH ON)
  else()
    message(WARNING "SAMS_WITH_LIBTORCH=ON but LibTorch was not found (set Torch_DIR or CMAKE_PREFIX_PATH)")
  endif()
endif()

if(SAMS_WITH_MPI)
  find_package(MPI COMPONENTS CXX QUIET)
  if(MPI_CXX_FOUND AND MPIEXEC_EXECUTABLE)
    set(SAMS_HAS_MPI ON)
    # OpenMPI refuses root (CI runs as root) and more ranks than cores unless told; the
    # variables below are OpenMPI's and harmless elsewhere. Tests set the environment too.
    set(SAMS_MPIEXEC_PREFIX ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 2)
    execute_process(COMMAND ${MPIEXEC_EXECUTABLE} --version OUTPUT_VARIABLE _sams_mpi_version ERROR_QUIET)
    if(_sams_mpi_version MATCHES "Open MPI|OpenRTE")
      list(APPEND SAMS_MPIEXEC_PREFIX --allow-run-as-root --oversubscribe)
    endif()
    set(SAMS_MPIEXEC_ENV OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1)
  else()
    message(WARNING "SAMS_WITH_MPI=ON but MPI (C++ bindings and mpiexec) was not found")
  endif()
endif()

if(SAMS_WITH_CUDA)
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    enable_language(CUDA)
    set(SAMS_HAS_CUDA ON)
  else()
    message(WARNING "SAMS_WITH_CUDA=ON but no CUDA compiler was found")
  endif()
endif()

message(STATUS "sams optional dependencies: xtensor=${SAMS_HAS_XTENSOR} thrust(host)=${SAMS_HAS_THRUST} "
               "benchmark=${SAMS_HAS_BENCHMARK} torch=${SAMS_HAS_TORCH} cuda=${SAMS_HAS_CUDA} mpi=${SAMS_HAS_MPI}")
