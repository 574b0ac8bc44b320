// Private helpers shared by the neural-network kernels (conv2d.cpp,
// conv_bn_relu.cpp, batchnorm.cpp): the convolution entry points with a fused
// epilogue, and a double-precision sum / sum-of-squares reduction used for
// batch-norm statistics.
#pragma once

#include <cstdint>
#include <functional>

#include "../common.h"
#include "gemm_internal.h"

namespace encsec {
namespace nn {

struct ConvShape {
  int N, C, H, W, OC, KH, KW, stride, pad, OH, OW;
  int64_t P;  // OH * OW: output pixels per image
  int64_t K;  // C * KH * KW: GEMM depth
};

inline ConvShape make_conv_shape(int N, int C, int H, int W, int OC, int KH, int KW, int stride, int pad) {
  ConvShape s{N, C, H, W, OC, KH, KW, stride, pad, conv_out_size(H, KH, stride, pad),
              conv_out_size(W, KW, stride, pad), 0, 0};
  // A 1x1, stride-1, unpadded convolution reads each image as one long row;
  // seen as a 1 x (H*W) image, its im2col runs never break at row ends.
  if (KH == 1 && KW == 1 && stride == 1 && pad == 0) {
    s.W = s.OW = H * W;
    s.H = s.OH = 1;
  }
  s.P = (int64_t)s.OH * s.OW;
  s.K = (int64_t)C * KH * KW;
  return s;
}

// out = conv(inp, weight) + bias (bias nullable); then ReLU when relu is set.
// When chan_sum / chan_sumsq are given (and relu is not set), they receive
// per-output-channel sums of the stored values and their squares over N and
// the pixels, accumulated in double while each output tile is still in cache
// (batch-norm statistics without another pass over the output).
void conv2d_forward_impl(float* out, const float* inp, const float* weight, const float* bias,
                         const ConvShape& s, bool relu, double* chan_sum, double* chan_sumsq);

// Fills dst ([n1 - n0, OC, OH*OW]) with the output gradient of images [n0, n1).
using DoutProducer = std::function<void(float* dst, int n0, int n1)>;

// Gradients of conv2d_forward_impl (no ReLU). Images are processed in groups
// whose output gradient is read once (from L2) by both dinp and dweight.
// With make_dout, the output gradient is not stored anywhere: each group's
// is produced on demand (dout and dbias are then unused and may be null).
void conv2d_backward_impl(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                          const float* weight, const ConvShape& s, const DoutProducer* make_dout = nullptr);

#if defined(__AVX512F__)
// Horizontal sum. (Spelled out: GCC 12's _mm512_reduce_add_pd and the
// unmasked converts trip -Wmaybe-uninitialized inside the intrinsics headers.)
inline double hsum(__m512d v) {
  alignas(64) double t[8];
  _mm512_store_pd(t, v);
  return ((t[0] + t[4]) + (t[1] + t[5])) + ((t[2] + t[6]) + (t[3] + t[7]));
}
inline float hsum(__m512 v) {
  alignas(64) float t[16];
  _mm512_store_ps(t, v);
  float s = 0.0f;
  for (int i = 0; i < 16; ++i) s += t[i];
  return s;
}
#elif defined(__AVX2__) && defined(__FMA__)
inline float hsum(__m256 v) {
  alignas(32) float t[8];
  _mm256_store_ps(t, v);
  float s = 0.0f;
  for (int i = 0; i < 8; ++i) s += t[i];
  return s;
}
// The AVX-512 path's 8-lane double sum, from its two 4-lane halves (same
// tree: the two ISAs give bit-identical sums).
inline double hsum_halves(__m256d lo, __m256d hi) {
  alignas(32) double t[8];
  _mm256_store_pd(t, lo);
  _mm256_store_pd(t + 4, hi);
  return ((t[0] + t[4]) + (t[1] + t[5])) + ((t[2] + t[6]) + (t[3] + t[7]));
}
#endif

// s += sum(x[0..n)), ss += sum(x^2), in double.
inline void add_sum_sumsq(const float* x, int64_t n, double& s, double& ss) {
  int64_t i = 0;
#if defined(__AVX512F__)
  __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd(), q0 = _mm512_setzero_pd(),
          q1 = _mm512_setzero_pd();
  for (; i + 16 <= n; i += 16) {
    const __m512d lo = _mm512_maskz_cvtps_pd((__mmask8)0xFF, _mm256_loadu_ps(x + i));
    const __m512d hi = _mm512_maskz_cvtps_pd((__mmask8)0xFF, _mm256_loadu_ps(x + i + 8));
    a0 = _mm512_add_pd(a0, lo);
    a1 = _mm512_add_pd(a1, hi);
    q0 = _mm512_fmadd_pd(lo, lo, q0);
    q1 = _mm512_fmadd_pd(hi, hi, q1);
  }
  double ts = hsum(_mm512_add_pd(a0, a1));
  double tss = hsum(_mm512_add_pd(q0, q1));
#elif defined(__AVX2__) && defined(__FMA__)
  // Lanes as in the AVX-512 path (a0 = x[i..i+8), a1 = x[i+8..i+16), each
  // as two 4-lane halves), so both ISAs sum in the same order.
  __m256d a0l = _mm256_setzero_pd(), a0h = a0l, a1l = a0l, a1h = a0l, q0l = a0l, q0h = a0l, q1l = a0l, q1h = a0l;
  for (; i + 16 <= n; i += 16) {
    const __m256d v0 = _mm256_cvtps_pd(_mm_loadu_ps(x + i)), v1 = _mm256_cvtps_pd(_mm_loadu_ps(x + i + 4));
    const __m256d v2 = _mm256_cvtps_pd(_mm_loadu_ps(x + i + 8)), v3 = _mm256_cvtps_pd(_mm_loadu_ps(x + i + 12));
    a0l = _mm256_add_pd(a0l, v0);
    a0h = _mm256_add_pd(a0h, v1);
    a1l = _mm256_add_pd(a1l, v2);
    a1h = _mm256_add_pd(a1h, v3);
    q0l = _mm256_fmadd_pd(v0, v0, q0l);
    q0h = _mm256_fmadd_pd(v1, v1, q0h);
    q1l = _mm256_fmadd_pd(v2, v2, q1l);
    q1h = _mm256_fmadd_pd(v3, v3, q1h);
  }
  double ts = hsum_halves(_mm256_add_pd(a0l, a1l), _mm256_add_pd(a0h, a1h));
  double tss = hsum_halves(_mm256_add_pd(q0l, q1l), _mm256_add_pd(q0h, q1h));
#else
  double ts = 0, tss = 0;
#endif
  for (; i < n; ++i) {
    const double v = x[i];
    ts += v;
    tss += v * v;
  }
  s += ts;
  ss += tss;
}

// s += sum(x[0..n)) in double.
inline void add_sum(const float* x, int64_t n, double& s) {
  int64_t i = 0;
#if defined(__AVX512F__)
  __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd();
  for (; i + 16 <= n; i += 16) {
    a0 = _mm512_add_pd(a0, _mm512_maskz_cvtps_pd((__mmask8)0xFF, _mm256_loadu_ps(x + i)));
    a1 = _mm512_add_pd(a1, _mm512_maskz_cvtps_pd((__mmask8)0xFF, _mm256_loadu_ps(x + i + 8)));
  }
  double t = hsum(_mm512_add_pd(a0, a1));
#elif defined(__AVX2__) && defined(__FMA__)
  __m256d a0l = _mm256_setzero_pd(), a0h = a0l, a1l = a0l, a1h = a0l;
  for (; i + 16 <= n; i += 16) {
    a0l = _mm256_add_pd(a0l, _mm256_cvtps_pd(_mm_loadu_ps(x + i)));
    a0h = _mm256_add_pd(a0h, _mm256_cvtps_pd(_mm_loadu_ps(x + i + 4)));
    a1l = _mm256_add_pd(a1l, _mm256_cvtps_pd(_mm_loadu_ps(x + i + 8)));
    a1h = _mm256_add_pd(a1h, _mm256_cvtps_pd(_mm_loadu_ps(x + i + 12)));
  }
  double t = hsum_halves(_mm256_add_pd(a0l, a1l), _mm256_add_pd(a0h, a1h));
#else
  double t = 0;
#endif
  for (; i < n; ++i) t += x[i];
  s += t;
}

}  // namespace nn
}  // namespace encsec
