// Native benchmark driver for the harness (benchmarks/run.ts compiles it on
// demand into build-bench/ and talks to it over stdin/stdout).
//
// Why a separate program: the naive twins (native/cpu/naive.h) are not exposed
// to JS, and the machine's peak fp32 rate has to be measured with code the
// compiler cannot get in the way of. The fast kernels are measured here too, at
// the naive rows' (small) shapes, so a same-shape speed-up is also recorded.
//
// Protocol: one request per line on stdin, one JSON object per line on stdout.
//   peak <seconds>
//       -> {"peak":true,"gflops":G,"threads":T,"isa":"avx512",...}
//   <id> <fast|naive> <op> <warmup> <repeats> <min_sample_ms> <params...>
//       -> {"id":"...","impl":"naive","iters":k,"samples_ms":[...]}  (ms per call)
// Ops and their params:
//   conv2d_fwd | conv2d_bwd | cbr_fwd | cbr_bwd   N C H W OC K stride pad
//   cosine_fwd | cosine_bwd                       n D
//   ntxent                                        N D tau
//   noise rows D sigma  |  topk rows D k  |  round rows D decimals
// Timing: `warmup` untimed calls; then k back-to-back calls per sample, with k
// chosen so that a sample lasts at least min_sample_ms (k = 1 for slow calls),
// `repeats` samples. The same rule is used by the JS and PyTorch sides.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#if defined(__AVX512F__) || defined(__AVX2__) || defined(__FMA__)
#include <immintrin.h>
#endif

#include "alloc.h"
#include "cpu/kernels.h"
#include "cpu/naive.h"
#include "threadpool.h"

using namespace encsec;
using Clock = std::chrono::steady_clock;

namespace {

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// ------------------------------------------------------------------ peak
// Independent accumulator chains: enough to cover FMA latency (4-5 cycles)
// times two FMA ports, so the loop is throughput-bound, and few enough that
// the chains plus the two constants stay in registers. AVX-512 has 32 vector
// registers: 16 chains. AVX2 has 16: 12 chains. (16 chains on AVX2 spill to
// the stack and the loop then measures loads and stores: 57 instead of 99
// GFLOP/s per core on an AMD EPYC, which made the kernels look faster than
// the "peak".) The multiplier keeps the values finite over billions of
// iterations.
#if defined(__AVX512F__)
constexpr const char* kIsa = "avx512";
constexpr int kLanes = 16;
constexpr int kChains = 16;
__attribute__((noinline)) float fma_loop(int64_t iters, float seed) {
  const __m512 m = _mm512_set1_ps(0.999999f);
  const __m512 c = _mm512_set1_ps(1e-6f);
  __m512 a[16];
  for (int i = 0; i < 16; ++i) a[i] = _mm512_set1_ps(seed + 0.01f * i);
  for (int64_t it = 0; it < iters; ++it) {
    a[0] = _mm512_fmadd_ps(a[0], m, c);
    a[1] = _mm512_fmadd_ps(a[1], m, c);
    a[2] = _mm512_fmadd_ps(a[2], m, c);
    a[3] = _mm512_fmadd_ps(a[3], m, c);
    a[4] = _mm512_fmadd_ps(a[4], m, c);
    a[5] = _mm512_fmadd_ps(a[5], m, c);
    a[6] = _mm512_fmadd_ps(a[6], m, c);
    a[7] = _mm512_fmadd_ps(a[7], m, c);
    a[8] = _mm512_fmadd_ps(a[8], m, c);
    a[9] = _mm512_fmadd_ps(a[9], m, c);
    a[10] = _mm512_fmadd_ps(a[10], m, c);
    a[11] = _mm512_fmadd_ps(a[11], m, c);
    a[12] = _mm512_fmadd_ps(a[12], m, c);
    a[13] = _mm512_fmadd_ps(a[13], m, c);
    a[14] = _mm512_fmadd_ps(a[14], m, c);
    a[15] = _mm512_fmadd_ps(a[15], m, c);
  }
  __m512 s = a[0];
  for (int i = 1; i < 16; ++i) s = _mm512_add_ps(s, a[i]);
  float out[16];
  _mm512_storeu_ps(out, s);
  float sum = 0;
  for (float v : out) sum += v;
  return sum;
}
#elif defined(__AVX2__) && defined(__FMA__)
constexpr const char* kIsa = "avx2";
constexpr int kLanes = 8;
constexpr int kChains = 12;
__attribute__((noinline)) float fma_loop(int64_t iters, float seed) {
  const __m256 m = _mm256_set1_ps(0.999999f);
  const __m256 c = _mm256_set1_ps(1e-6f);
  __m256 a[kChains];
  for (int i = 0; i < kChains; ++i) a[i] = _mm256_set1_ps(seed + 0.01f * i);
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < kChains; ++i) a[i] = _mm256_fmadd_ps(a[i], m, c);
  }
  __m256 s = a[0];
  for (int i = 1; i < kChains; ++i) s = _mm256_add_ps(s, a[i]);
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0] + out[1] + out[2] + out[3] + out[4] + out[5] + out[6] + out[7];
}
#else
constexpr const char* kIsa = "scalar";
constexpr int kLanes = 1;
constexpr int kChains = 16;
__attribute__((noinline)) float fma_loop(int64_t iters, float seed) {
  float a[16];
  for (int i = 0; i < 16; ++i) a[i] = seed + 0.01f * i;
  for (int64_t it = 0; it < iters; ++it) {
    for (int i = 0; i < 16; ++i) a[i] = std::fma(a[i], 0.999999f, 1e-6f);
  }
  float s = 0;
  for (int i = 0; i < 16; ++i) s += a[i];
  return s;
}
#endif
constexpr double kFlopsPerIter = kChains * kLanes * 2.0;

