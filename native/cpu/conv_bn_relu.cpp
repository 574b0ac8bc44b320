// Fused convolution + batch norm + ReLU (training and eval), NCHW.
//
// forward (train): the convolution's epilogue accumulates each channel's sum
//   and sum of squares (double) while the output tile is in cache, so BN
//   statistics cost no extra pass; one more pass then writes
//   out = relu((conv_out - mean) * gamma * invstd + beta).
// forward (eval): BN is an affine map per output channel, folded into the
//   convolution's weights and bias; ReLU runs in the conv epilogue: a single
//   convolution, no extra pass.
// backward: one reduction pass (ReLU mask applied on the fly) gives dbeta,
//   dgamma and the conv-bias gradient; then the convolution backward pulls
//   dconv (BN backward of the masked gradient) one image group at a time, so
//   dconv never makes a round trip through memory.
// Reductions use fixed per-thread image ranges added in order: results are
// deterministic for a given thread count.
#include <algorithm>
#include <cmath>
#include <vector>

#include "../alloc.h"
#include "../threadpool.h"
#include "kernels.h"
#include "nn_internal.h"

namespace encsec {
namespace {

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
// dy = out > 0 ? dout : 0 for the 8 floats at i (the ReLU mask of both vector paths).
inline __m256 masked_dy8(const float* dout, const float* out, int64_t i) {
  return _mm256_and_ps(_mm256_cmp_ps(_mm256_loadu_ps(out + i), _mm256_setzero_ps(), _CMP_GT_OQ),
                       _mm256_loadu_ps(dout + i));
}
#endif

// s += sum(dy), sxy += sum(dy * (x - mean)) with dy = out > 0 ? dout : 0, in double.
void add_masked_dy_dyx(const float* dout, const float* out, const float* x, float mean, int64_t n, double& s,
                       double& sxy) {
  int64_t i = 0;
#if defined(__AVX512F__)
  __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd(), b0 = _mm512_setzero_pd(),
          b1 = _mm512_setzero_pd();
  const __m256 vm = _mm256_set1_ps(mean);
  for (; i + 16 <= n; i += 16) {
    const __m256 dy0 = masked_dy8(dout, out, i), dy1 = masked_dy8(dout, out, i + 8);
    const __m512d dlo = _mm512_maskz_cvtps_pd((__mmask8)0xFF, dy0);
    const __m512d dhi = _mm512_maskz_cvtps_pd((__mmask8)0xFF, dy1);
    const __m512d xlo = _mm512_maskz_cvtps_pd((__mmask8)0xFF, _mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
    const __m512d xhi = _mm512_maskz_cvtps_pd((__mmask8)0xFF, _mm256_sub_ps(_mm256_loadu_ps(x + i + 8), vm));
    a0 = _mm512_add_pd(a0, dlo);
    a1 = _mm512_add_pd(a1, dhi);
    b0 = _mm512_fmadd_pd(dlo, xlo, b0);
    b1 = _mm512_fmadd_pd(dhi, xhi, b1);
  }
  double ts = nn::hsum(_mm512_add_pd(a0, a1)), txy = nn::hsum(_mm512_add_pd(b0, b1));
#elif defined(__AVX2__) && defined(__FMA__)
  // The AVX-512 path's lanes, each 8-lane accumulator as two 4-lane halves
  // (a0 = a0l:a0h over elements i..i+8, a1 over i+8..i+16), and its final
  // tree: both ISAs give bit-identical sums. The products of two floats are
  // exact in double, so fmadd and the scalar multiply-add agree too.
  __m256d a0l = _mm256_setzero_pd(), a0h = a0l, a1l = a0l, a1h = a0l, b0l = a0l, b0h = a0l, b1l = a0l, b1h = a0l;
  const __m256 vm = _mm256_set1_ps(mean);
  for (; i + 16 <= n; i += 16) {
    const __m256 dy0 = masked_dy8(dout, out, i), dy1 = masked_dy8(dout, out, i + 8);
    const __m256 x0 = _mm256_sub_ps(_mm256_loadu_ps(x + i), vm), x1 = _mm256_sub_ps(_mm256_loadu_ps(x + i + 8), vm);
    const __m256d d0l = _mm256_cvtps_pd(_mm256_castps256_ps128(dy0));
    const __m256d d0h = _mm256_cvtps_pd(_mm256_extractf128_ps(dy0, 1));
    const __m256d d1l = _mm256_cvtps_pd(_mm256_castps256_ps128(dy1));
    const __m256d d1h = _mm256_cvtps_pd(_mm256_extractf128_ps(dy1, 1));
    a0l = _mm256_add_pd(a0l, d0l);
    a0h = _mm256_add_pd(a0h, d0h);
    a1l = _mm256_add_pd(a1l, d1l);
    a1h = _mm256_add_pd(a1h, d1h);
    b0l = _mm256_fmadd_pd(d0l, _mm256_cvtps_pd(_mm256_castps256_ps128(x0)), b0l);
    b0h = _mm256_fmadd_pd(d0h, _mm256_cvtps_pd(_mm256_extractf128_ps(x0, 1)), b0h);
    b1l = _mm256_fmadd_pd(d1l, _mm256_cvtps_pd(_mm256_castps256_ps128(x1)), b1l);
    b1h = _mm256_fmadd_pd(d1h, _mm256_cvtps_pd(_mm256_extractf128_ps(x1, 1)), b1h);
  }
  double ts = nn::hsum_halves(_mm256_add_pd(a0l, a1l), _mm256_add_pd(a0h, a1h));
  double txy = nn::hsum_halves(_mm256_add_pd(b0l, b1l), _mm256_add_pd(b0h, b1h));
#else
  double ts = 0, txy = 0;
#endif
  for (; i < n; ++i) {
    const float dy = out[i] > 0.0f ? dout[i] : 0.0f;
    ts += dy;
    txy += (double)dy * (double)(x[i] - mean);
  }
  s += ts;
  sxy += txy;
}

}  // namespace

void conv_bn_relu_forward_train(float* out, float* conv_out, float* save_mean, float* save_invstd,
                                float* running_mean, float* running_var, const float* inp, const float* weight,
                                const float* conv_bias, const float* gamma, const float* beta, int N, int C, int H,
                                int W, int OC, int KH, int KW, int stride, int pad, float momentum, float eps) {
  const nn::ConvShape s = nn::make_conv_shape(N, C, H, W, OC, KH, KW, stride, pad);
  std::vector<double> sum(OC, 0.0), sumsq(OC, 0.0);
  nn::conv2d_forward_impl(conv_out, inp, weight, conv_bias, s, false, sum.data(), sumsq.data());
  const double cnt = (double)N * s.P;
  std::vector<float> mean(OC), scale(OC);
  for (int oc = 0; oc < OC; ++oc) {
    const double m = sum[oc] / cnt;
    const double var = std::max(0.0, sumsq[oc] / cnt - m * m);
    const double invstd = 1.0 / std::sqrt(var + (double)eps);
    save_mean[oc] = (float)m;
    save_invstd[oc] = (float)invstd;
    const double unbiased = cnt > 1 ? var * cnt / (cnt - 1) : var;
    running_mean[oc] = (float)((1.0 - momentum) * running_mean[oc] + momentum * m);
    running_var[oc] = (float)((1.0 - momentum) * running_var[oc] + momentum * unbiased);
    mean[oc] = (float)m;
    scale[oc] = (float)(invstd * gamma[oc]);
  }
  const int64_t P = s.P;
  parallel_for((int64_t)N * OC, std::max<int64_t>(1, 16384 / P), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const int oc = (int)(p % OC);
      const float m = mean[oc], sc = scale[oc], b = beta[oc];
      const float* x = conv_out + p * P;
      float* o = out + p * P;
      for (int64_t i = 0; i < P; ++i) {
        const float v = (x[i] - m) * sc + b;
        o[i] = v < 0.0f ? 0.0f : v;
      }
    }
  });
}

