// Max pooling, window k, stride k, no padding, floor (PyTorch max_pool2d(x, k)).
// PyTorch's CPU rule decides the winner of a window: a value replaces the
// running maximum when it is strictly greater or NaN, scanning rows then
// columns; so the first maximum wins (the last NaN when there are NaNs). The
// backward recomputes the winner from inp instead of storing indices.
// Threads take whole planes (n, c). The 2x2 case (the networks' only one) is
// branch-free and vectorised; ties and random data made a branchy scan
// mispredict constantly. AVX-512 takes 16 windows a step with masked tails;
// AVX2 takes 8 with full loads and stores: a row's last partial step is
// redone over its last 8 windows (the same values written again), and a row
// of fewer than 8 windows uses masked loads and a full store whose spare
// lanes land on the plane's later outputs (rewritten after), or goes through
// a buffer at the plane's end. The winner rule is the scalar one, lane by lane.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "../threadpool.h"
#include "kernels.h"
#include "vec.h"

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif
#if !defined(__AVX512F__) && defined(__AVX2__)
#define ENCSEC_POOL_AVX2 1
#endif

namespace encsec {
namespace {

inline bool replaces(float v, float m) { return v > m || std::isnan(v); }

#if defined(__AVX512F__)
// The four corners of 16 consecutive 2x2 windows of a row pair, de-interleaved
// from even/odd columns with permutes; n <= 16 windows are valid.
struct Quad {
  __m512 a, b, c, e;  // top-left, top-right, bottom-left, bottom-right
};

inline __mmask16 pair_mask_lo(int n) { return (__mmask16)(n >= 8 ? 0xFFFF : (1u << (2 * n)) - 1); }
inline __mmask16 pair_mask_hi(int n) {
  return (__mmask16)(n >= 16 ? 0xFFFF : n <= 8 ? 0 : (1u << (2 * n - 16)) - 1);
}

inline Quad load_quad(const float* r0, const float* r1, int n) {
  const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i od = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  const __mmask16 lo = pair_mask_lo(n), hi = pair_mask_hi(n);
  const __m512 t0 = _mm512_maskz_loadu_ps(lo, r0), t1 = _mm512_maskz_loadu_ps(hi, r0 + 16);
  const __m512 u0 = _mm512_maskz_loadu_ps(lo, r1), u1 = _mm512_maskz_loadu_ps(hi, r1 + 16);
  return {_mm512_permutex2var_ps(t0, ev, t1), _mm512_permutex2var_ps(t0, od, t1),
          _mm512_permutex2var_ps(u0, ev, u1), _mm512_permutex2var_ps(u0, od, u1)};
}

// Lanes where v replaces the running maximum m.
inline __mmask16 replaces_v(__m512 v, __m512 m) {
  return _mm512_cmp_ps_mask(v, m, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
}
#endif

#if defined(ENCSEC_POOL_AVX2)
// The four corners of 8 consecutive 2x2 windows of a row pair, de-interleaved
// from even/odd columns with in-lane shuffles, which leave the windows in the
// order 0 1 4 5 | 2 3 6 7: unpacklo/unpackhi of two such vectors give back
// the interleaved columns 0..7 and 8..15, and permute4x64 (0, 2, 1, 3) maps
// between it and the natural order (either way).
struct Quad8 {
  __m256 a, b, c, e;  // top-left, top-right, bottom-left, bottom-right
};

inline Quad8 quad8(__m256 t0, __m256 t1, __m256 u0, __m256 u1) {
  return {_mm256_shuffle_ps(t0, t1, 0x88), _mm256_shuffle_ps(t0, t1, 0xDD), _mm256_shuffle_ps(u0, u1, 0x88),
          _mm256_shuffle_ps(u0, u1, 0xDD)};
}
inline Quad8 load_quad8(const float* r0, const float* r1) {
  return quad8(_mm256_loadu_ps(r0), _mm256_loadu_ps(r0 + 8), _mm256_loadu_ps(r1), _mm256_loadu_ps(r1 + 8));
}
using vec::first_lanes8;
// n < 8 windows (2n columns); the other lanes read as 0.
inline Quad8 load_quad8_n(const float* r0, const float* r1, int n) {
  const __m256i lo = first_lanes8(2 * n), hi = first_lanes8(2 * n - 8);
  return quad8(_mm256_maskload_ps(r0, lo), _mm256_maskload_ps(r0 + 8, hi), _mm256_maskload_ps(r1, lo),
               _mm256_maskload_ps(r1 + 8, hi));
}
inline __m256 swap_mid64(__m256 v) {
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(v), 0xD8));
}
// All-ones lanes where v replaces the running maximum m.
inline __m256 replaces8(__m256 v, __m256 m) {
  return _mm256_or_ps(_mm256_cmp_ps(v, m, _CMP_GT_OQ), _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
}
// Window maxima, natural order.
inline __m256 max8(const Quad8& q) {
  __m256 m = q.a;
  m = _mm256_blendv_ps(m, q.b, replaces8(q.b, m));
  m = _mm256_blendv_ps(m, q.c, replaces8(q.c, m));
  m = _mm256_blendv_ps(m, q.e, replaces8(q.e, m));
  return swap_mid64(m);
}
// Gradients of 8 windows (gv in natural order) written to both rows: 16
// columns each from d0 / d1.
inline void scatter8(const Quad8& q, __m256 gv, float* d0, float* d1) {
  __m256 m = q.a;
  const __m256 tb = replaces8(q.b, m);
  m = _mm256_blendv_ps(m, q.b, tb);
  const __m256 tc = replaces8(q.c, m);
  m = _mm256_blendv_ps(m, q.c, tc);
  const __m256 te = replaces8(q.e, m);
  // The last replacement wins: e, else c, else b, else a.
  __m256 r = swap_mid64(gv);
  const __m256 ge = _mm256_and_ps(te, r);
  r = _mm256_andnot_ps(te, r);
  const __m256 gc = _mm256_and_ps(tc, r);
  r = _mm256_andnot_ps(tc, r);
  const __m256 gb = _mm256_and_ps(tb, r), ga = _mm256_andnot_ps(tb, r);
  _mm256_storeu_ps(d0, _mm256_unpacklo_ps(ga, gb));
  _mm256_storeu_ps(d0 + 8, _mm256_unpackhi_ps(ga, gb));
  _mm256_storeu_ps(d1, _mm256_unpacklo_ps(gc, ge));
  _mm256_storeu_ps(d1 + 8, _mm256_unpackhi_ps(gc, ge));
}
#endif

void pool2_plane(float* out, const float* in, int H, int W) {
  const int OH = H / 2, OW = W / 2;
  for (int oh = 0; oh < OH; ++oh) {
    const float* r0 = in + (int64_t)(2 * oh) * W;
    const float* r1 = r0 + W;
    float* o = out + (int64_t)oh * OW;
    int ow = 0;
#if defined(__AVX512F__)
    for (; ow < OW; ow += 16) {
      const int n = std::min(16, OW - ow);
      const Quad q = load_quad(r0 + 2 * ow, r1 + 2 * ow, n);
      __m512 m = q.a;
      m = _mm512_mask_mov_ps(m, replaces_v(q.b, m), q.b);
      m = _mm512_mask_mov_ps(m, replaces_v(q.c, m), q.c);
      m = _mm512_mask_mov_ps(m, replaces_v(q.e, m), q.e);
      _mm512_mask_storeu_ps(o + ow, (__mmask16)((1u << n) - 1), m);
    }
#elif defined(ENCSEC_POOL_AVX2)
    if (OW >= 8) {
      for (; ow + 8 <= OW; ow += 8) _mm256_storeu_ps(o + ow, max8(load_quad8(r0 + 2 * ow, r1 + 2 * ow)));
      if (ow < OW) {  // the last 8 windows again
        ow = OW - 8;
        _mm256_storeu_ps(o + ow, max8(load_quad8(r0 + 2 * ow, r1 + 2 * ow)));
        ow = OW;
      }
    } else if (OW > 0) {
      const __m256 m = max8(load_quad8_n(r0, r1, OW));
      if ((int64_t)oh * OW + 8 <= (int64_t)OH * OW) {
        _mm256_storeu_ps(o, m);  // lanes OW.. land on later rows' outputs, written after
      } else {
        alignas(32) float t[8];
        _mm256_store_ps(t, m);
        for (int i = 0; i < OW; ++i) o[i] = t[i];
      }
      ow = OW;
    }
#endif
    for (; ow < OW; ++ow) {
      float m = r0[2 * ow];
      const float b = r0[2 * ow + 1], c = r1[2 * ow], e = r1[2 * ow + 1];
      m = replaces(b, m) ? b : m;
      m = replaces(c, m) ? c : m;
      m = replaces(e, m) ? e : m;
      o[ow] = m;
    }
  }
}

// Backward of one plane: all four gradients of each window are written, so
// dinp is written exactly once; odd edge rows/columns get zeros.
void pool2_backward_plane(float* d, const float* g, const float* in, int H, int W) {
  const int OH = H / 2, OW = W / 2;
  for (int oh = 0; oh < OH; ++oh) {
    const float* r0 = in + (int64_t)(2 * oh) * W;
    const float* r1 = r0 + W;
    float* d0 = d + (int64_t)(2 * oh) * W;
    float* d1 = d0 + W;
    const float* go = g + (int64_t)oh * OW;
    int ow = 0;
#if defined(__AVX512F__)
    const __m512i lo_idx = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi_idx = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    for (; ow < OW; ow += 16) {
      const int n = std::min(16, OW - ow);
      const Quad q = load_quad(r0 + 2 * ow, r1 + 2 * ow, n);
      __m512 m = q.a;
      const __mmask16 tb = replaces_v(q.b, m);
      m = _mm512_mask_mov_ps(m, tb, q.b);
      const __mmask16 tc = replaces_v(q.c, m);
      m = _mm512_mask_mov_ps(m, tc, q.c);
      const __mmask16 te = replaces_v(q.e, m);
      // The last replacement wins: e, else c, else b, else a.
      const __mmask16 we = te, wc = (__mmask16)(tc & ~te), wb = (__mmask16)(tb & ~tc & ~te),
                      wa = (__mmask16)~(tb | tc | te);
      const __m512 gv = _mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1), go + ow);
      const __m512 ga = _mm512_maskz_mov_ps(wa, gv), gb = _mm512_maskz_mov_ps(wb, gv);
      const __m512 gc = _mm512_maskz_mov_ps(wc, gv), ge = _mm512_maskz_mov_ps(we, gv);
      const __mmask16 slo = pair_mask_lo(n), shi = pair_mask_hi(n);
      _mm512_mask_storeu_ps(d0 + 2 * ow, slo, _mm512_permutex2var_ps(ga, lo_idx, gb));
      _mm512_mask_storeu_ps(d0 + 2 * ow + 16, shi, _mm512_permutex2var_ps(ga, hi_idx, gb));
      _mm512_mask_storeu_ps(d1 + 2 * ow, slo, _mm512_permutex2var_ps(gc, lo_idx, ge));
      _mm512_mask_storeu_ps(d1 + 2 * ow + 16, shi, _mm512_permutex2var_ps(gc, hi_idx, ge));
    }
#elif defined(ENCSEC_POOL_AVX2)
    if (OW >= 8) {
      for (; ow + 8 <= OW; ow += 8)
        scatter8(load_quad8(r0 + 2 * ow, r1 + 2 * ow), _mm256_loadu_ps(go + ow), d0 + 2 * ow, d1 + 2 * ow);
      if (ow < OW) {  // the last 8 windows again
        ow = OW - 8;
        scatter8(load_quad8(r0 + 2 * ow, r1 + 2 * ow), _mm256_loadu_ps(go + ow), d0 + 2 * ow, d1 + 2 * ow);
        ow = OW;
      }
    } else if (OW > 0) {
      // Spare lanes (gradient 0) hold zeros; while in the plane they land on
      // d0's odd column and later rows, all written after this store.
      const Quad8 q = load_quad8_n(r0, r1, OW);
      const __m256 gv = _mm256_maskload_ps(go, first_lanes8(OW));
      if ((int64_t)(2 * oh + 1) * W + 16 <= (int64_t)H * W) {
        scatter8(q, gv, d0, d1);
      } else {
        alignas(32) float t0[16], t1[16];
        scatter8(q, gv, t0, t1);
        for (int i = 0; i < 2 * OW; ++i) d0[i] = t0[i];
        for (int i = 0; i < 2 * OW; ++i) d1[i] = t1[i];
      }
      ow = OW;
    }
#endif
    for (; ow < OW; ++ow) {
      const float a = r0[2 * ow], b = r0[2 * ow + 1], c = r1[2 * ow], e = r1[2 * ow + 1];
      float m = a;
      int w = 0;
      const bool tb = replaces(b, m);
      m = tb ? b : m;
      w = tb ? 1 : w;
      const bool tc = replaces(c, m);
      m = tc ? c : m;
      w = tc ? 2 : w;
      w = replaces(e, m) ? 3 : w;
      const float gv = go[ow];
      d0[2 * ow] = w == 0 ? gv : 0.0f;
      d0[2 * ow + 1] = w == 1 ? gv : 0.0f;
      d1[2 * ow] = w == 2 ? gv : 0.0f;
      d1[2 * ow + 1] = w == 3 ? gv : 0.0f;
    }
    if (W & 1) d0[W - 1] = d1[W - 1] = 0.0f;
  }
  if (H & 1) std::memset(d + (int64_t)(H - 1) * W, 0, sizeof(float) * W);
}

}  // namespace