// Runs the FMA loop on `threads` threads at once (one per core: the kernels'
// thread count) and returns the aggregate rate in GFLOP/s: the sum of each
// thread's own rate, so a thread that starts late does not count as idle time
// of the others.
double peak_once(int threads, int64_t iters) {
  std::vector<std::thread> pool;
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<float> sink(threads);
  std::vector<double> seconds(threads);
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      ready.fetch_add(1);
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      auto t0 = Clock::now();
      sink[t] = fma_loop(iters, 1.0f + t);
      seconds[t] = ms_since(t0) / 1000.0;
    });
  }
  while (ready.load() < threads) std::this_thread::yield();
  go.store(true, std::memory_order_release);
  for (auto& th : pool) th.join();
  volatile float keep = 0;
  for (float v : sink) keep = keep + v;
  (void)keep;
  double gflops = 0;
  for (double sec : seconds) gflops += kFlopsPerIter * static_cast<double>(iters) / sec / 1e9;
  return gflops;
}

void run_peak(double seconds) {
  const int threads = num_threads();
  // Calibrate on one thread: iterations for ~seconds of work.
  int64_t iters = 1 << 20;
  for (;;) {
    auto t0 = Clock::now();
    volatile float v = fma_loop(iters, 1.0f);
    (void)v;
    double ms = ms_since(t0);
    if (ms > 20 || iters > (int64_t(1) << 40)) {
      iters = std::max<int64_t>(1, static_cast<int64_t>(iters * (seconds * 1000.0 / ms)));
      break;
    }
    iters *= 4;
  }
  double best = 0, single = 0;
  for (int r = 0; r < 3; ++r) best = std::max(best, peak_once(threads, iters));
  for (int r = 0; r < 2; ++r) single = std::max(single, peak_once(1, iters));
  std::ostringstream os;
  os.precision(6);
  os << std::fixed << "{\"peak\":true,\"gflops\":" << best << ",\"threads\":" << threads
     << ",\"single_thread_gflops\":" << single << ",\"isa\":\"" << kIsa << "\",\"lanes\":" << kLanes << "}";
  std::cout << os.str() << std::endl;
}

