// Row ops on [rows, d] matrices (see native/cpu/rows.cpp): gather and its
// scatter-add backward, concatenation along dim 0, per-row scaling.
#include "cuda/cuda_common.cuh"

namespace encsec {
namespace cuda {
namespace {

#define ENCSEC_GRID_LOOP(i, n) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

__global__ void gather_rows_kernel(float* out, const float* inp, const int32_t* indices, int64_t m, int64_t d) {
  ENCSEC_GRID_LOOP(k, m * d) {
    const int64_t i = k / d, c = k - i * d;
    out[k] = inp[static_cast<int64_t>(indices[i]) * d + c];
  }
}

// Thread (column c, row chunk y) owns dinp[rows of chunk y, c]: it zeroes them,
// then scans every index and adds dout[i, c] for the rows it owns, in
// increasing i. No atomics: each output element has one writer and the sum
// order is the op's (the CPU kernel's), so the result is bitwise the CPU's.
__global__ void gather_rows_backward_kernel(float* dinp, const float* dout, const int32_t* indices, int64_t n,
                                            int64_t m, int64_t d, int64_t rows_per_chunk) {
  const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (c >= d) return;
  for (int64_t y = blockIdx.y; y * rows_per_chunk < n; y += gridDim.y) {
    const int64_t r0 = y * rows_per_chunk;
    const int64_t r1 = r0 + rows_per_chunk < n ? r0 + rows_per_chunk : n;
    for (int64_t r = r0; r < r1; ++r) dinp[r * d + c] = 0.0f;
    for (int64_t i = 0; i < m; ++i) {
      const int64_t r = indices[i];
      if (r >= r0 && r < r1) dinp[r * d + c] += dout[i * d + c];
    }
  }
}

__global__ void scale_rows_kernel(float* out, const float* inp, const float* s, int64_t n, int64_t d) {
  ENCSEC_GRID_LOOP(k, n * d) out[k] = inp[k] * s[k / d];
}

}  // namespace
}  // namespace cuda
}  // namespace encsec

using namespace encsec::cuda;

extern "C" {

int cuda_gather_rows_forward(float* out, const float* inp, const int32_t* indices, int64_t m, int64_t d) {
  if (m <= 0 || d <= 0) return 0;
  gather_rows_kernel<<<grid_for(m * d), kThreads>>>(out, inp, indices, m, d);
  return launch_status();
}

int cuda_gather_rows_backward(float* dinp, const float* dout, const int32_t* indices, int64_t n, int64_t m, int64_t d) {
  if (n <= 0 || d <= 0) return 0;
  // Chunks of 16 rows: enough threads (d x n/16) to fill the device for the
  // usual shapes, while each thread's scan of the m indices stays short.
  const int64_t rows_per_chunk = 16;
  const int threads = d >= 128 ? 128 : 32;
  const int64_t chunks = (n + rows_per_chunk - 1) / rows_per_chunk;
  dim3 grid(static_cast<unsigned>((d + threads - 1) / threads), static_cast<unsigned>(chunks < 65535 ? chunks : 65535));
  gather_rows_backward_kernel<<<grid, threads>>>(dinp, dout, indices, n, m, d, rows_per_chunk);
  return launch_status();
}

int cuda_concat_rows_forward(float* out, const float* const* parts, const int64_t* rows, int count, int64_t d) {
  cudaError_t e = cudaSuccess;
  int64_t at = 0;
  for (int k = 0; k < count && e == cudaSuccess; ++k) {
    const int64_t n = rows[k] * d;
    if (n > 0) e = cudaMemcpyAsync(out + at, parts[k], sizeof(float) * size_t(n), cudaMemcpyDeviceToDevice, 0);
    at += n;
  }
  return launch_status(e);
}

int cuda_scale_rows_forward(float* out, const float* inp, const float* s, int64_t n, int64_t d) {
  if (n <= 0 || d <= 0) return 0;
  scale_rows_kernel<<<grid_for(n * d), kThreads>>>(out, inp, s, n, d);
  return launch_status();
}

}  // extern "C"
