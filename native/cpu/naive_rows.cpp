// Naive twins (naive.h) of the row ops and the LSH codes: serial loops
// straight from the definitions in native/ops.def. The gather backward adds
// in float in increasing i, the order the op defines, so the fast kernel and
// the CUDA launcher must match it bit for bit.
#include <cmath>

#include "cpu/naive.h"

namespace encsec {

void gather_rows_forward_naive(float* out, const float* inp, const int32_t* indices, int64_t m, int64_t d) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t c = 0; c < d; ++c) out[i * d + c] = inp[static_cast<int64_t>(indices[i]) * d + c];
}

void gather_rows_backward_naive(float* dinp, const float* dout, const int32_t* indices, int64_t n, int64_t m,
                                int64_t d) {
  for (int64_t k = 0; k < n * d; ++k) dinp[k] = 0.0f;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t c = 0; c < d; ++c) dinp[static_cast<int64_t>(indices[i]) * d + c] += dout[i * d + c];
}

void concat_rows_forward_naive(float* out, const float* const* parts, const int64_t* rows, int count, int64_t d) {
  int64_t at = 0;
  for (int k = 0; k < count; ++k)
    for (int64_t e = 0; e < rows[k] * d; ++e) out[at++] = parts[k][e];
}

void scale_rows_forward_naive(float* out, const float* inp, const float* s, int64_t n, int64_t d) {
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < d; ++c) out[r * d + c] = inp[r * d + c] * s[r];
}

void lsh_codes_forward_naive(float* out, const float* proj, int64_t n, int F, int P) {
  for (int64_t r = 0; r < n; ++r)
    for (int f = 0; f < F; ++f) {
      double code = 0;
      for (int j = 0; j < P; ++j)
        if (proj[r * F * P + f * P + j] >= 0.0f) code += std::ldexp(1.0, j);
      out[r * F + f] = static_cast<float>(code);
    }
}

}  // namespace encsec