// --------------------------------------------------------------- buffers
// Tensor memory from the same caching allocator as the addon (64-byte aligned).
class Buf {
 public:
  explicit Buf(size_t n) : n_(n ? n : 1) { p_ = static_cast<float*>(host_alloc(n_ * sizeof(float))); }
  ~Buf() { host_free(p_, n_ * sizeof(float)); }
  Buf(const Buf&) = delete;
  Buf& operator=(const Buf&) = delete;
  float* get() const { return p_; }
  operator float*() const { return p_; }

 private:
  size_t n_;
  float* p_;
};

void fill_random(float* p, size_t n, uint64_t seed, float lo = -1.f, float hi = 1.f) {
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < n; ++i) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    p[i] = lo + (hi - lo) * static_cast<float>((s >> 40) * (1.0 / 16777216.0));
  }
}

std::unique_ptr<Buf> rnd(size_t n, uint64_t seed, float lo = -1.f, float hi = 1.f) {
  auto b = std::make_unique<Buf>(n);
  fill_random(b->get(), n, seed, lo, hi);
  return b;
}

std::unique_ptr<Buf> zeros(size_t n) {
  auto b = std::make_unique<Buf>(n);
  std::fill(b->get(), b->get() + n, 0.f);
  return b;
}

// ------------------------------------------------------------- timing
struct Result {
  int64_t iters = 1;
  std::vector<double> samples_ms;
};

Result time_it(const std::function<void()>& fn, int warmup, int repeats, double min_sample_ms) {
  for (int i = 0; i < warmup; ++i) fn();
  Result r;
  auto t0 = Clock::now();
  fn();
  double first = ms_since(t0);
  if (min_sample_ms > 0 && first < min_sample_ms) {
    r.iters = std::min<int64_t>(100000, static_cast<int64_t>(std::ceil(min_sample_ms / std::max(first, 1e-4))));
  }
  for (int k = 0; k < repeats; ++k) {
    auto s0 = Clock::now();
    for (int64_t i = 0; i < r.iters; ++i) fn();
    r.samples_ms.push_back(ms_since(s0) / static_cast<double>(r.iters));
  }
  return r;
}

std::string json_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      o += '\\';
      o += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      o += ' ';
    } else {
      o += c;
    }
  }
  return o;
}

void print_result(const std::string& id, const std::string& impl, const Result& r) {
  std::ostringstream os;
  os.precision(9);
  os << "{\"id\":\"" << json_escape(id) << "\",\"impl\":\"" << impl << "\",\"iters\":" << r.iters
     << ",\"samples_ms\":[";
  for (size_t i = 0; i < r.samples_ms.size(); ++i) os << (i ? "," : "") << r.samples_ms[i];
  os << "]}";
  std::cout << os.str() << std::endl;
}

void print_error(const std::string& id, const std::string& msg) {
  std::cout << "{\"id\":\"" << json_escape(id) << "\",\"error\":\"" << json_escape(msg) << "\"}" << std::endl;
}

// ------------------------------------------------------------- the ops
// Builds the closure that runs one call of `op` (fast or naive) on buffers
// owned by `keep`; returns an empty function for an unknown op.
struct Workload {
  std::vector<std::unique_ptr<Buf>> bufs;
  float loss = 0;
  float* add(std::unique_ptr<Buf> b) {
    bufs.push_back(std::move(b));
    return bufs.back()->get();
  }
};

