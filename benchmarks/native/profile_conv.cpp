// Where the time of a conv2d forward goes, single-threaded: the packed
// micro-kernel alone (operands cache-resident, no im2col, no epilogue) against
// the whole convolution at the same layer shape, both next to the FMA peak of
// one core. The gap between "micro-kernel" and "peak" is the kernel's own
// bound; the gap between "conv" and "micro-kernel" is im2col + epilogue +
// memory traffic. Used for the analysis of unmet targets in BENCHMARKS.md:
//   g++ -O3 -march=native -std=c++17 -I native benchmarks/native/profile_conv.cpp build/libencsec_core.a -lpthread -o build-bench/profile_conv
//   ENCSEC_THREADS=1 build-bench/profile_conv
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "cpu/gemm_internal.h"
#include "cpu/kernels.h"
#include "threadpool.h"

using namespace encsec;
using clk = std::chrono::steady_clock;

// 64-byte aligned, as the kernels' scratch buffers are (aligned vector stores).
struct Buf {
  float* p;
  explicit Buf(size_t n, float v) : p(static_cast<float*>(std::aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64))) {
    std::fill(p, p + n, v);
  }
  ~Buf() { std::free(p); }
  float* data() { return p; }
};

static double seconds_since(clk::time_point t0) { return std::chrono::duration<double>(clk::now() - t0).count(); }

template <class F>
static double best_seconds(F f, int reps) {
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    auto t0 = clk::now();
    f();
    best = std::min(best, seconds_since(t0));
  }
  return best;
}

__attribute__((noinline)) static float fma_peak_loop(int64_t iters) {
  __m512 a[16];
  for (int i = 0; i < 16; ++i) a[i] = _mm512_set1_ps(1.0f + i * 1e-3f);
  const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
  for (int64_t it = 0; it < iters; ++it)
    for (int i = 0; i < 16; ++i) a[i] = _mm512_fmadd_ps(a[i], m, c);
  __m512 s = a[0];
  for (int i = 1; i < 16; ++i) s = _mm512_add_ps(s, a[i]);
  return _mm512_reduce_add_ps(s);
}

int main() {
  const int64_t iters = 20000000;
  volatile float sink = 0;
  double t = best_seconds([&] { sink = sink + fma_peak_loop(iters); }, 3);
  const double peak = 2.0 * 16 * 16 * iters / t / 1e9;
  std::printf("peak one thread: %.1f GFLOP/s\n", peak);
  std::fflush(stdout);

  struct Layer { const char* name; int C, H, OC; };
  const Layer layers[] = {{"cnn-small.conv2 32->64 28x28", 32, 28, 64},
                          {"cnn-small.conv3 64->128 14x14", 64, 14, 128},
                          {"cnn-small.conv4 128->128 7x7", 128, 7, 128},
                          {"resnet18.layer2 128->128 16x16", 128, 16, 128}};
  for (const Layer& L : layers) {
    const int K = L.C * 9, OC = L.OC;
    // Micro-kernel alone: one B panel (kc x NR) and the packed weights, as the
    // conv's inner loop sees them, but with nothing else in between.
    const int kcb = gemm::balanced_kc(K);
    Buf Ap((size_t)gemm::round_up(OC, gemm::MR) * K, 0.01f), Bp((size_t)gemm::KC * gemm::NR, 0.02f), C((size_t)OC * 64, 0.0f);
    const int npanels = 2000;
    double tk = best_seconds(
        [&] {
          for (int p = 0; p < npanels; ++p)
            for (int pc = 0; pc < K; pc += kcb) {
              const int kc = std::min(kcb, K - pc);
              gemm::panel_kernel(OC, gemm::NR, kc, Ap.data() + (int64_t)pc * gemm::MR, (int64_t)K * gemm::MR, Bp.data(),
                                 C.data(), 64, 1.0f, pc == 0 ? 0.0f : 1.0f);
            }
        },
        5);
    const double gk = 2.0 * OC * K * gemm::NR * (double)npanels / tk / 1e9;
    // The whole convolution, N = 64 (single thread).
    const int N = 64;
    Buf x((size_t)N * L.C * L.H * L.H, 0.5f), w((size_t)OC * K, 0.01f), y((size_t)N * OC * L.H * L.H, 0.0f);
    double tc = best_seconds([&] { conv2d_forward(y.data(), x.data(), w.data(), nullptr, N, L.C, L.H, L.H, OC, 3, 3, 1, 1); }, 5);
    const double gc = 2.0 * N * OC * K * L.H * L.H / tc / 1e9;
    std::fflush(stdout);
    std::printf("%-32s micro-kernel %6.1f GFLOP/s (%4.1f%% of peak)   conv %6.1f GFLOP/s (%4.1f%% of peak, %4.1f%% of micro-kernel)\n",
                L.name, gk, 100 * gk / peak, gc, 100 * gc / peak, 100 * gc / gk);
  }
  (void)sink;
  return 0;
}