void conv_bn_relu_forward_eval(float* out, const float* inp, const float* weight, const float* conv_bias,
                               const float* gamma, const float* beta, const float* running_mean,
                               const float* running_var, int N, int C, int H, int W, int OC, int KH, int KW,
                               int stride, int pad, float eps) {
  const nn::ConvShape s = nn::make_conv_shape(N, C, H, W, OC, KH, KW, stride, pad);
  const int64_t K = s.K;
  // BN(conv(x) + cb) = conv(x) * sc + (cb - mean) * sc + beta, sc = gamma / sqrt(var + eps).
  ScratchBuffer wf((size_t)OC * K);
  std::vector<float> bf(OC);
  for (int oc = 0; oc < OC; ++oc) {
    const double sc = gamma[oc] / std::sqrt((double)running_var[oc] + eps);
    for (int64_t k = 0; k < K; ++k) wf.data()[oc * K + k] = (float)(weight[oc * K + k] * sc);
    bf[oc] = (float)(((conv_bias ? conv_bias[oc] : 0.0) - running_mean[oc]) * sc + beta[oc]);
  }
  nn::conv2d_forward_impl(out, inp, wf.data(), bf.data(), s, true, nullptr, nullptr);
}

void conv_bn_relu_backward(float* dinp, float* dweight, float* dconv_bias, float* dgamma, float* dbeta,
                           const float* dout, const float* out, const float* conv_out, const float* inp,
                           const float* weight, const float* gamma, const float* save_mean,
                           const float* save_invstd, int N, int C, int H, int W, int OC, int KH, int KW, int stride,
                           int pad) {
  const nn::ConvShape s = nn::make_conv_shape(N, C, H, W, OC, KH, KW, stride, pad);
  const int64_t P = s.P;
  const double cnt = (double)N * P;
  // Reduction pass, images split statically over threads (contiguous
  // streams); per-range partial sums are added in range order.
  const int parts = (int)std::max<int64_t>(1, std::min<int64_t>(num_threads(), N));
  std::vector<double> part((size_t)parts * 3 * OC, 0.0);
  parallel_for(parts, 1, [&](int64_t q0, int64_t q1) {
    for (int64_t q = q0; q < q1; ++q) {
      double* sdy = part.data() + (size_t)q * 3 * OC;
      double* sdyx = sdy + OC;
      double* sx = sdyx + OC;
      const int n0 = (int)(N * q / parts), n1 = (int)(N * (q + 1) / parts);
      for (int n = n0; n < n1; ++n)
        for (int oc = 0; oc < OC; ++oc) {
          const int64_t off = ((int64_t)n * OC + oc) * P;
          add_masked_dy_dyx(dout + off, out + off, conv_out + off, save_mean[oc], P, sdy[oc], sdyx[oc]);
          if (dconv_bias) nn::add_sum(conv_out + off, P, sx[oc]);
        }
    }
  });
  // Per channel: dconv = k * (dy - a - (x - mean) * b).
  std::vector<float> kk(OC), aa(OC), bb(OC);
  for (int oc = 0; oc < OC; ++oc) {
    double sdy = 0, sdyx = 0, sx = 0;
    for (int q = 0; q < parts; ++q) {
      sdy += part[(size_t)q * 3 * OC + oc];
      sdyx += part[(size_t)q * 3 * OC + OC + oc];
      sx += part[(size_t)q * 3 * OC + 2 * OC + oc];
    }
    const double invstd = save_invstd[oc];
    if (dbeta) dbeta[oc] = (float)sdy;
    if (dgamma) dgamma[oc] = (float)(sdyx * invstd);
    kk[oc] = (float)(gamma[oc] * invstd);
    aa[oc] = (float)(sdy / cnt);
    bb[oc] = (float)(invstd * invstd * sdyx / cnt);
    // Sum of dconv over the channel, from the same sums: k * (sum dy - cnt*a - b * sum(x - mean)).
    if (dconv_bias)
      dconv_bias[oc] = (float)(kk[oc] * (sdy - cnt * aa[oc] - bb[oc] * (sx - cnt * (double)save_mean[oc])));
  }
  if (!dinp && !dweight) return;
  // dconv is never stored whole: the convolution backward asks for it one
  // image group at a time and uses it for dinp and dweight while in cache.
  const nn::DoutProducer make_dconv = [&](float* dst, int n0, int n1) {
    for (int n = n0; n < n1; ++n)
      for (int oc = 0; oc < OC; ++oc) {
        const int64_t off = ((int64_t)n * OC + oc) * P;
        const float* g = dout + off;
        const float* o = out + off;
        const float* x = conv_out + off;
        float* d = dst + ((int64_t)(n - n0) * OC + oc) * P;
        const float k = kk[oc], a = aa[oc], b = bb[oc], mean = save_mean[oc];
        for (int64_t i = 0; i < P; ++i) {
          const float dy = o[i] > 0.0f ? g[i] : 0.0f;
          d[i] = k * (dy - a - (x[i] - mean) * b);
        }
      }
  };
  nn::conv2d_backward_impl(dinp, dweight, nullptr, nullptr, inp, weight, s, &make_dconv);
}

}  // namespace encsec
