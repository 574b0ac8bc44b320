// CPU kernels: one file per op under native/cpu/, `<op>_forward` /
// `<op>_backward` pairs, outputs first, gradients named d*.
//
// The declarations come from the one list of ops, native/ops.def, which also
// documents each op and the conventions shared by all backends (inputs
// trusted, gradient outputs overwritten, null gradient = not needed). Which
// ops have a naive twin (native/cpu/naive.h) is said there too.
#pragma once

#include <cstdint>

namespace encsec {

#define ENCSEC_OP(name, naive, cuda, params) void name params;
#include "ops.def"
#undef ENCSEC_OP

// True if every element is finite. Not in the op list: a query returning a
// value to the host (the CUDA side, cuda_all_finite in native/cuda/cuda_kernels.h,
// returns it through an out-parameter instead).
bool all_finite(const float* inp, int64_t n);

}  // namespace encsec

// The layout of the augmentation parameters (AugParam) and the exact semantics
// of images_to_tensor / augment_forward are in native/cpu/augment.h.
