// Row ops on [rows, d] matrices: gather (index_select on dim 0) and its
// scatter-add backward, concatenation along dim 0 (and slices: one part), and
// per-row scaling. Memory bound: plain loops and memcpy, split over the thread
// pool by rows when there are enough elements to pay for a wake-up.
#include <algorithm>
#include <cstring>
#include <vector>

#include "cpu/kernels.h"
#include "threadpool.h"

namespace encsec {

namespace {
// Rows per chunk: about 32K floats of work each, as the element-wise kernels.
int64_t row_grain(int64_t d) { return std::max<int64_t>(1, (int64_t(1) << 15) / std::max<int64_t>(d, 1)); }
}  // namespace

void gather_rows_forward(float* out, const float* inp, const int32_t* indices, int64_t m, int64_t d) {
  parallel_for(m, row_grain(d), [=](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i)
      std::memcpy(out + i * d, inp + static_cast<int64_t>(indices[i]) * d, sizeof(float) * static_cast<size_t>(d));
  });
}

void gather_rows_backward(float* dinp, const float* dout, const int32_t* indices, int64_t n, int64_t m, int64_t d) {
  // Each member owns a range of dinp's rows and scans all of indices for the
  // rows it owns: no two members write the same row, and every row sums its
  // contributions in increasing i whatever the thread count (deterministic).
  // The scan is m integer compares per member, cheap next to the m*d adds.
  parallel_for(n, row_grain(d), [=](int64_t r0, int64_t r1) {
    std::memset(dinp + r0 * d, 0, sizeof(float) * static_cast<size_t>((r1 - r0) * d));
    for (int64_t i = 0; i < m; ++i) {
      const int64_t r = indices[i];
      if (r < r0 || r >= r1) continue;
      float* dst = dinp + r * d;
      const float* src = dout + i * d;
      for (int64_t c = 0; c < d; ++c) dst[c] += src[c];
    }
  });
}

void concat_rows_forward(float* out, const float* const* parts, const int64_t* rows, int count, int64_t d) {
  // Start row of each part; then one index space over all output rows so that
  // the parts share the threads however unequal they are.
  std::vector<int64_t> start(static_cast<size_t>(count) + 1, 0);
  for (int k = 0; k < count; ++k) start[k + 1] = start[k] + rows[k];
  const int64_t total = start[count];
  parallel_for(total, row_grain(d) * 4, [&](int64_t s, int64_t e) {
    // First part overlapping [s, e).
    int k = static_cast<int>(std::upper_bound(start.begin(), start.end(), s) - start.begin()) - 1;
    while (s < e) {
      const int64_t pe = std::min(e, start[k + 1]);
      if (pe > s)
        std::memcpy(out + s * d, parts[k] + (s - start[k]) * d, sizeof(float) * static_cast<size_t>((pe - s) * d));
      s = pe;
      ++k;
    }
  });
}

void scale_rows_forward(float* out, const float* inp, const float* s, int64_t n, int64_t d) {
  parallel_for(n, row_grain(d), [=](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float f = s[r];
      const float* src = inp + r * d;
      float* dst = out + r * d;
      for (int64_t c = 0; c < d; ++c) dst[c] = src[c] * f;
    }
  });
}

}  // namespace encsec
