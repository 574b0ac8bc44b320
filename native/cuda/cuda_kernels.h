// CUDA launchers: the same ops, argument order and semantics as
// native/cpu/kernels.h (both declared from native/ops.def), prefixed cuda_, on
// device pointers. Every launcher
// returns 0 on success or a cudaError_t value (cuda_error_string() names it).
// Launchers are asynchronous on the default stream unless they return a value
// to the host. This header is plain C++: no CUDA or Node headers, so the
// bindings can include it from ordinary .cpp files.
#pragma once

#include <cstddef>
#include <cstdint>

extern "C" {

// ---- device management (device.cu)
// Number of usable devices; on failure returns 0 and writes the driver's reason to msg.
int cuda_device_count(char* msg, int msglen);
// Name and memory of device i (for `encsec info`).
int cuda_device_info(int index, char* name, int namelen, size_t* total_mem);
const char* cuda_error_string(int err);
int cuda_set_device(int index);
int cuda_synchronize();
// Device memory through a caching allocator (same idea as native/alloc.h).
int cuda_malloc(void** ptr, size_t bytes);
int cuda_free(void* ptr, size_t bytes);
int cuda_memcpy_h2d(void* dst, const void* src, size_t bytes);
int cuda_memcpy_d2h(void* dst, const void* src, size_t bytes);
int cuda_memcpy_d2d(void* dst, const void* src, size_t bytes);
// *result = 1 if every element is finite (synchronous).
int cuda_all_finite(const float* inp, int64_t n, int* result);

// ---- kernels (one .cu file per op, named as in native/cpu/): declared from
// the op list, native/ops.def, for the entries marked CUDA.
#define ENCSEC_OP(name, naive, cuda, params) ENCSEC_IF_##cuda(int cuda_##name params;)
#include "ops.def"
#undef ENCSEC_OP
}  // extern "C"
