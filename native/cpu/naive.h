// Naive twins of the CPU kernels: the plainest loops that are obviously
// correct (double accumulation where it matters, no blocking, no threads, no
// tricks). Same signatures as kernels.h with a _naive suffix. Used by the
// native tests (fast vs naive, and the "naive" backend of the backend test
// table) and by the benchmarks (speed-up over naive).
//
// Declared from the op list, native/ops.def, for the entries marked NAIVE;
// the ops marked NO_NAIVE have no twin (the list says why).
#pragma once

#include <cstdint>

namespace encsec {

#define ENCSEC_OP(name, naive, cuda, params) ENCSEC_IF_##naive(void name##_naive params;)
#include "ops.def"
#undef ENCSEC_OP

}  // namespace encsec
