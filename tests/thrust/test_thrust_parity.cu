// The thrust backend tests on the CUDA system: the same source, compiled by nvcc.
#include "test_thrust_parity.cpp"
