// LSH bucket codes for B4B (see native/cpu/lsh.cpp): one thread per (row, family).
#include "cuda/cuda_common.cuh"

namespace encsec {
namespace cuda {
namespace {

__global__ void lsh_codes_kernel(float* out, const float* proj, int64_t n, int F, int P) {
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < n * F; k += int64_t(gridDim.x) * blockDim.x) {
    const float* p = proj + k * P;  // row r = k / F, family f = k % F: (r*F + f)*P
    uint32_t code = 0;
    for (int j = 0; j < P; ++j) code |= static_cast<uint32_t>(p[j] >= 0.0f) << j;
    out[k] = static_cast<float>(code);
  }
}

}  // namespace
}  // namespace cuda
}  // namespace encsec

using namespace encsec::cuda;

extern "C" {

int cuda_lsh_codes_forward(float* out, const float* proj, int64_t n, int F, int P) {
  if (n <= 0 || F <= 0) return 0;
  lsh_codes_kernel<<<grid_for(n * F), kThreads>>>(out, proj, n, F, P);
  return launch_status();
}

}  // extern "C"
