// doctest for a test program that includes torch first. Torch's logging header (glog or
// c10's) defines CHECK, CHECK_EQ, ... which would silently replace doctest's assertions;
// they are dropped here, right before doctest defines its own. Include it after every torch
// header, with DOCTEST_CONFIG_IMPLEMENT or DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN defined first
// in the one file that should hold doctest's implementation.
#pragma once

#undef CHECK
#undef CHECK_EQ
#undef CHECK_NE
#undef CHECK_LE
#undef CHECK_LT
#undef CHECK_GE
#undef CHECK_GT

#include <doctest/doctest.h>
