// Locality-sensitive hash codes for B4B's coverage (lib/defenses/b4b.ts): the
// bucket of each row in each of F families of P hyperplanes, from the row's
// projections. Replaces the per-row loop of LshCoverage.add over projections
// copied to JS; bit j is set when projection j is >= 0, as there.
#include <algorithm>

#include "cpu/kernels.h"
#include "threadpool.h"

namespace encsec {

void lsh_codes_forward(float* out, const float* proj, int64_t n, int F, int P) {
  const int64_t width = static_cast<int64_t>(F) * P;
  parallel_for(n, std::max<int64_t>(1, (int64_t(1) << 15) / std::max<int64_t>(width, 1)), [=](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* row = proj + r * width;
      for (int f = 0; f < F; ++f) {
        const float* p = row + static_cast<int64_t>(f) * P;
        uint32_t code = 0;
        for (int j = 0; j < P; ++j) code |= static_cast<uint32_t>(p[j] >= 0.0f) << j;
        out[r * F + f] = static_cast<float>(code);  // < 2^16: exact
      }
    }
  });
}

}  // namespace encsec
