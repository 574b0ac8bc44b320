// Small vector helpers shared by the row-wise kernels (normalize, cosine,
// ntxent). Header-only so they inline into each kernel's loops.
#pragma once

#include <cstdint>
#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace encsec {
namespace vec {

#if defined(__AVX2__)
// AVX2 has no mask registers: _mm256_maskload_ps takes a vector whose lanes'
// sign bits select. These build that vector.

// Lanes [0, k) set (k may be <= 0 or >= 8).
inline __m256i first_lanes8(int k) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(k), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// Lane l set where bit l of `bits` is (any 8-bit pattern), from a table made
// at compile time: one load, cheaper than building it from the bits in an
// inner loop.
struct LaneMasks8 {
  alignas(32) int32_t m[256][8];
  constexpr LaneMasks8() : m{} {
    for (int b = 0; b < 256; ++b)
      for (int l = 0; l < 8; ++l) m[b][l] = (b >> l) & 1 ? -1 : 0;
  }
};
inline constexpr LaneMasks8 kLaneMasks8{};
inline __m256i lane_mask8(uint32_t bits) {
  return _mm256_load_si256(reinterpret_cast<const __m256i*>(kLaneMasks8.m[bits & 0xFF]));
}
#endif

// Dot product with 16 independent float accumulators: GCC turns the fixed inner
// loop into vector FMAs (a single accumulator would need reassociation, which
// -O3 without -ffast-math does not allow).
inline float dot(const float* a, const float* b, int n) {
  float acc[16] = {0};
  int i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; ++j) acc[j] += a[i + j] * b[i + j];
  float s = 0;
  for (; i < n; ++i) s += a[i] * b[i];
  for (int j = 0; j < 16; ++j) s += acc[j];
  return s;
}

}  // namespace vec
}  // namespace encsec
