// Single-precision GEMM: packed, cache-blocked, register-tiled (BLIS
// structure). Loop nest per region of C:
//   jc (NC columns) -> pc (KC depth, pack B block) -> ic (MC rows, pack A block)
//     -> jr (NR panel of B, stays in L1) -> ir (MR panel of A, from L2) -> micro-kernel.
// The micro-kernel is AVX-512 (8x48), AVX2+FMA (6x16), SSE2 (6x8) or portable C++ (4x8),
// picked at compile time. Threads split C into disjoint column (or row)
// ranges, so every C element is computed by one thread in a fixed k order:
// results are bitwise identical for any thread count.
#include <algorithm>
#include <cstring>

#include "../alloc.h"
#include "../threadpool.h"
#include "gemm_internal.h"
#include "kernels.h"

namespace encsec {
namespace gemm {
namespace {

#if defined(__AVX512F__)

inline __mmask16 lane_mask(int n) {
  return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}

inline void store_vec(float* p, __m512 v, __mmask16 m, __m512 valpha, float beta, bool scale) {
  if (scale) v = _mm512_mul_ps(v, valpha);
  if (beta != 0.0f) v = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, p), _mm512_set1_ps(beta), v);
  _mm512_mask_storeu_ps(p, m, v);
}

// Edge tiles use the same kernel: rows past mr are skipped, columns past nr
// masked, so no temporary tile is needed.
void micro_kernel(int kc, const float* __restrict A, const float* __restrict B, float* __restrict C,
                  int64_t ldc, int mr, int nr, float alpha, float beta) {
#define ENC_Z3(i) __m512 c##i##0 = _mm512_setzero_ps(), c##i##1 = _mm512_setzero_ps(), c##i##2 = _mm512_setzero_ps();
  ENC_Z3(0) ENC_Z3(1) ENC_Z3(2) ENC_Z3(3) ENC_Z3(4) ENC_Z3(5) ENC_Z3(6) ENC_Z3(7)
#undef ENC_Z3
#define ENC_ROW(i)                                  \
  {                                                 \
    const __m512 a = _mm512_set1_ps(A[i]);          \
    c##i##0 = _mm512_fmadd_ps(a, b0, c##i##0);      \
    c##i##1 = _mm512_fmadd_ps(a, b1, c##i##1);      \
    c##i##2 = _mm512_fmadd_ps(a, b2, c##i##2);      \
  }
#pragma GCC unroll 4
  for (int k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_load_ps(B);
    const __m512 b1 = _mm512_load_ps(B + 16);
    const __m512 b2 = _mm512_load_ps(B + 32);
    ENC_ROW(0) ENC_ROW(1) ENC_ROW(2) ENC_ROW(3) ENC_ROW(4) ENC_ROW(5) ENC_ROW(6) ENC_ROW(7)
    A += MR;
    B += NR;
  }
#undef ENC_ROW
  const __mmask16 m0 = lane_mask(nr), m1 = lane_mask(nr - 16), m2 = lane_mask(nr - 32);
  const __m512 va = _mm512_set1_ps(alpha);
  const bool scale = alpha != 1.0f;
#define ENC_ST(i)                                    \
  if (i < mr) {                                      \
    float* p = C + (int64_t)i * ldc;                 \
    store_vec(p, c##i##0, m0, va, beta, scale);      \
    store_vec(p + 16, c##i##1, m1, va, beta, scale); \
    store_vec(p + 32, c##i##2, m2, va, beta, scale); \
  }
  ENC_ST(0) ENC_ST(1) ENC_ST(2) ENC_ST(3) ENC_ST(4) ENC_ST(5) ENC_ST(6) ENC_ST(7)
#undef ENC_ST
}

#elif defined(__AVX2__) && defined(__FMA__)

void micro_kernel(int kc, const float* __restrict A, const float* __restrict B, float* __restrict C,
                  int64_t ldc, int mr, int nr, float alpha, float beta) {
#define ENC_Z2(i) __m256 c##i##0 = _mm256_setzero_ps(), c##i##1 = _mm256_setzero_ps();
  ENC_Z2(0) ENC_Z2(1) ENC_Z2(2) ENC_Z2(3) ENC_Z2(4) ENC_Z2(5)
#undef ENC_Z2
#define ENC_ROW(i)                                 \
  {                                                \
    const __m256 a = _mm256_broadcast_ss(A + i);   \
    c##i##0 = _mm256_fmadd_ps(a, b0, c##i##0);     \
    c##i##1 = _mm256_fmadd_ps(a, b1, c##i##1);     \
  }
#pragma GCC unroll 4
  for (int k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_load_ps(B);
    const __m256 b1 = _mm256_load_ps(B + 8);
    ENC_ROW(0) ENC_ROW(1) ENC_ROW(2) ENC_ROW(3) ENC_ROW(4) ENC_ROW(5)
    A += MR;
    B += NR;
  }
#undef ENC_ROW
  if (mr == MR && nr == NR) {
    const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
#define ENC_ST(i)                                                                        \
  {                                                                                      \
    float* p = C + (int64_t)i * ldc;                                                     \
    __m256 v0 = _mm256_mul_ps(c##i##0, va), v1 = _mm256_mul_ps(c##i##1, va);             \
    if (beta != 0.0f) {                                                                  \
      v0 = _mm256_fmadd_ps(_mm256_loadu_ps(p), vb, v0);                                  \
      v1 = _mm256_fmadd_ps(_mm256_loadu_ps(p + 8), vb, v1);                              \
    }                                                                                    \
    _mm256_storeu_ps(p, v0);                                                             \
    _mm256_storeu_ps(p + 8, v1);                                                         \
  }
    ENC_ST(0) ENC_ST(1) ENC_ST(2) ENC_ST(3) ENC_ST(4) ENC_ST(5)
#undef ENC_ST
    return;
  }
  // Edge tile: through a small buffer.
  alignas(32) float t[MR][NR];
#define ENC_ST(i)                    \
  _mm256_store_ps(t[i], c##i##0);    \
  _mm256_store_ps(t[i] + 8, c##i##1);
  ENC_ST(0) ENC_ST(1) ENC_ST(2) ENC_ST(3) ENC_ST(4) ENC_ST(5)
#undef ENC_ST
  for (int i = 0; i < mr; ++i) {
    float* p = C + (int64_t)i * ldc;
    if (beta == 0.0f)
      for (int j = 0; j < nr; ++j) p[j] = alpha * t[i][j];
    else
      for (int j = 0; j < nr; ++j) p[j] = alpha * t[i][j] + beta * p[j];
  }
}

#elif defined(__SSE2__) || defined(_M_X64)

void micro_kernel(int kc, const float* __restrict A, const float* __restrict B, float* __restrict C,
                  int64_t ldc, int mr, int nr, float alpha, float beta) {
#define ENC_Z2(i) __m128 c##i##0 = _mm_setzero_ps(), c##i##1 = _mm_setzero_ps();
  ENC_Z2(0) ENC_Z2(1) ENC_Z2(2) ENC_Z2(3) ENC_Z2(4) ENC_Z2(5)
#undef ENC_Z2
#define ENC_ROW(i)                                           \
  {                                                          \
    const __m128 a = _mm_set1_ps(A[i]);                      \
    c##i##0 = _mm_add_ps(c##i##0, _mm_mul_ps(a, b0));        \
    c##i##1 = _mm_add_ps(c##i##1, _mm_mul_ps(a, b1));        \
  }
  for (int k = 0; k < kc; ++k) {
    const __m128 b0 = _mm_load_ps(B);
    const __m128 b1 = _mm_load_ps(B + 4);
    ENC_ROW(0) ENC_ROW(1) ENC_ROW(2) ENC_ROW(3) ENC_ROW(4) ENC_ROW(5)
    A += MR;
    B += NR;
  }
#undef ENC_ROW
  alignas(16) float t[MR][NR];
#define ENC_ST(i)                 \
  _mm_store_ps(t[i], c##i##0);    \
  _mm_store_ps(t[i] + 4, c##i##1);
  ENC_ST(0) ENC_ST(1) ENC_ST(2) ENC_ST(3) ENC_ST(4) ENC_ST(5)
#undef ENC_ST
  for (int i = 0; i < mr; ++i) {
    float* p = C + (int64_t)i * ldc;
    if (beta == 0.0f)
      for (int j = 0; j < nr; ++j) p[j] = alpha * t[i][j];
    else
      for (int j = 0; j < nr; ++j) p[j] = alpha * t[i][j] + beta * p[j];
  }
}

#else

void micro_kernel(int kc, const float* __restrict A, const float* __restrict B, float* __restrict C,
                  int64_t ldc, int mr, int nr, float alpha, float beta) {
  float t[MR][NR] = {};
  for (int k = 0; k < kc; ++k) {
    for (int i = 0; i < MR; ++i) {
      const float a = A[i];
      for (int j = 0; j < NR; ++j) t[i][j] += a * B[j];
    }
    A += MR;
    B += NR;
  }
  for (int i = 0; i < mr; ++i) {
    float* p = C + (int64_t)i * ldc;
    if (beta == 0.0f)
      for (int j = 0; j < nr; ++j) p[j] = alpha * t[i][j];
    else
      for (int j = 0; j < nr; ++j) p[j] = alpha * t[i][j] + beta * p[j];
  }
}

#endif

}  // namespace

#if defined(__AVX2__)
namespace {
// dst[c * ldd + r] = src[r * lds + c] for an 8 x 8 block (unpack/shuffle/permute).
inline void transpose8x8(const float* src, int64_t lds, float* dst, int64_t ldd) {
  __m256 r0 = _mm256_loadu_ps(src), r1 = _mm256_loadu_ps(src + lds), r2 = _mm256_loadu_ps(src + 2 * lds),
         r3 = _mm256_loadu_ps(src + 3 * lds), r4 = _mm256_loadu_ps(src + 4 * lds),
         r5 = _mm256_loadu_ps(src + 5 * lds), r6 = _mm256_loadu_ps(src + 6 * lds),
         r7 = _mm256_loadu_ps(src + 7 * lds);
  __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1), t2 = _mm256_unpacklo_ps(r2, r3),
         t3 = _mm256_unpackhi_ps(r2, r3), t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5),
         t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
  __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE),
         u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE),
         u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE),
         u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  _mm256_storeu_ps(dst, _mm256_permute2f128_ps(u0, u4, 0x20));
  _mm256_storeu_ps(dst + ldd, _mm256_permute2f128_ps(u1, u5, 0x20));
  _mm256_storeu_ps(dst + 2 * ldd, _mm256_permute2f128_ps(u2, u6, 0x20));
  _mm256_storeu_ps(dst + 3 * ldd, _mm256_permute2f128_ps(u3, u7, 0x20));
  _mm256_storeu_ps(dst + 4 * ldd, _mm256_permute2f128_ps(u0, u4, 0x31));
  _mm256_storeu_ps(dst + 5 * ldd, _mm256_permute2f128_ps(u1, u5, 0x31));
  _mm256_storeu_ps(dst + 6 * ldd, _mm256_permute2f128_ps(u2, u6, 0x31));
  _mm256_storeu_ps(dst + 7 * ldd, _mm256_permute2f128_ps(u3, u7, 0x31));
}
}  // namespace
#endif

// Transposing copy: dst[c * ldd + r] = src[r * lds + c] for r < rows, c < cols.
void transpose_copy(float* dst, int64_t ldd, const float* src, int64_t lds, int rows, int cols) {
  int r0 = 0;
#if defined(__AVX2__)
  if (rows < 8 && ldd == rows) {
    // Fewer than 8 source rows into a contiguous destination: the packed
    // panels of AVX2's MR = 6 (the weight-gradient's dout panels). 8 x 8
    // blocks through scratch, each destination column stored as one full
    // vector: its spill past `rows` lands in the next columns' slots, which
    // later stores (increasing column order) overwrite; a column whose
    // vector would pass the end of the destination is stored element-wise.
    alignas(32) float in[8][8] = {}, out[8][8];
    const int64_t end = (int64_t)cols * rows;
    int c0 = 0;
    for (; c0 + 8 <= cols; c0 += 8) {
      for (int r = 0; r < rows; ++r) _mm256_store_ps(in[r], _mm256_loadu_ps(src + r * lds + c0));
      transpose8x8(&in[0][0], 8, &out[0][0], 8);
      for (int j = 0; j < 8; ++j) {
        float* d = dst + (int64_t)(c0 + j) * rows;
        if ((int64_t)(c0 + j) * rows + 8 <= end)
          _mm256_storeu_ps(d, _mm256_load_ps(out[j]));
        else
          for (int r = 0; r < rows; ++r) d[r] = out[j][r];
      }
    }
    for (int c = c0; c < cols; ++c)
      for (int r = 0; r < rows; ++r) dst[c * ldd + r] = src[r * lds + c];
    return;
  }
  for (; r0 + 8 <= rows; r0 += 8) {
    int c0 = 0;
    for (; c0 + 8 <= cols; c0 += 8) transpose8x8(src + r0 * lds + c0, lds, dst + c0 * ldd + r0, ldd);
    for (int r = r0; r < r0 + 8; ++r)
      for (int c = c0; c < cols; ++c) dst[c * ldd + r] = src[r * lds + c];
  }
#endif
  for (int r = r0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) dst[c * ldd + r] = src[r * lds + c];
}

void panel_kernel(int m, int nr, int kc, const float* Ap, int64_t a_stride, const float* Bpanel, float* C,
                  int64_t ldc, float alpha, float beta) {
  for (int i = 0; i < m; i += MR)
    micro_kernel(kc, Ap + (i / MR) * a_stride, Bpanel, C + (int64_t)i * ldc, ldc, std::min(MR, m - i), nr, alpha,
                 beta);
}

void macro_kernel(int m, int n, int kc, const float* Ap, int64_t a_stride, const float* Bp,
                  int64_t b_stride, float* C, int64_t ldc, float alpha, float beta) {
  for (int j = 0; j < n; j += NR)
    panel_kernel(m, std::min(NR, n - j), kc, Ap, a_stride, Bp + (j / NR) * b_stride, C + j, ldc, alpha, beta);
}

void pack_A(float* Ap, int64_t a_stride, const float* A, int64_t lda, bool trans, int m, int kc) {
  for (int i0 = 0; i0 < m; i0 += MR) {
    float* dst = Ap + (i0 / MR) * a_stride;
    const int mr = std::min(MR, m - i0);
    if (trans) {
      // op(A)[i][k] = A[k * lda + i]: MR contiguous floats per k.
      for (int k = 0; k < kc; ++k) {
        const float* src = A + (int64_t)k * lda + i0;
        float* d = dst + (int64_t)k * MR;
        for (int i = 0; i < mr; ++i) d[i] = src[i];
        for (int i = mr; i < MR; ++i) d[i] = 0.0f;
      }
    } else {
      // Rows are contiguous in k: a transposing copy into the panel.
      transpose_copy(dst, MR, A + (int64_t)i0 * lda, lda, mr, kc);
      for (int i = mr; i < MR; ++i)
        for (int k = 0; k < kc; ++k) dst[(int64_t)k * MR + i] = 0.0f;
    }
  }
}

void pack_B(float* Bp, int64_t b_stride, const float* B, int64_t ldb, bool trans, int kc, int n) {
  for (int j0 = 0; j0 < n; j0 += NR) {
    float* dst = Bp + (j0 / NR) * b_stride;
    const int nr = std::min(NR, n - j0);
    if (!trans) {
      for (int k = 0; k < kc; ++k) {
        const float* src = B + (int64_t)k * ldb + j0;
        float* d = dst + (int64_t)k * NR;
        std::memcpy(d, src, sizeof(float) * nr);
        for (int j = nr; j < NR; ++j) d[j] = 0.0f;
      }
    } else {
      transpose_copy(dst, NR, B + (int64_t)j0 * ldb, ldb, nr, kc);
      for (int j = nr; j < NR; ++j)
        for (int k = 0; k < kc; ++k) dst[(int64_t)k * NR + j] = 0.0f;
    }
  }
}

namespace {

// One thread's share: the full blocked algorithm on an m x n region of C
// (A, B, C already offset to the region's origin).
void gemm_region(bool transA, bool transB, int m, int n, int K, float alpha, const float* A, int64_t lda,
                 const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  const int mc_max = (int)round_up(std::min(m, MC), MR);
  const int nc_max = (int)round_up(std::min(n, NC), NR);
  const int kc_max = balanced_kc(K);
  ScratchBuffer abuf((size_t)mc_max * kc_max), bbuf((size_t)nc_max * kc_max);
  float* Ap = abuf.data();
  float* Bp = bbuf.data();
  for (int jc = 0; jc < n; jc += NC) {
    const int nc = std::min(NC, n - jc);
    for (int pc = 0; pc < K; pc += kc_max) {
      const int kc = std::min(kc_max, K - pc);
      const float* bsrc = transB ? B + (int64_t)jc * ldb + pc : B + (int64_t)pc * ldb + jc;
      pack_B(Bp, (int64_t)kc * NR, bsrc, ldb, transB, kc, nc);
      // Later depth blocks accumulate onto the first block's result.
      const float beta_eff = pc == 0 ? beta : 1.0f;
      for (int ic = 0; ic < m; ic += MC) {
        const int mc = std::min(MC, m - ic);
        const float* asrc = transA ? A + (int64_t)pc * lda + ic : A + (int64_t)ic * lda + pc;
        pack_A(Ap, (int64_t)kc * MR, asrc, lda, transA, mc, kc);
        macro_kernel(mc, nc, kc, Ap, (int64_t)kc * MR, Bp, (int64_t)kc * NR, C + (int64_t)ic * ldc + jc, ldc,
                     alpha, beta_eff);
      }
    }
  }
}

}  // namespace
}  // namespace gemm

void sgemm(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda,
           const float* B, int ldb, float beta, float* C, int ldc) {
  using namespace gemm;
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.0f) {
    // Nothing to multiply: C = beta * C (and beta == 0 must not read C).
    parallel_for(M, std::max<int64_t>(1, 65536 / N), [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        float* c = C + i * ldc;
        if (beta == 0.0f)
          std::memset(c, 0, sizeof(float) * N);
        else
          for (int j = 0; j < N; ++j) c[j] *= beta;
      }
    });
    return;
  }
  // Split C into at most num_threads() disjoint regions, in whole panels,
  // along the dimension that balances better (columns on ties: each region
  // then packs only its own B). parallel_for hands a nested caller the whole
  // range in one call; the regions are contiguous, so the chunk it gets is
  // merged and run as one region (no duplicated packing).
  const double flops = 2.0 * M * N * (double)K;
  const int nt = flops < 4e6 ? 1 : num_threads();
  const int64_t units_n = ceil_div(N, NR), units_m = ceil_div(M, MR);
  // Largest region (in rows or columns) when splitting that way.
  const int64_t pn = std::min<int64_t>(nt, units_n), pm = std::min<int64_t>(nt, units_m);
  const double cost_n = (double)std::min<int64_t>(N, ceil_div(units_n, pn) * NR) * M;
  const double cost_m = (double)std::min<int64_t>(M, ceil_div(units_m, pm) * MR) * N;
  const bool split_n = cost_n <= cost_m;
  const int64_t units = split_n ? units_n : units_m;
  const int64_t parts = std::max<int64_t>(1, split_n ? pn : pm);
  const int unit = split_n ? NR : MR;
  parallel_for(parts, 1, [&](int64_t p0, int64_t p1) {
    const int64_t u0 = units * p0 / parts, u1 = units * p1 / parts;
    if (split_n) {
      const int j0 = (int)(u0 * unit), j1 = (int)std::min<int64_t>(N, u1 * unit);
      if (j1 <= j0) return;
      const float* b = transB ? B + (int64_t)j0 * ldb : B + j0;
      gemm_region(transA, transB, M, j1 - j0, K, alpha, A, lda, b, ldb, beta, C + j0, ldc);
    } else {
      const int i0 = (int)(u0 * unit), i1 = (int)std::min<int64_t>(M, u1 * unit);
      if (i1 <= i0) return;
      const float* a = transA ? A + i0 : A + (int64_t)i0 * lda;
      gemm_region(transA, transB, i1 - i0, N, K, alpha, a, lda, B, ldb, beta, C + (int64_t)i0 * ldc, ldc);
    }
  });
}

}  // namespace encsec
