# The optional CBLAS path of the Eigen backend's GEMM (include/sams/backend/eigen/gemm.hpp).
# SAMS_WITH_BLAS: OFF (default), AUTO (use a CBLAS when one is found), ON (require one).
# Looks for BLAS with find_package(BLAS) (OpenBLAS first unless BLA_VENDOR is set), for the
# header cblas.h (or mkl_cblas.h for MKL) and checks that cblas_sgemm links. Sets
#   SAMS_HAS_BLAS           ON when the path is used
#   SAMS_BLAS_VENDOR        the BLA_VENDOR that found it (recorded for samsConfig.cmake)
#   SAMS_CBLAS_HEADER       the header name (cblas.h or mkl_cblas.h)
#   SAMS_CBLAS_INCLUDE_DIR  its folder, when it is not on the compiler's default path
# and creates the imported target BLAS::BLAS.
set(SAMS_HAS_BLAS OFF)
set(SAMS_BLAS_VENDOR "")
set(SAMS_CBLAS_HEADER "")
set(SAMS_CBLAS_INCLUDE_DIR "")

string(TOUPPER "${SAMS_WITH_BLAS}" _sams_blas_mode)
if(_sams_blas_mode STREQUAL "OFF" OR _sams_blas_mode STREQUAL "NO" OR _sams_blas_mode STREQUAL "FALSE"
   OR _sams_blas_mode STREQUAL "0")
  return()
endif()

if(DEFINED BLA_VENDOR AND NOT BLA_VENDOR STREQUAL "")
  set(_sams_vendors "${BLA_VENDOR}")
else()
  # OpenBLAS first: the generic libblas.so may be the reference implementation.
  set(_sams_vendors OpenBLAS All)
endif()

include(CheckCXXSourceCompiles)
include(CMakePushCheckState)
foreach(_sams_vendor IN LISTS _sams_vendors)
  set(BLA_VENDOR ${_sams_vendor})
  unset(BLAS_FOUND)
  unset(BLAS_LIBRARIES)
  find_package(BLAS QUIET)
  if(NOT BLAS_FOUND)
    continue()
  endif()
  set(_sams_header cblas.h)
  if(_sams_vendor MATCHES "^Intel")
    set(_sams_header mkl_cblas.h)
  endif()
  find_path(SAMS_CBLAS_DIR_${_sams_vendor} ${_sams_header}
            PATH_SUFFIXES openblas openblas-pthread x86_64-linux-gnu x86_64-linux-gnu/openblas-pthread mkl)
  if(NOT SAMS_CBLAS_DIR_${_sams_vendor})
    continue()
  endif()
  cmake_push_check_state(RESET)
  set(CMAKE_REQUIRED_INCLUDES ${SAMS_CBLAS_DIR_${_sams_vendor}})
  set(CMAKE_REQUIRED_LIBRARIES ${BLAS_LIBRARIES})
  set(CMAKE_REQUIRED_QUIET ON)
  unset(SAMS_CBLAS_LINKS CACHE)
  check_cxx_source_compiles("
#include <${_sams_header}>
int main() {
  float a = 1, b = 1, c = 0;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 1, 1, 1, 1.0f, &a, 1, &b, 1, 0.0f, &c, 1);
  double x = 1, y = 1, z = 0;
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasTrans, 1, 1, 1, 1.0, &x, 1, &y, 1, 0.0, &z, 1);
  return c == 1.0f && z == 1.0 ? 0 : 1;
}" SAMS_CBLAS_LINKS)
  cmake_pop_check_state()
  if(SAMS_CBLAS_LINKS)
    set(SAMS_HAS_BLAS ON)
    set(SAMS_BLAS_VENDOR ${_sams_vendor})
    set(SAMS_CBLAS_HEADER ${_sams_header})
    if(NOT SAMS_CBLAS_DIR_${_sams_vendor} IN_LIST CMAKE_CXX_IMPLICIT_INCLUDE_DIRECTORIES)
      set(SAMS_CBLAS_INCLUDE_DIR ${SAMS_CBLAS_DIR_${_sams_vendor}})
    endif()
    break()
  endif()
endforeach()
if(NOT (DEFINED CACHE{BLA_VENDOR}))
  unset(BLA_VENDOR)
endif()

if(SAMS_HAS_BLAS)
  message(STATUS "sams: CBLAS GEMM path on (BLA_VENDOR ${SAMS_BLAS_VENDOR}: ${BLAS_LIBRARIES}, ${SAMS_CBLAS_HEADER})")
elseif(_sams_blas_mode STREQUAL "AUTO")
  message(STATUS "sams: no CBLAS found (cblas_sgemm with cblas.h); the Eigen backend uses Eigen's GEMM")
else()
  message(FATAL_ERROR "SAMS_WITH_BLAS=${SAMS_WITH_BLAS} but no BLAS with a CBLAS interface was found "
                      "(Debian: apt-get install libopenblas-dev; or set BLA_VENDOR / CMAKE_PREFIX_PATH)")
endif()