std::function<void()> make_op(const std::string& op, bool naive, const std::vector<double>& p, Workload& w,
                              std::string& err) {
  auto need = [&](size_t n) {
    if (p.size() < n) {
      err = op + " needs " + std::to_string(n) + " parameters";
      return false;
    }
    return true;
  };
  if (op == "conv2d_fwd" || op == "conv2d_bwd" || op == "cbr_fwd" || op == "cbr_bwd") {
    if (!need(8)) return {};
    const int N = int(p[0]), C = int(p[1]), H = int(p[2]), W = int(p[3]), OC = int(p[4]), K = int(p[5]);
    const int stride = int(p[6]), pad = int(p[7]);
    const int OH = (H + 2 * pad - K) / stride + 1, OW = (W + 2 * pad - K) / stride + 1;
    const size_t nin = size_t(N) * C * H * W, nw = size_t(OC) * C * K * K, nout = size_t(N) * OC * OH * OW;
    float* inp = w.add(rnd(nin, 1));
    // PyTorch-like init scale keeps activations O(1).
    const float bound = 1.0f / std::sqrt(float(C * K * K));
    float* weight = w.add(rnd(nw, 2, -bound, bound));
    if (op == "conv2d_fwd") {
      float* out = w.add(zeros(nout));
      if (naive) return [=] { conv2d_forward_naive(out, inp, weight, nullptr, N, C, H, W, OC, K, K, stride, pad); };
      return [=] { conv2d_forward(out, inp, weight, nullptr, N, C, H, W, OC, K, K, stride, pad); };
    }
    if (op == "conv2d_bwd") {
      float* dout = w.add(rnd(nout, 3));
      float* dinp = w.add(zeros(nin));
      float* dweight = w.add(zeros(nw));
      if (naive)
        return [=] { conv2d_backward_naive(dinp, dweight, nullptr, dout, inp, weight, N, C, H, W, OC, K, K, stride, pad); };
      return [=] { conv2d_backward(dinp, dweight, nullptr, dout, inp, weight, N, C, H, W, OC, K, K, stride, pad); };
    }
    float* out = w.add(zeros(nout));
    float* conv_out = w.add(zeros(nout));
    float* save_mean = w.add(zeros(OC));
    float* save_invstd = w.add(zeros(OC));
    float* rmean = w.add(zeros(OC));
    float* rvar = w.add(rnd(OC, 4, 1.f, 1.f));
    float* gamma = w.add(rnd(OC, 5, 0.5f, 1.5f));
    float* beta = w.add(rnd(OC, 6, -0.1f, 0.1f));
    if (op == "cbr_fwd") {
      if (naive)
        return [=] {
          conv_bn_relu_forward_train_naive(out, conv_out, save_mean, save_invstd, rmean, rvar, inp, weight, nullptr, gamma,
                                           beta, N, C, H, W, OC, K, K, stride, pad, 0.1f, 1e-5f);
        };
      return [=] {
        conv_bn_relu_forward_train(out, conv_out, save_mean, save_invstd, rmean, rvar, inp, weight, nullptr, gamma, beta, N,
                                   C, H, W, OC, K, K, stride, pad, 0.1f, 1e-5f);
      };
    }
    // cbr_bwd: the saved tensors come from one (fast) forward pass.
    conv_bn_relu_forward_train(out, conv_out, save_mean, save_invstd, rmean, rvar, inp, weight, nullptr, gamma, beta, N, C,
                               H, W, OC, K, K, stride, pad, 0.1f, 1e-5f);
    float* dout = w.add(rnd(nout, 7));
    float* dinp = w.add(zeros(nin));
    float* dweight = w.add(zeros(nw));
    float* dgamma = w.add(zeros(OC));
    float* dbeta = w.add(zeros(OC));
    if (naive)
      return [=] {
        conv_bn_relu_backward_naive(dinp, dweight, nullptr, dgamma, dbeta, dout, out, conv_out, inp, weight, gamma,
                                    save_mean, save_invstd, N, C, H, W, OC, K, K, stride, pad);
      };
    return [=] {
      conv_bn_relu_backward(dinp, dweight, nullptr, dgamma, dbeta, dout, out, conv_out, inp, weight, gamma, save_mean,
                            save_invstd, N, C, H, W, OC, K, K, stride, pad);
    };
  }
  if (op == "cosine_fwd" || op == "cosine_bwd") {
    if (!need(2)) return {};
    const int n = int(p[0]), D = int(p[1]);
    float* a = w.add(rnd(size_t(n) * D, 11));
    float* b = w.add(rnd(size_t(n) * D, 12));
    if (op == "cosine_fwd") {
      float* out = w.add(zeros(size_t(n) * n));
      if (naive) return [=] { cosine_similarity_forward_naive(out, a, b, n, n, D, 1e-8f); };
      return [=] { cosine_similarity_forward(out, a, b, n, n, D, 1e-8f); };
    }
    float* dout = w.add(rnd(size_t(n) * n, 13));
    float* da = w.add(zeros(size_t(n) * D));
    float* db = w.add(zeros(size_t(n) * D));
    if (naive) return [=] { cosine_similarity_backward_naive(da, db, dout, a, b, n, n, D, 1e-8f); };
    return [=] { cosine_similarity_backward(da, db, dout, a, b, n, n, D, 1e-8f); };
  }
  if (op == "ntxent") {
    if (!need(3)) return {};
    const int N = int(p[0]), D = int(p[1]);
    const float tau = float(p[2]);
    float* s = w.add(rnd(size_t(N) * D, 21));
    float* t = w.add(rnd(size_t(N) * D, 22));
    float* ds = w.add(zeros(size_t(N) * D));
    float* dt = w.add(zeros(size_t(N) * D));
    float* loss = &w.loss;
    if (naive) return [=] { ntxent_forward_naive(loss, ds, dt, s, t, N, D, tau); };
    return [=] { ntxent_forward(loss, ds, dt, s, t, N, D, tau); };
  }
  if (op == "noise" || op == "topk" || op == "round") {
    if (!need(3)) return {};
    const int rows = int(p[0]), D = int(p[1]);
    const int64_t n = int64_t(rows) * D;
    float* inp = w.add(rnd(size_t(n), 31));
    float* out = w.add(zeros(size_t(n)));
    if (op == "noise") {
      const float sigma = float(p[2]);
      if (naive) return [=] { gaussian_noise_forward_naive(out, inp, n, sigma, 7, 0); };
      return [=] { gaussian_noise_forward(out, inp, n, sigma, 7, 0); };
    }
    if (op == "topk") {
      const int k = int(p[2]);
      if (naive) return [=] { topk_forward_naive(out, inp, rows, D, k); };
      return [=] { topk_forward(out, inp, rows, D, k); };
    }
    const int decimals = int(p[2]);
    if (naive) return [=] { round_forward_naive(out, inp, n, decimals); };
    return [=] { round_forward(out, inp, n, decimals); };
  }
  err = "unknown op " + op;
  return {};
}

void run_request(const std::string& line) {
  std::istringstream is(line);
  std::string id, impl, op;
  int warmup = 0, repeats = 0;
  double min_ms = 0;
  if (!(is >> id)) return;
  if (id == "peak") {
    double seconds = 0.3;
    is >> seconds;
    run_peak(std::max(0.01, seconds));
    return;
  }
  if (!(is >> impl >> op >> warmup >> repeats >> min_ms) || (impl != "fast" && impl != "naive")) {
    print_error(id, "malformed request: " + line);
    return;
  }
  std::vector<double> p;
  double v;
  while (is >> v) p.push_back(v);
  std::string err;
  Workload w;
  std::function<void()> fn;
  try {
    fn = make_op(op, impl == "naive", p, w, err);
    if (!fn) {
      print_error(id, err);
      return;
    }
    Result r = time_it(fn, std::max(0, warmup), std::max(1, repeats), min_ms);
    print_result(id, impl, r);
  } catch (const std::exception& e) {
    print_error(id, e.what());
  }
}

}  // namespace

int main() {
  std::ios::sync_with_stdio(false);
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line.empty()) continue;
    run_request(line);
  }
  host_cache_clear();
  return 0;
}