void maxpool2d_forward(float* out, const float* inp, int N, int C, int H, int W, int k) {
  const int OH = H / k, OW = W / k;
  const int64_t planes = (int64_t)N * C;
  parallel_for(planes, std::max<int64_t>(1, 16384 / std::max(H * W, 1)), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const float* in = inp + p * H * W;
      float* o = out + p * OH * OW;
      if (k == 2) {
        pool2_plane(o, in, H, W);
        continue;
      }
      for (int oh = 0; oh < OH; ++oh)
        for (int ow = 0; ow < OW; ++ow) {
          const float* w = in + (int64_t)oh * k * W + ow * k;
          float m = -INFINITY;
          for (int i = 0; i < k; ++i)
            for (int j = 0; j < k; ++j)
              if (replaces(w[i * W + j], m)) m = w[i * W + j];
          o[(int64_t)oh * OW + ow] = m;
        }
    }
  });
}

void maxpool2d_backward(float* dinp, const float* dout, const float* inp, int N, int C, int H, int W, int k) {
  const int OH = H / k, OW = W / k;
  const int64_t planes = (int64_t)N * C;
  parallel_for(planes, std::max<int64_t>(1, 16384 / std::max(H * W, 1)), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const float* in = inp + p * H * W;
      const float* g = dout + p * OH * OW;
      float* d = dinp + p * H * W;
      if (k == 2) {
        pool2_backward_plane(d, g, in, H, W);
        continue;
      }
      // The plane is small (L1/L2): clear it, then drop each gradient on its winner.
      std::memset(d, 0, sizeof(float) * (size_t)H * W);
      for (int oh = 0; oh < OH; ++oh)
        for (int ow = 0; ow < OW; ++ow) {
          const int64_t base = (int64_t)oh * k * W + ow * k;
          float m = -INFINITY;
          int64_t arg = base;
          for (int i = 0; i < k; ++i)
            for (int j = 0; j < k; ++j) {
              const float v = in[base + i * W + j];
              if (replaces(v, m)) {
                m = v;
                arg = base + i * W + j;
              }
            }
          d[arg] = g[(int64_t)oh * OW + ow];
        }
    }
  });
}

}  // namespace encsec
