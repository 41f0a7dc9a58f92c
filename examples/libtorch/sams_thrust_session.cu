// The thrust session on the CUDA system: the same source, compiled by nvcc.
#include "sams_thrust_session.cpp"
