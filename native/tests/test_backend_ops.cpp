// Backend consistency tests, ggml test-backend-ops style: ONE table of op
// cases, run by ONE loop on every backend against the CPU kernels of
// native/cpu/kernels.h (the reference). Backends:
//   naive  the plain twins of native/cpu/naive.h (fast CPU vs naive loops)
//   cuda   the launchers of native/cuda/cuda_kernels.h (device vs CPU)
// Every case x backend is one registered test, named backend_<case>[<backend>].
// It SKIPs (never passes) when the backend lacks one of the case's ops (an op
// marked NO_NAIVE / NO_CUDA in native/ops.def), when the build has no CUDA
// backend, or when no device answers (with the driver's message).
//
// A case is written once against a Backend (buffers + the op table generated
// from native/ops.def) and returns named outputs; the loop runs it on the CPU
// and on the backend and compares each output with ONE error metric: the
// scaled error max |got - ref| / (atol + rtol |ref|) <= 1 (harness.h), or
// bitwise equality where the op must be exact (RNG streams, top-k, rounding,
// copies and gathers). "rel" tolerances use atol = tol * max |ref| (sums over
// many products, whose rounding scales with the largest terms).
//
// Shapes: odd sizes, stride 2, padding 0/1/2, batch 1, null gradient
// pointers, in-place aliasing where the API allows it. Every op of the list
// must appear in some case (backend_table_covers_every_op).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "common.h"
#include "cpu/kernels.h"
#include "cpu/naive.h"
#include "harness.h"

#ifdef ENCSEC_HAVE_CUDA
#include "cuda/cuda_kernels.h"
#endif

using encsec_test::random_vector;
using Vec = std::vector<float>;
using IVec = std::vector<int32_t>;

namespace {

// ================================================================ op tables
// One entry per op of native/ops.def, every one returning a status (0 = ok):
// the CPU kernels wrapped, the naive twins wrapped (null where there is none),
// the CUDA launchers as they are (null where there is none, or no CUDA build).
struct OpTable {
#define ENCSEC_OP(name, naive, cuda, params) int(*name) params = nullptr;
#include "ops.def"
#undef ENCSEC_OP
};

template <auto F>
struct AsStatus;
template <typename... A, void (*F)(A...)>
struct AsStatus<F> {
  static int call(A... a) {
    F(a...);
    return 0;
  }
};

const OpTable kCpuOps = {
#define ENCSEC_OP(name, naive, cuda, params) &AsStatus<&encsec::name>::call,
#include "ops.def"
#undef ENCSEC_OP
};

#define NAIVE_PTR_NAIVE(name) &AsStatus<&encsec::name##_naive>::call
#define NAIVE_PTR_NO_NAIVE(name) nullptr
const OpTable kNaiveOps = {
#define ENCSEC_OP(name, naive, cuda, params) NAIVE_PTR_##naive(name),
#include "ops.def"
#undef ENCSEC_OP
};

#ifdef ENCSEC_HAVE_CUDA
#define CUDA_PTR_CUDA(name) &::cuda_##name
#else
#define CUDA_PTR_CUDA(name) nullptr
#endif
#define CUDA_PTR_NO_CUDA(name) nullptr
const OpTable kCudaOps = {
#define ENCSEC_OP(name, naive, cuda, params) CUDA_PTR_##cuda(name),
#include "ops.def"
#undef ENCSEC_OP
};

const std::vector<std::string>& all_op_names() {
  static const std::vector<std::string> names = {
#define ENCSEC_OP(name, naive, cuda, params) #name,
#include "ops.def"
#undef ENCSEC_OP
  };
  return names;
}

// Whether table t has op `name` (false for a name not in the list).
bool has_op(const OpTable& t, const std::string& name) {
#define ENCSEC_OP(op, naive, cuda, params) \
  if (name == #op) return t.op != nullptr;
#include "ops.def"
#undef ENCSEC_OP
  return false;
}

// ================================================================= backends
struct Backend {
  const char* name;
  const OpTable* ops;
  bool device;  // buffers live in CUDA device memory
  // Mirrors the CPU kernels' whole contract: the same float arithmetic (so
  // bitwise-equal results where the case says so), in-place aliasing, and
  // arguments outside lib/'s range. The CUDA launchers do; the naive twins
  // compute in double where a sum or quotient is involved and promise
  // neither aliasing nor out-of-range arguments, so the cases compare them
  // with a tolerance there and leave those variants out.
  bool mirrors_cpu;
};

const Backend kCpu = {"cpu", &kCpuOps, false, true};
const Backend kNaive = {"naive", &kNaiveOps, false, false};
const Backend kCuda = {"cuda", &kCudaOps, true, true};

// Why the CUDA backend cannot run here ("" when a device answered; probed once, device 0 selected).
const std::string& cuda_unavailable() {
  static std::string why = [] {
#ifndef ENCSEC_HAVE_CUDA
    return std::string("built without CUDA");
#else
    char msg[256];
    msg[0] = '\0';
    if (cuda_device_count(msg, sizeof msg) <= 0) return std::string("no CUDA device: ") + (msg[0] ? msg : "none found");
    int err = cuda_set_device(0);
    if (err) return std::string("no CUDA device: ") + cuda_error_string(err);
    return std::string();
#endif
  }();
  return why;
}

[[noreturn]] void fail_cuda(const char* what, int err) {
#ifdef ENCSEC_HAVE_CUDA
  throw std::runtime_error(std::string(what) + ": " + cuda_error_string(err));
#else
  throw std::runtime_error(std::string(what) + ": error " + std::to_string(err));
#endif
}

// n T's in the backend's memory (host vector, or device memory from the
// caching allocator); throws on CUDA errors (the harness reports exceptions).
template <typename T>
class Buf {
 public:
  Buf(const Backend& be, size_t n) : device_(be.device), n_(n) {
    if (!device_) {
      host_.assign(n, T());
      return;
    }
#ifdef ENCSEC_HAVE_CUDA
    void* p = nullptr;
    if (int err = cuda_malloc(&p, bytes())) fail_cuda("cuda_malloc", err);
    dev_ = static_cast<T*>(p);
#endif
  }
  Buf(const Backend& be, const std::vector<T>& v) : Buf(be, v.size()) { upload(v); }
  ~Buf() {
#ifdef ENCSEC_HAVE_CUDA
    if (device_ && dev_) cuda_free(dev_, bytes());
#endif
  }
  Buf(const Buf&) = delete;
  Buf& operator=(const Buf&) = delete;

  T* get() { return device_ ? dev_ : host_.data(); }
  void upload(const std::vector<T>& v) {
    if (v.size() != n_) throw std::runtime_error("Buf::upload: size mismatch");
    if (!device_) {
      host_ = v;
      return;
    }
#ifdef ENCSEC_HAVE_CUDA
    if (int err = cuda_memcpy_h2d(dev_, v.data(), n_ * sizeof(T))) fail_cuda("cuda_memcpy_h2d", err);
#endif
  }
  std::vector<T> host() const {
    if (!device_) return host_;
    std::vector<T> v(n_);
#ifdef ENCSEC_HAVE_CUDA
    int err = cuda_synchronize();
    if (!err) err = cuda_memcpy_d2h(v.data(), dev_, n_ * sizeof(T));
    if (err) fail_cuda("cuda_memcpy_d2h", err);
#endif
    return v;
  }

 private:
  size_t bytes() const { return n_ ? n_ * sizeof(T) : sizeof(T); }
  bool device_;
  size_t n_;
  std::vector<T> host_;
  T* dev_ = nullptr;
};
using BF = Buf<float>;
using BI = Buf<int32_t>;

// ================================================================= outputs
// How an output is compared with the reference's (the reference run's Cmp is used).
struct Cmp {
  enum Kind { kBitwise, kScaled, kRel } kind;
  double atol, rtol;
};
Cmp bitwise() { return {Cmp::kBitwise, 0, 0}; }
Cmp scaled(double atol, double rtol) { return {Cmp::kScaled, atol, rtol}; }
Cmp rel(double tol) { return {Cmp::kRel, tol, tol}; }

struct Output {
  std::string name;
  Vec v;
  Cmp cmp;
};

double max_abs(const Vec& v) {
  double m = 0;
  for (float x : v) m = std::max(m, static_cast<double>(std::fabs(x)));
  return m;
}

// What a case sees: the backend, the ops the case declared (calling another
// is a test bug, reported), and the outputs it collects.
class Run {
 public:
  // mirrors_cpu: of the backend under test (the reference run takes the same
  // value, so that both runs produce the same outputs).
  Run(const Backend& be, bool mirrors_cpu, const std::set<std::string>& declared)
      : be(be), mirrors_cpu(mirrors_cpu), declared_(declared) {}
  const Backend& be;
  const bool mirrors_cpu;
  std::vector<Output> outputs;

  void out(const std::string& name, Vec v, Cmp cmp) { outputs.push_back({name, std::move(v), cmp}); }

  // Runs one op: its status and, on a device, the asynchronous errors of the launch.
  template <typename Fn, typename... A>
  void call(const char* op, Fn fn, A... args) {
    if (!declared_.count(op)) encsec_test::record_failure(__FILE__, __LINE__, std::string("case calls undeclared op ") + op);
    if (!fn) throw std::runtime_error(std::string("backend ") + be.name + " has no " + op);
    int err = fn(args...);
#ifdef ENCSEC_HAVE_CUDA
    if (!err && be.device) err = cuda_synchronize();
#endif
    if (err) fail_cuda(op, err);
  }

 private:
  std::set<std::string> declared_;
};

// OP(r, name, args...): run op `name` of the run's backend.
#define OP(r, name, ...) (r).call(#name, (r).be.ops->name, __VA_ARGS__)

struct OpCase {
  std::string name;               // the test is backend_<name>[<backend>]
  std::vector<std::string> ops;   // every op of native/ops.def the case calls
  std::function<void(Run&)> body;
};

constexpr double kGemmTol = 1e-4;
constexpr double kEwTol = 1e-6;
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

Vec rnd(size_t n, uint32_t seed, float lo = -1.f, float hi = 1.f) { return random_vector(n, seed, lo, hi); }

// Values from a small integer set: many exact ties (max-pool argmax, top-k).
Vec ties(size_t n, uint32_t seed, int levels) {
  Vec v = rnd(n, seed, 0.f, 1.f);
  for (float& x : v) x = std::floor(x * levels) - levels / 2;
  return v;
}

std::string dims(std::initializer_list<long long> v) {
  std::string s;
  for (long long x : v) s += (s.empty() ? "" : "x") + std::to_string(x);
  return s;
}

// Compares every output of `got` with `ref`; failures name the case, backend and output.
void compare_outputs(const std::string& where, const std::vector<Output>& got, const std::vector<Output>& ref) {
  if (got.size() != ref.size()) {
    encsec_test::record_failure(__FILE__, __LINE__, where + ": " + std::to_string(got.size()) + " outputs, reference has " +
                                                        std::to_string(ref.size()));
    return;
  }
  for (size_t i = 0; i < ref.size(); ++i) {
    const Output &g = got[i], &r = ref[i];
    const std::string what = where + " " + r.name;
    if (g.name != r.name || g.v.size() != r.v.size()) {
      encsec_test::record_failure(__FILE__, __LINE__, what + ": output " + g.name + " of " + std::to_string(g.v.size()) +
                                                          " values, reference " + std::to_string(r.v.size()));
      continue;
    }
    if (r.cmp.kind == Cmp::kBitwise) {
      if (std::memcmp(g.v.data(), r.v.data(), r.v.size() * sizeof(float)) != 0) {
        size_t at = 0;
        while (at < r.v.size() && std::memcmp(&g.v[at], &r.v[at], sizeof(float)) == 0) ++at;
        char buf[160];
        std::snprintf(buf, sizeof buf, ": not bitwise equal at [%zu]: %.9g vs %.9g", at, (double)g.v[at], (double)r.v[at]);
        encsec_test::record_failure(__FILE__, __LINE__, what + buf);
      }
      continue;
    }
    const double atol = r.cmp.kind == Cmp::kRel ? r.cmp.atol * std::max(1e-30, max_abs(r.v)) : r.cmp.atol;
    size_t at = 0;
    const double e = encsec_test::max_scaled_error(g.v.data(), r.v.data(), r.v.size(), atol, r.cmp.rtol, &at);
    if (!(e <= 1.0)) {
      char buf[200];
      std::snprintf(buf, sizeof buf, ": scaled error %.3g at [%zu]: %.8g vs %.8g (atol %.3g, rtol %.3g)", e, at,
                    (double)g.v[at], (double)r.v[at], atol, r.cmp.rtol);
      encsec_test::record_failure(__FILE__, __LINE__, what + buf);
    }
  }
}

}  // namespace

// ==================================================================== cases
namespace {

struct ConvCase {
  int N, C, H, W, OC, KH, KW, stride, pad;
};
// Odd sizes, stride 1/2, padding 0/1/2, batch 1, 1x1 and non-square kernels,
// and one large enough for the split-K dweight path (N*OH*OW >= 1024).
const ConvCase kConvCases[] = {
    {2, 3, 9, 7, 5, 3, 3, 1, 1},  {1, 4, 8, 8, 6, 3, 3, 2, 0},  {3, 2, 5, 6, 4, 1, 1, 2, 0},
    {2, 3, 11, 10, 8, 5, 3, 2, 2}, {1, 1, 3, 3, 1, 3, 3, 1, 0},  {8, 16, 16, 16, 32, 3, 3, 1, 1},
    {2, 5, 13, 13, 7, 3, 3, 2, 1},
};
std::string conv_label(const ConvCase& c) {
  return dims({c.N, c.C, c.H, c.W}) + " w" + dims({c.OC, c.KH, c.KW}) + " s" + std::to_string(c.stride) + " p" +
         std::to_string(c.pad);
}

struct BnCase {
  int N, C, HW;
};
const BnCase kBnCases[] = {{2, 3, 35}, {1, 5, 64}, {4, 7, 1}, {3, 2, 300}, {16, 4, 9}};

const int64_t kEwSizes[] = {1, 777, 100003};

// Element-wise cases share inputs: a, b, g from seeds 1100 + n.
struct EwInputs {
  int64_t n;
  Vec a, b, g;
  explicit EwInputs(int64_t n_)
      : n(n_), a(rnd(size_t(n_), 1100 + uint32_t(n_))), b(rnd(size_t(n_), 1101 + uint32_t(n_))),
        g(rnd(size_t(n_), 1102 + uint32_t(n_))) {}
};

void case_sgemm(Run& r) {
  struct Case {
    int M, N, K;
  };
  // Small/odd, the 128x128 tile path (>= 128 tiles), and a long K that takes split-K.
  const Case cases[] = {{1, 1, 1}, {7, 5, 3}, {67, 45, 33}, {130, 66, 257}, {1500, 1400, 40}, {20, 30, 5000}};
  uint32_t seed = 10;
  for (const Case& c : cases)
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb)
        for (float beta : {0.0f, 0.5f}) {
          // Leading dimensions padded past the logical width.
          const int lda = (ta ? c.M : c.K) + 3, ldb = (tb ? c.K : c.N) + 1, ldc = c.N + 2;
          const size_t na = size_t(ta ? c.K : c.M) * lda, nb = size_t(tb ? c.N : c.K) * ldb, nc = size_t(c.M) * ldc;
          Vec A = rnd(na, ++seed), B = rnd(nb, ++seed), C = rnd(nc, ++seed);
          // beta == 0: C must not be read, so it holds NaN.
          BF dA(r.be, A), dB(r.be, B), dC(r.be, beta == 0.0f ? Vec(nc, kNaN) : C);
          OP(r, sgemm, ta != 0, tb != 0, c.M, c.N, c.K, 0.75f, dA.get(), lda, dB.get(), ldb, beta, dC.get(), ldc);
          const Vec got = dC.host();
          Vec logical;
          bool pad_ok = true;
          for (int m = 0; m < c.M; ++m) {
            for (int n = 0; n < c.N; ++n) logical.push_back(got[size_t(m) * ldc + n]);
            for (int j = c.N; j < ldc; ++j) pad_ok = pad_ok && got[size_t(m) * ldc + j] == C[size_t(m) * ldc + j];
          }
          const std::string label = dims({c.M, c.N, c.K}) + " ta" + std::to_string(ta) + " tb" + std::to_string(tb) +
                                    " beta" + std::to_string(beta);
          r.out(label, logical, rel(kGemmTol));
          if (beta != 0.0f) CHECK(pad_ok);  // padding untouched (on every backend)
        }
  // K == 0: C = beta * C.
  BF dC(r.be, rnd(12, 99));
  OP(r, sgemm, false, false, 3, 4, 0, 1.0f, (const float*)nullptr, 1, (const float*)nullptr, 4, 0.5f, dC.get(), 4);
  r.out("K=0", dC.host(), scaled(1e-7, 1e-6));
}

void case_conv2d_forward(Run& r) {
  uint32_t seed = 100;
  for (const ConvCase& c : kConvCases)
    for (int with_bias = 0; with_bias < 2; ++with_bias) {
      const int OH = encsec::conv_out_size(c.H, c.KH, c.stride, c.pad);
      const int OW = encsec::conv_out_size(c.W, c.KW, c.stride, c.pad);
      Vec x = rnd(size_t(c.N) * c.C * c.H * c.W, ++seed), w = rnd(size_t(c.OC) * c.C * c.KH * c.KW, ++seed),
          b = rnd(c.OC, ++seed);
      BF dx(r.be, x), dw(r.be, w), db(r.be, b), dout(r.be, size_t(c.N) * c.OC * OH * OW);
      OP(r, conv2d_forward, dout.get(), dx.get(), dw.get(), with_bias ? db.get() : nullptr, c.N, c.C, c.H, c.W, c.OC,
         c.KH, c.KW, c.stride, c.pad);
      r.out(conv_label(c) + (with_bias ? " bias" : ""), dout.host(), rel(kGemmTol));
    }
}

void case_conv2d_backward(Run& r) {
  uint32_t seed = 200;
  for (const ConvCase& c : kConvCases) {
    const int OH = encsec::conv_out_size(c.H, c.KH, c.stride, c.pad);
    const int OW = encsec::conv_out_size(c.W, c.KW, c.stride, c.pad);
    const size_t nx = size_t(c.N) * c.C * c.H * c.W, nw = size_t(c.OC) * c.C * c.KH * c.KW,
                 no = size_t(c.N) * c.OC * OH * OW;
    Vec x = rnd(nx, ++seed), w = rnd(nw, ++seed), g = rnd(no, ++seed);
    BF dx(r.be, x), dw(r.be, w), dg(r.be, g);
    // All three gradients, then each alone (the others null).
    for (int mask = 7; mask >= 1; mask = mask == 7 ? 4 : mask >> 1) {
      BF gx(r.be, nx), gw(r.be, nw), gb(r.be, c.OC);
      OP(r, conv2d_backward, (mask & 4) ? gx.get() : nullptr, (mask & 2) ? gw.get() : nullptr,
         (mask & 1) ? gb.get() : nullptr, dg.get(), dx.get(), dw.get(), c.N, c.C, c.H, c.W, c.OC, c.KH, c.KW, c.stride,
         c.pad);
      const std::string label = conv_label(c) + " mask" + std::to_string(mask);
      if (mask & 4) r.out(label + " dx", gx.host(), rel(kGemmTol));
      if (mask & 2) r.out(label + " dw", gw.host(), rel(kGemmTol));
      if (mask & 1) r.out(label + " db", gb.host(), rel(kGemmTol));
    }
  }
}

void case_batchnorm_forward(Run& r) {
  uint32_t seed = 300;
  for (const BnCase& c : kBnCases) {
    const size_t n = size_t(c.N) * c.C * c.HW;
    // Offset and scaled input so the mean/variance are not trivially 0/1.
    Vec x = rnd(n, ++seed, -2.f, 5.f), gamma = rnd(c.C, ++seed, 0.5f, 1.5f), beta = rnd(c.C, ++seed);
    Vec rm = rnd(c.C, ++seed), rv = rnd(c.C, ++seed, 0.5f, 2.f);
    const float momentum = 0.1f, eps = 1e-5f;
    const std::string label = dims({c.N, c.C, c.HW});
    BF dx(r.be, x), dg(r.be, gamma), db(r.be, beta), drm(r.be, rm), drv(r.be, rv), dout(r.be, n), dsm(r.be, c.C),
        dsi(r.be, c.C);
    OP(r, batchnorm2d_forward_train, dout.get(), dsm.get(), dsi.get(), drm.get(), drv.get(), dx.get(), dg.get(),
       db.get(), c.N, c.C, c.HW, momentum, eps);
    r.out(label + " out", dout.host(), rel(1e-5));
    r.out(label + " save_mean", dsm.host(), rel(1e-5));
    r.out(label + " save_invstd", dsi.host(), rel(1e-5));
    r.out(label + " running_mean", drm.host(), rel(1e-5));
    r.out(label + " running_var", drv.host(), rel(1e-5));
    BF drm0(r.be, rm), drv0(r.be, rv), deout(r.be, n);
    OP(r, batchnorm2d_forward_eval, deout.get(), dx.get(), dg.get(), db.get(), drm0.get(), drv0.get(), c.N, c.C, c.HW,
       eps);
    r.out(label + " eval", deout.host(), rel(1e-5));
  }
}

void case_batchnorm_backward(Run& r) {
  uint32_t seed = 400;
  for (const BnCase& c : kBnCases) {
    const size_t n = size_t(c.N) * c.C * c.HW;
    Vec x = rnd(n, ++seed, -2.f, 5.f), gamma = rnd(c.C, ++seed, 0.5f, 1.5f), beta = rnd(c.C, ++seed);
    // The saved statistics from the CPU forward: identical inputs for every backend.
    Vec rm(c.C, 0.f), rv(c.C, 1.f), out(n), sm(c.C), si(c.C);
    encsec::batchnorm2d_forward_train(out.data(), sm.data(), si.data(), rm.data(), rv.data(), x.data(), gamma.data(),
                                      beta.data(), c.N, c.C, c.HW, 0.1f, 1e-5f);
    Vec g = rnd(n, ++seed);
    BF dx(r.be, x), dgam(r.be, gamma), dsm(r.be, sm), dsi(r.be, si), dg(r.be, g);
    for (int mask = 7; mask >= 1; mask = mask == 7 ? 4 : mask >> 1) {
      BF gx(r.be, n), gg(r.be, c.C), gb(r.be, c.C);
      OP(r, batchnorm2d_backward, (mask & 4) ? gx.get() : nullptr, (mask & 2) ? gg.get() : nullptr,
         (mask & 1) ? gb.get() : nullptr, dg.get(), dx.get(), dgam.get(), dsm.get(), dsi.get(), c.N, c.C, c.HW);
      const std::string label = dims({c.N, c.C, c.HW}) + " mask" + std::to_string(mask);
      if (mask & 4) r.out(label + " dx", gx.host(), rel(1e-4));
      if (mask & 2) r.out(label + " dgamma", gg.host(), rel(1e-5));
      if (mask & 1) r.out(label + " dbeta", gb.host(), rel(1e-5));
    }
  }
}

void case_conv_bn_relu(Run& r) {
  uint32_t seed = 500;
  const ConvCase cases[] = {{2, 3, 9, 7, 5, 3, 3, 1, 1}, {1, 4, 8, 8, 6, 3, 3, 2, 0}, {4, 8, 6, 6, 8, 3, 3, 1, 1},
                            {3, 2, 5, 6, 4, 1, 1, 2, 0}};
  for (const ConvCase& c : cases) {
    const int OH = encsec::conv_out_size(c.H, c.KH, c.stride, c.pad);
    const int OW = encsec::conv_out_size(c.W, c.KW, c.stride, c.pad);
    const size_t nx = size_t(c.N) * c.C * c.H * c.W, nw = size_t(c.OC) * c.C * c.KH * c.KW,
                 no = size_t(c.N) * c.OC * OH * OW;
    Vec x = rnd(nx, ++seed), w = rnd(nw, ++seed), cb = rnd(c.OC, ++seed), gamma = rnd(c.OC, ++seed, 0.5f, 1.5f),
        beta = rnd(c.OC, ++seed, -0.5f, 0.5f), rm = rnd(c.OC, ++seed), rv = rnd(c.OC, ++seed, 0.5f, 2.f);
    const float momentum = 0.1f, eps = 1e-5f;
    const std::string label = conv_label(c);

    // Train forward.
    BF dx(r.be, x), dw(r.be, w), dcb(r.be, cb), dgam(r.be, gamma), dbet(r.be, beta), drm(r.be, rm), drv(r.be, rv),
        dout(r.be, no), dconv(r.be, no), dsm(r.be, c.OC), dsi(r.be, c.OC);
    OP(r, conv_bn_relu_forward_train, dout.get(), dconv.get(), dsm.get(), dsi.get(), drm.get(), drv.get(), dx.get(),
       dw.get(), dcb.get(), dgam.get(), dbet.get(), c.N, c.C, c.H, c.W, c.OC, c.KH, c.KW, c.stride, c.pad, momentum,
       eps);
    r.out(label + " out", dout.host(), rel(kGemmTol));
    r.out(label + " conv_out", dconv.host(), rel(kGemmTol));
    r.out(label + " save_mean", dsm.host(), rel(kGemmTol));
    r.out(label + " save_invstd", dsi.host(), rel(kGemmTol));
    r.out(label + " running_mean", drm.host(), rel(kGemmTol));
    r.out(label + " running_var", drv.host(), rel(kGemmTol));

    // Eval forward (running statistics).
    BF drm0(r.be, rm), drv0(r.be, rv), deout(r.be, no);
    OP(r, conv_bn_relu_forward_eval, deout.get(), dx.get(), dw.get(), dcb.get(), dgam.get(), dbet.get(), drm0.get(),
       drv0.get(), c.N, c.C, c.H, c.W, c.OC, c.KH, c.KW, c.stride, c.pad, eps);
    r.out(label + " eval", deout.host(), rel(kGemmTol));

    // Backward from the CPU forward's saved tensors (identical inputs for every backend).
    Vec out(no), conv_out(no), sm(c.OC), si(c.OC), rm_c = rm, rv_c = rv;
    encsec::conv_bn_relu_forward_train(out.data(), conv_out.data(), sm.data(), si.data(), rm_c.data(), rv_c.data(),
                                       x.data(), w.data(), cb.data(), gamma.data(), beta.data(), c.N, c.C, c.H, c.W,
                                       c.OC, c.KH, c.KW, c.stride, c.pad, momentum, eps);
    Vec g = rnd(no, ++seed);
    // The CPU's dbeta sets the scale of the d conv_bias comparison (below).
    Vec rdb(c.OC);
    encsec::conv_bn_relu_backward(nullptr, nullptr, nullptr, nullptr, rdb.data(), g.data(), out.data(), conv_out.data(),
                                  x.data(), w.data(), gamma.data(), sm.data(), si.data(), c.N, c.C, c.H, c.W, c.OC,
                                  c.KH, c.KW, c.stride, c.pad);
    BF dg(r.be, g), dout_c(r.be, out), dconv_c(r.be, conv_out), dsm_c(r.be, sm), dsi_c(r.be, si);
    for (int mask : {31, 16, 8, 4, 2, 1, 3}) {
      BF gx(r.be, nx), gw(r.be, nw), gcb(r.be, c.OC), gg(r.be, c.OC), gb(r.be, c.OC);
      OP(r, conv_bn_relu_backward, (mask & 16) ? gx.get() : nullptr, (mask & 8) ? gw.get() : nullptr,
         (mask & 4) ? gcb.get() : nullptr, (mask & 2) ? gg.get() : nullptr, (mask & 1) ? gb.get() : nullptr, dg.get(),
         dout_c.get(), dconv_c.get(), dx.get(), dw.get(), dgam.get(), dsm_c.get(), dsi_c.get(), c.N, c.C, c.H, c.W, c.OC,
         c.KH, c.KW, c.stride, c.pad);
      const std::string ml = label + " mask" + std::to_string(mask);
      if (mask & 16) r.out(ml + " dx", gx.host(), rel(kGemmTol));
      if (mask & 8) r.out(ml + " dw", gw.host(), rel(kGemmTol));
      // d conv_bias is 0 in exact arithmetic (training-mode BN removes the
      // channel mean): only rounding noise is left on either side, so compare
      // on the scale of the channel sums of the upstream gradient (dbeta).
      if (mask & 4) r.out(ml + " dconv_bias", gcb.host(), scaled(kGemmTol * std::max(1.0, max_abs(rdb)), kGemmTol));
      if (mask & 2) r.out(ml + " dgamma", gg.host(), rel(kGemmTol));
      if (mask & 1) r.out(ml + " dbeta", gb.host(), rel(kGemmTol));
    }
  }
}

void case_relu(Run& r) {
  for (int64_t n : {int64_t(1), int64_t(1001), int64_t(70001)}) {
    const size_t sn = static_cast<size_t>(n);
    Vec x = rnd(sn, 600 + uint32_t(n)), g = rnd(sn, 601 + uint32_t(n));
    x[0] = 0.0f;  // exactly zero: no gradient
    BF d_x(r.be, x), d_g(r.be, g), d_out(r.be, sn), d_dx(r.be, sn);
    const std::string label = "n" + std::to_string(n);
    OP(r, relu_forward, d_out.get(), d_x.get(), n);
    r.out(label + " out", d_out.host(), bitwise());
    OP(r, relu_backward, d_dx.get(), d_g.get(), d_out.get(), n);
    r.out(label + " dx", d_dx.host(), bitwise());
    if (r.mirrors_cpu) {
      OP(r, relu_forward, d_x.get(), d_x.get(), n);  // in place
      r.out(label + " in place", d_x.host(), bitwise());
    }
  }
}

void case_maxpool2d(Run& r) {
  struct Case {
    int N, C, H, W, k;
  };
  // Odd sizes (floor: the last row/column is outside every window), k = 1..3, batch 1.
  const Case cases[] = {{2, 3, 7, 9, 2}, {1, 2, 8, 8, 2}, {3, 1, 10, 11, 3}, {1, 1, 5, 5, 1}, {2, 4, 2, 3, 2},
                        // Vector steps and their tails: 14 windows a row (a whole step, then the last 8
                        // again), 7 (short rows), 18 with an odd row and column, 2 (planes under a step).
                        {2, 3, 28, 28, 2}, {1, 2, 14, 14, 2}, {1, 2, 9, 37, 2}, {2, 2, 3, 5, 2}};
  uint32_t seed = 700;
  for (const Case& c : cases) {
    const int OH = c.H / c.k, OW = c.W / c.k;
    const size_t nx = size_t(c.N) * c.C * c.H * c.W, no = size_t(c.N) * c.C * OH * OW;
    // Integer values with many ties: the gradient must go to the first maximum.
    Vec x = ties(nx, ++seed, 4), g = rnd(no, ++seed);
    // NaN wins its window (the last one when several): two in the first window.
    if (c.k >= 2) x[0] = x[1] = kNaN;
    // The wider planes: NaNs in every corner position and vector lane too.
    if (c.k >= 2 && c.W >= 14)
      for (size_t i = 13; i < nx; i += 29) x[i] = kNaN;
    // Garbage in dinp: it must be fully overwritten.
    BF d_x(r.be, x), d_g(r.be, g), d_out(r.be, no), d_dx(r.be, Vec(nx, kNaN));
    const std::string label = dims({c.N, c.C, c.H, c.W}) + " k" + std::to_string(c.k);
    OP(r, maxpool2d_forward, d_out.get(), d_x.get(), c.N, c.C, c.H, c.W, c.k);
    r.out(label + " out", d_out.host(), bitwise());
    OP(r, maxpool2d_backward, d_dx.get(), d_g.get(), d_x.get(), c.N, c.C, c.H, c.W, c.k);
    r.out(label + " dx", d_dx.host(), bitwise());
  }
}

void case_global_avgpool(Run& r) {
  const BnCase cases[] = {{2, 3, 49}, {1, 5, 1}, {4, 7, 64}, {3, 2, 1000}};
  uint32_t seed = 800;
  for (const BnCase& c : cases) {
    const size_t nx = size_t(c.N) * c.C * c.HW, no = size_t(c.N) * c.C;
    Vec x = rnd(nx, ++seed), g = rnd(no, ++seed);
    BF d_x(r.be, x), d_g(r.be, g), d_out(r.be, no), d_dx(r.be, nx);
    const std::string label = dims({c.N, c.C, c.HW});
    OP(r, global_avgpool_forward, d_out.get(), d_x.get(), c.N, c.C, c.HW);
    r.out(label + " out", d_out.host(), scaled(1e-6, 1e-5));
    OP(r, global_avgpool_backward, d_dx.get(), d_g.get(), c.N, c.C, c.HW);
    r.out(label + " dx", d_dx.host(), scaled(1e-7, 1e-6));
  }
}

void case_linear(Run& r) {
  struct Case {
    int B, IC, OC;
  };
  const Case cases[] = {{1, 1, 1}, {1, 17, 5}, {7, 33, 10}, {64, 512, 128}, {300, 70, 130}};
  uint32_t seed = 900;
  for (const Case& c : cases)
    for (int with_bias = 0; with_bias < 2; ++with_bias) {
      const size_t nx = size_t(c.B) * c.IC, nw = size_t(c.OC) * c.IC, no = size_t(c.B) * c.OC;
      Vec x = rnd(nx, ++seed), w = rnd(nw, ++seed), b = rnd(c.OC, ++seed), g = rnd(no, ++seed);
      BF dx(r.be, x), dw(r.be, w), db(r.be, b), dg(r.be, g), dout(r.be, no);
      const std::string label = dims({c.B, c.IC, c.OC}) + (with_bias ? " bias" : "");
      OP(r, linear_forward, dout.get(), dx.get(), dw.get(), with_bias ? db.get() : nullptr, c.B, c.IC, c.OC);
      r.out(label + " out", dout.host(), rel(kGemmTol));
      for (int mask = 7; mask >= 1; mask = mask == 7 ? 4 : mask >> 1) {
        BF gx(r.be, nx), gw(r.be, nw), gb(r.be, c.OC);
        OP(r, linear_backward, (mask & 4) ? gx.get() : nullptr, (mask & 2) ? gw.get() : nullptr,
           (mask & 1) ? gb.get() : nullptr, dg.get(), dx.get(), dw.get(), c.B, c.IC, c.OC);
        const std::string ml = label + " mask" + std::to_string(mask);
        if (mask & 4) r.out(ml + " dx", gx.host(), rel(kGemmTol));
        if (mask & 2) r.out(ml + " dw", gw.host(), rel(kGemmTol));
        if (mask & 1) r.out(ml + " db", gb.host(), rel(kGemmTol));
      }
    }
}

void case_matmul(Run& r) {
  struct Case {
    int M, K, N;
  };
  const Case cases[] = {{1, 1, 1}, {5, 9, 3}, {65, 31, 129}, {200, 300, 150}};
  uint32_t seed = 1000;
  for (const Case& c : cases) {
    const size_t na = size_t(c.M) * c.K, nb = size_t(c.K) * c.N, no = size_t(c.M) * c.N;
    Vec a = rnd(na, ++seed), b = rnd(nb, ++seed), g = rnd(no, ++seed);
    BF da(r.be, a), db(r.be, b), dg(r.be, g), dout(r.be, no), ga(r.be, na), gb(r.be, nb), gb2(r.be, nb);
    const std::string label = dims({c.M, c.K, c.N});
    OP(r, matmul_forward, dout.get(), da.get(), db.get(), c.M, c.K, c.N);
    r.out(label + " out", dout.host(), rel(kGemmTol));
    OP(r, matmul_backward, ga.get(), gb.get(), dg.get(), da.get(), db.get(), c.M, c.K, c.N);
    r.out(label + " da", ga.host(), rel(kGemmTol));
    r.out(label + " db", gb.host(), rel(kGemmTol));
    OP(r, matmul_backward, nullptr, gb2.get(), dg.get(), da.get(), db.get(), c.M, c.K, c.N);
    r.out(label + " db alone", gb2.host(), rel(kGemmTol));
  }
}

// Element-wise ops: one case each, so that each op gets its own SKIP or result.
void case_binary(Run& r, const char* which) {
  for (int64_t n : kEwSizes) {
    EwInputs in(n);
    const size_t sn = size_t(n);
    BF da(r.be, in.a), db(r.be, in.b), dout(r.be, sn);
    const std::string label = "n" + std::to_string(n);
    if (!std::strcmp(which, "add")) OP(r, add_forward, dout.get(), da.get(), db.get(), n);
    if (!std::strcmp(which, "sub")) OP(r, sub_forward, dout.get(), da.get(), db.get(), n);
    if (!std::strcmp(which, "mul")) OP(r, mul_forward, dout.get(), da.get(), db.get(), n);
    r.out(label, dout.host(), bitwise());
  }
}

void case_mul_backward(Run& r) {
  for (int64_t n : kEwSizes) {
    EwInputs in(n);
    const size_t sn = size_t(n);
    BF da(r.be, in.a), db(r.be, in.b), dg(r.be, in.g), gda(r.be, sn), gdb(r.be, sn), gdb2(r.be, sn);
    const std::string label = "n" + std::to_string(n);
    OP(r, mul_backward, gda.get(), gdb.get(), dg.get(), da.get(), db.get(), n);
    r.out(label + " da", gda.host(), bitwise());
    r.out(label + " db", gdb.host(), bitwise());
    OP(r, mul_backward, nullptr, gdb2.get(), dg.get(), da.get(), db.get(), n);
    r.out(label + " db alone", gdb2.host(), bitwise());
  }
}

void case_scale(Run& r) {
  for (int64_t n : kEwSizes) {
    EwInputs in(n);
    BF da(r.be, in.a), dout(r.be, size_t(n));
    OP(r, scale_forward, dout.get(), da.get(), -1.7f, n);
    r.out("n" + std::to_string(n), dout.host(), bitwise());
  }
}

void case_fill(Run& r) {
  for (int64_t n : kEwSizes) {
    BF dout(r.be, Vec(size_t(n), kNaN));
    OP(r, fill_forward, dout.get(), 3.25f, n);
    r.out("n" + std::to_string(n), dout.host(), bitwise());
  }
}

void case_axpy(Run& r) {
  // The device may fuse the multiply-add: an element-wise tolerance.
  for (int64_t n : kEwSizes) {
    EwInputs in(n);
    BF da(r.be, in.a), db(r.be, in.b), dout(r.be, size_t(n)), dacc(r.be, in.a);
    const std::string label = "n" + std::to_string(n);
    OP(r, axpy_forward, dout.get(), da.get(), 0.3f, db.get(), n);
    r.out(label, dout.host(), scaled(kEwTol, kEwTol));
    if (r.mirrors_cpu) {
      OP(r, axpy_forward, dacc.get(), dacc.get(), 0.3f, db.get(), n);  // in place: gradient accumulation
      r.out(label + " in place", dacc.host(), scaled(kEwTol, kEwTol));
    }
  }
}

void case_sum(Run& r) {
  for (int64_t n : kEwSizes) {  // double accumulation on every backend
    EwInputs in(n);
    BF da(r.be, in.a), ds(r.be, 1);
    OP(r, sum_forward, ds.get(), da.get(), n);
    r.out("n" + std::to_string(n), ds.host(), scaled(1e-6, 1e-6));
  }
  BF ds(r.be, Vec{5.0f});  // sum of nothing: 0
  OP(r, sum_forward, ds.get(), (const float*)nullptr, int64_t(0));
  const Vec z = ds.host();
  CHECK(z[0] == 0.0f);
  r.out("empty", z, bitwise());
}

void case_concat(Run& r) {
  for (int64_t n : kEwSizes) {
    EwInputs in(n);
    const int64_t na = n / 3, nb = n - na;
    BF da(r.be, in.a), db(r.be, in.b), dc(r.be, size_t(n));
    OP(r, concat_forward, dc.get(), da.get(), na, db.get(), nb);
    r.out("n" + std::to_string(n), dc.host(), bitwise());
  }
}

void case_add_channel_bias(Run& r) {
  const BnCase cases[] = {{2, 3, 35}, {1, 1, 1}, {5, 16, 1}, {3, 7, 300}};
  uint32_t seed = 1200;
  for (const BnCase& c : cases) {
    const size_t n = size_t(c.N) * c.C * c.HW;
    Vec x = rnd(n, ++seed), b = rnd(c.C, ++seed);
    BF dx(r.be, x), db(r.be, b), dout(r.be, n);
    OP(r, add_channel_bias_forward, dout.get(), dx.get(), db.get(), c.N, c.C, c.HW);
    r.out(dims({c.N, c.C, c.HW}), dout.host(), bitwise());
  }
}

void case_l2normalize(Run& r) {
  struct Case {
    int rows, D;
  };
  const Case cases[] = {{1, 1}, {5, 17}, {64, 128}, {3, 1000}};
  uint32_t seed = 1300;
  const float eps = 1e-12f;
  for (const Case& c : cases) {
    const size_t n = size_t(c.rows) * c.D;
    Vec x = rnd(n, ++seed), g = rnd(n, ++seed);
    if (c.rows > 2)
      for (int i = 0; i < c.D; ++i) x[size_t(2) * c.D + i] = 0.0f;  // a zero row: the eps branch
    const std::string label = dims({c.rows, c.D});
    BF d_x(r.be, x), d_g(r.be, g), d_out(r.be, n), d_nrm(r.be, c.rows), d_dx(r.be, n);
    OP(r, l2normalize_forward, d_out.get(), d_nrm.get(), d_x.get(), c.rows, c.D, eps);
    r.out(label + " out", d_out.host(), scaled(1e-6, 1e-5));
    const Vec nrm = d_nrm.host();
    r.out(label + " norms", nrm, scaled(1e-6, 1e-5));
    OP(r, l2normalize_forward, d_out.get(), nullptr, d_x.get(), c.rows, c.D, eps);  // norms not wanted
    r.out(label + " out, no norms", d_out.host(), scaled(1e-6, 1e-5));
    // Row by row, on the scale |dout| / max(|x|, eps) of that row: the
    // projection can cancel to ~0 (D = 1), and the zero row's dout / eps is
    // huge, so neither the row's own values nor a global scale would do.
    // (The reference run's norms set the scale.)
    auto rows_out = [&](const std::string& what, const Vec& got) {
      for (int row = 0; row < c.rows; ++row) {
        const size_t o = size_t(row) * c.D;
        Vec gr(got.begin() + o, got.begin() + o + c.D), gg(g.begin() + o, g.begin() + o + c.D);
        const double scale = max_abs(gg) / std::max(nrm[row], eps);
        r.out(label + " " + what + " row " + std::to_string(row), gr, scaled(1e-5 * scale, 1e-5));
      }
    };
    OP(r, l2normalize_backward, d_dx.get(), d_g.get(), d_x.get(), d_nrm.get(), c.rows, c.D, eps);
    rows_out("dx", d_dx.host());
    // In place (dinp aliasing dout), as cosine's backward uses it.
    if (r.mirrors_cpu) {
      OP(r, l2normalize_backward, d_g.get(), d_g.get(), d_x.get(), d_nrm.get(), c.rows, c.D, eps);
      rows_out("dx in place", d_g.host());
    }
  }
}

void case_cosine_similarity(Run& r) {
  struct Case {
    int n, m, D;
  };
  // (D = 1 is degenerate: cos = +-1 and the gradient is 0 up to rounding noise.)
  const Case cases[] = {{1, 1, 3}, {5, 7, 16}, {33, 65, 128}, {200, 150, 64}};
  uint32_t seed = 1400;
  const float eps = 1e-8f;
  for (const Case& c : cases) {
    Vec a = rnd(size_t(c.n) * c.D, ++seed), b = rnd(size_t(c.m) * c.D, ++seed), g = rnd(size_t(c.n) * c.m, ++seed);
    BF da(r.be, a), db(r.be, b), dg(r.be, g), dout(r.be, size_t(c.n) * c.m), ga(r.be, a.size()), gb(r.be, b.size()),
        ga2(r.be, a.size());
    const std::string label = dims({c.n, c.m, c.D});
    OP(r, cosine_similarity_forward, dout.get(), da.get(), db.get(), c.n, c.m, c.D, eps);
    r.out(label + " out", dout.host(), rel(kGemmTol));
    OP(r, cosine_similarity_backward, ga.get(), gb.get(), dg.get(), da.get(), db.get(), c.n, c.m, c.D, eps);
    r.out(label + " da", ga.host(), rel(kGemmTol));
    r.out(label + " db", gb.host(), rel(kGemmTol));
    OP(r, cosine_similarity_backward, ga2.get(), nullptr, dg.get(), da.get(), db.get(), c.n, c.m, c.D, eps);
    r.out(label + " da alone", ga2.host(), rel(kGemmTol));
  }
}

void case_cosine_loss(Run& r) {
  struct Case {
    int rows, D;
  };
  const Case cases[] = {{1, 3}, {1, 64}, {9, 17}, {256, 128}};
  uint32_t seed = 1500;
  const float eps = 1e-8f;
  for (const Case& c : cases) {
    const size_t n = size_t(c.rows) * c.D;
    Vec a = rnd(n, ++seed), b = rnd(n, ++seed);
    BF da(r.be, a), db(r.be, b), dl(r.be, 1), ga(r.be, n), gb(r.be, n), dl2(r.be, 1);
    const std::string label = dims({c.rows, c.D});
    OP(r, cosine_loss_forward, dl.get(), ga.get(), gb.get(), da.get(), db.get(), c.rows, c.D, eps);
    r.out(label + " loss", dl.host(), scaled(1e-6, 1e-5));
    r.out(label + " da", ga.host(), rel(1e-5));
    r.out(label + " db", gb.host(), rel(1e-5));
    OP(r, cosine_loss_forward, dl2.get(), nullptr, nullptr, da.get(), db.get(), c.rows, c.D, eps);
    r.out(label + " loss alone", dl2.host(), scaled(1e-6, 1e-5));
  }
}

void case_ntxent(Run& r) {
  struct Case {
    int N, D;
    float tau;
  };
  const Case cases[] = {{1, 4, 0.5f}, {3, 7, 0.1f}, {16, 32, 0.5f}, {100, 128, 0.2f}, {5, 300, 1.0f}};
  uint32_t seed = 1600;
  for (const Case& c : cases) {
    const size_t n = size_t(c.N) * c.D;
    Vec s = rnd(n, ++seed), t = rnd(n, ++seed);
    BF d_s(r.be, s), d_t(r.be, t), dl(r.be, 1), gs(r.be, n), gt(r.be, n), dl2(r.be, 1), gt2(r.be, n);
    const std::string label = dims({c.N, c.D}) + " tau" + std::to_string(c.tau);
    OP(r, ntxent_forward, dl.get(), gs.get(), gt.get(), d_s.get(), d_t.get(), c.N, c.D, c.tau);
    r.out(label + " loss", dl.host(), scaled(1e-5, 1e-5));
    r.out(label + " ds", gs.host(), rel(kGemmTol));
    r.out(label + " dt", gt.host(), rel(kGemmTol));
    // Loss only, and one gradient only.
    OP(r, ntxent_forward, dl2.get(), nullptr, nullptr, d_s.get(), d_t.get(), c.N, c.D, c.tau);
    r.out(label + " loss alone", dl2.host(), scaled(1e-5, 1e-5));
    OP(r, ntxent_forward, dl2.get(), nullptr, gt2.get(), d_s.get(), d_t.get(), c.N, c.D, c.tau);
    r.out(label + " dt alone", gt2.host(), rel(kGemmTol));
  }
}

void case_crossentropy(Run& r) {
  struct Case {
    int B, C;
  };
  const Case cases[] = {{1, 1}, {1, 10}, {7, 3}, {128, 10}, {5, 1000}};
  uint32_t seed = 1700;
  for (const Case& c : cases) {
    // Large logits: the max subtraction must keep exp finite.
    Vec x = rnd(size_t(c.B) * c.C, ++seed, -30.f, 60.f);
    Vec lf = rnd(c.B, ++seed, 0.f, 1.f);
    IVec labels(c.B);
    for (int b = 0; b < c.B; ++b) labels[b] = std::min(c.C - 1, static_cast<int>(lf[b] * c.C));
    BF dx(r.be, x), dl(r.be, 1), gx(r.be, x.size()), dl2(r.be, 1);
    BI dlab(r.be, labels);
    const std::string label = dims({c.B, c.C});
    OP(r, crossentropy_forward, dl.get(), gx.get(), dx.get(), dlab.get(), c.B, c.C);
    r.out(label + " loss", dl.host(), scaled(1e-5, 1e-5));
    r.out(label + " dlogits", gx.host(), scaled(1e-7, 1e-5));
    OP(r, crossentropy_forward, dl2.get(), nullptr, dx.get(), dlab.get(), c.B, c.C);
    r.out(label + " loss alone", dl2.host(), scaled(1e-5, 1e-5));
  }
}

void case_mse(Run& r) {
  for (int64_t n : {int64_t(1), int64_t(999), int64_t(200001)}) {
    const size_t sn = static_cast<size_t>(n);
    Vec a = rnd(sn, 1800 + uint32_t(n)), b = rnd(sn, 1801 + uint32_t(n));
    BF da(r.be, a), db(r.be, b), dl(r.be, 1), ga(r.be, sn), gb(r.be, sn), gb2(r.be, sn);
    const std::string label = "n" + std::to_string(n);
    OP(r, mse_forward, dl.get(), ga.get(), gb.get(), da.get(), db.get(), n);
    r.out(label + " loss", dl.host(), scaled(1e-7, 1e-6));
    // 2 (a - b) / n in float on the CPU and the device, in double in the twin.
    const Cmp grad = r.mirrors_cpu ? bitwise() : scaled(1e-9, 1e-6);
    r.out(label + " da", ga.host(), grad);
    r.out(label + " db", gb.host(), grad);
    OP(r, mse_forward, dl.get(), nullptr, gb2.get(), da.get(), db.get(), n);
    r.out(label + " db alone", gb2.host(), grad);
  }
}

void case_sgd(Run& r) {
  const int64_t n = 10007;
  const size_t sn = size_t(n);
  uint32_t seed = 1900;
  for (int use_buf = 0; use_buf < 2; ++use_buf)
    for (int nesterov = 0; nesterov < 2; ++nesterov)
      for (float wd : {0.0f, 5e-4f}) {
        Vec p = rnd(sn, ++seed), buf = rnd(sn, ++seed), g = rnd(sn, ++seed);
        BF dp(r.be, p), dbuf(r.be, buf), dg(r.be, g);
        // Three steps: the first initialises the momentum buffer.
        for (int step = 0; step < 3; ++step)
          OP(r, sgd_update, dp.get(), use_buf ? dbuf.get() : nullptr, dg.get(), n, 0.1f, 0.9f, wd, nesterov != 0,
             step == 0);
        const std::string label = "buf" + std::to_string(use_buf) + " nesterov" + std::to_string(nesterov) + " wd" +
                                  std::to_string(wd);
        r.out(label + " param", dp.host(), scaled(kEwTol, kEwTol));
        if (use_buf) r.out(label + " momentum", dbuf.host(), scaled(kEwTol, kEwTol));
      }
}

void case_adam(Run& r) {
  const int64_t n = 10007;
  const size_t sn = size_t(n);
  uint32_t seed = 2000;
  for (int decoupled = 0; decoupled < 2; ++decoupled)
    for (float wd : {0.0f, 1e-2f}) {
      Vec p = rnd(sn, ++seed), g = rnd(sn, ++seed);
      BF dp(r.be, p), dm(r.be, Vec(sn, 0.f)), dv(r.be, Vec(sn, 0.f)), dg(r.be, g);
      for (int64_t step = 1; step <= 3; ++step)
        OP(r, adam_update, dp.get(), dm.get(), dv.get(), dg.get(), n, 1e-3f, 0.9f, 0.999f, 1e-8f, wd, decoupled != 0,
           step);
      const std::string label = "decoupled" + std::to_string(decoupled) + " wd" + std::to_string(wd);
      r.out(label + " param", dp.host(), scaled(kEwTol, kEwTol));
      r.out(label + " m", dm.host(), scaled(kEwTol, kEwTol));
      r.out(label + " v", dv.host(), scaled(1e-9, kEwTol));
    }
}

// The RNG streams: with identity affine maps (exact with or without FMA) the
// streams must be bit-identical; with general parameters the affine map may be
// fused differently (1 ulp).
const uint64_t kRngSeed = 0x123456789abcdefull;
const uint64_t kRngOffsets[] = {0, 12345, (uint64_t(1) << 32) - 7};
constexpr int64_t kRngN = 100003;

void case_rand_uniform(Run& r) {
  for (uint64_t offset : kRngOffsets) {
    BF du(r.be, size_t(kRngN));
    OP(r, rand_uniform_forward, du.get(), kRngN, 0.f, 1.f, kRngSeed, offset);
    r.out("raw offset " + std::to_string(offset), du.host(), bitwise());
    OP(r, rand_uniform_forward, du.get(), kRngN, -0.3f, 0.7f, kRngSeed, offset);
    r.out("affine offset " + std::to_string(offset), du.host(), scaled(1e-7, 1e-6));
  }
}

void case_rand_normal(Run& r) {
  for (uint64_t offset : kRngOffsets) {
    BF dn(r.be, size_t(kRngN));
    OP(r, rand_normal_forward, dn.get(), kRngN, 0.f, 1.f, kRngSeed, offset);
    r.out("raw offset " + std::to_string(offset), dn.host(), bitwise());
    OP(r, rand_normal_forward, dn.get(), kRngN, 0.5f, 0.02f, kRngSeed, offset);
    r.out("affine offset " + std::to_string(offset), dn.host(), scaled(1e-7, 1e-6));
  }
}

void case_gaussian_noise(Run& r) {
  for (uint64_t offset : kRngOffsets) {
    BF dz(r.be, Vec(size_t(kRngN), 0.f)), dgn(r.be, size_t(kRngN)), dx(r.be, rnd(size_t(kRngN), 2100));
    OP(r, gaussian_noise_forward, dgn.get(), dz.get(), kRngN, 1.f, kRngSeed, offset);
    r.out("raw offset " + std::to_string(offset), dgn.host(), bitwise());
    OP(r, gaussian_noise_forward, dgn.get(), dx.get(), kRngN, 0.25f, kRngSeed, offset);
    r.out("affine offset " + std::to_string(offset), dgn.host(), scaled(1e-7, 1e-6));
  }
}

void case_topk(Run& r) {
  struct Case {
    int rows, D;
  };
  const Case cases[] = {{1, 1}, {3, 10}, {16, 257}, {5, 1000}};
  uint32_t seed = 2200;
  for (const Case& c : cases) {
    const size_t n = size_t(c.rows) * c.D;
    // Ties in magnitude (including +x / -x and zeros): the lower index wins.
    Vec x = ties(n, ++seed, 7);
    if (n > 3) x[1] = -0.0f;
    for (int k : {0, 1, 2, c.D / 2, c.D - 1, c.D, c.D + 5}) {
      BF dx(r.be, x), dout(r.be, n);
      const std::string label = dims({c.rows, c.D}) + " k" + std::to_string(k);
      OP(r, topk_forward, dout.get(), dx.get(), c.rows, c.D, k);
      r.out(label, dout.host(), bitwise());
      if (r.mirrors_cpu) {
        OP(r, topk_forward, dx.get(), dx.get(), c.rows, c.D, k);  // in place
        r.out(label + " in place", dx.host(), bitwise());
      }
    }
  }
}

void case_round(Run& r) {
  const int64_t n = 50001;
  Vec x = rnd(size_t(n), 2300, -100.f, 100.f);
  // Exact halves: must round away from zero like std::round.
  const float halves[] = {0.5f, -0.5f, 2.5f, -2.5f, 1.25f, -1.25f};
  std::copy(std::begin(halves), std::end(halves), x.begin());
  for (int d : {0, 1, 2, 4, -1}) {
    if (d < 0 && !r.mirrors_cpu) continue;  // outside lib/'s range (0..8): the CPU's pow(10, d)
    BF dx(r.be, x), dout(r.be, size_t(n));
    OP(r, round_forward, dout.get(), dx.get(), n, d);
    r.out("decimals " + std::to_string(d), dout.host(), bitwise());
  }
}

// ---- row ops (native/cpu/rows.cpp): copies, so bitwise on every backend;
// the gather backward adds in a fixed order (increasing i), so bitwise too.
struct GatherCase {
  int64_t n, m, d;
};
const GatherCase kGatherCases[] = {{1, 1, 1}, {7, 13, 5}, {3, 0, 4}, {100, 300, 129}, {2000, 64, 64}, {5, 4000, 33}};

IVec gather_indices(const GatherCase& c, uint32_t seed) {
  // Random rows with duplicates; some rows of inp are never picked (their
  // gradient must be exactly zero).
  Vec u = rnd(size_t(c.m), seed, 0.f, 1.f);
  IVec idx(size_t(c.m));
  const int64_t used = std::max<int64_t>(1, c.n * 3 / 4);
  for (int64_t i = 0; i < c.m; ++i) idx[size_t(i)] = static_cast<int32_t>(std::min<int64_t>(used - 1, int64_t(u[size_t(i)] * used)));
  if (c.m > 1) idx[size_t(c.m - 1)] = static_cast<int32_t>(c.n - 1);  // the last row
  return idx;
}

void case_gather_rows(Run& r) {
  uint32_t seed = 2400;
  for (const GatherCase& c : kGatherCases) {
    const IVec idx = gather_indices(c, ++seed);
    Vec x = rnd(size_t(c.n * c.d), ++seed), g = rnd(size_t(c.m * c.d), ++seed);
    BF dx(r.be, x), dg(r.be, g), dout(r.be, size_t(c.m * c.d)), ddx(r.be, Vec(size_t(c.n * c.d), kNaN));
    BI didx(r.be, idx);
    const std::string label = dims({c.n, c.m, c.d});
    OP(r, gather_rows_forward, dout.get(), dx.get(), didx.get(), c.m, c.d);
    r.out(label + " out", dout.host(), bitwise());
    // dinp holds NaN before: it must be fully overwritten (zeros where no index points).
    OP(r, gather_rows_backward, ddx.get(), dg.get(), didx.get(), c.n, c.m, c.d);
    r.out(label + " dx", ddx.host(), bitwise());
  }
}

void case_concat_rows(Run& r) {
  struct Case {
    std::vector<int64_t> rows;
    int64_t d;
  };
  const Case cases[] = {{{1}, 1}, {{3, 0, 5}, 7}, {{2, 2, 2, 2}, 33}, {{1000, 3, 2000}, 64}, {{0}, 4}};
  uint32_t seed = 2500;
  for (const Case& c : cases) {
    std::vector<std::unique_ptr<BF>> parts;
    std::vector<const float*> ptrs;
    int64_t total = 0;
    for (int64_t n : c.rows) {
      parts.emplace_back(new BF(r.be, rnd(size_t(n * c.d), ++seed)));
      ptrs.push_back(parts.back()->get());
      total += n;
    }
    BF dout(r.be, size_t(total * c.d));
    OP(r, concat_rows_forward, dout.get(), ptrs.data(), c.rows.data(), static_cast<int>(c.rows.size()), c.d);
    r.out(std::to_string(c.rows.size()) + " parts, " + dims({total, c.d}), dout.host(), bitwise());
    // A slice is one part at an offset (sliceRows): rows [1, total - 1).
    if (total >= 2) {
      const int64_t rows1 = total - 2;
      const float* from = dout.get() + c.d;
      BF dslice(r.be, size_t(rows1 * c.d));
      OP(r, concat_rows_forward, dslice.get(), &from, &rows1, 1, c.d);
      r.out("slice of " + dims({total, c.d}), dslice.host(), bitwise());
    }
  }
}

void case_scale_rows(Run& r) {
  uint32_t seed = 2600;
  for (const GatherCase& c : kGatherCases) {
    Vec x = rnd(size_t(c.n * c.d), ++seed), s = rnd(size_t(c.n), ++seed, -2.f, 2.f);
    if (c.n > 2) s[1] = 0.0f;
    BF dx(r.be, x), ds(r.be, s), dout(r.be, size_t(c.n * c.d));
    OP(r, scale_rows_forward, dout.get(), dx.get(), ds.get(), c.n, c.d);
    r.out(dims({c.n, c.d}), dout.host(), bitwise());
    if (r.mirrors_cpu) {
      OP(r, scale_rows_forward, dx.get(), dx.get(), ds.get(), c.n, c.d);  // in place
      r.out(dims({c.n, c.d}) + " in place", dx.host(), bitwise());
    }
  }
}

void case_lsh_codes(Run& r) {
  struct Case {
    int64_t n;
    int F, P;
  };
  const Case cases[] = {{1, 1, 1}, {3, 5, 12}, {100, 5, 12}, {7, 2, 16}, {2000, 64, 3}};
  uint32_t seed = 2700;
  for (const Case& c : cases) {
    Vec proj = rnd(size_t(c.n * c.F * c.P), ++seed);
    // Exact zeros of both signs set the bit (>= 0); NaN does not.
    if (proj.size() >= 4) {
      proj[0] = 0.0f;
      proj[1] = -0.0f;
      proj[2] = kNaN;
      proj[3] = -1e-30f;
    }
    BF dp(r.be, proj), dout(r.be, size_t(c.n * c.F));
    OP(r, lsh_codes_forward, dout.get(), dp.get(), c.n, c.F, c.P);
    r.out(dims({c.n, c.F, c.P}), dout.host(), bitwise());
  }
}

// ===================================================================== table
const std::vector<OpCase>& op_cases() {
  static const std::vector<OpCase> cases = {
      {"sgemm", {"sgemm"}, case_sgemm},
      {"conv2d_forward", {"conv2d_forward"}, case_conv2d_forward},
      {"conv2d_backward", {"conv2d_backward"}, case_conv2d_backward},
      {"batchnorm_forward", {"batchnorm2d_forward_train", "batchnorm2d_forward_eval"}, case_batchnorm_forward},
      {"batchnorm_backward", {"batchnorm2d_backward"}, case_batchnorm_backward},
      {"conv_bn_relu",
       {"conv_bn_relu_forward_train", "conv_bn_relu_forward_eval", "conv_bn_relu_backward"},
       case_conv_bn_relu},
      {"relu", {"relu_forward", "relu_backward"}, case_relu},
      {"maxpool2d", {"maxpool2d_forward", "maxpool2d_backward"}, case_maxpool2d},
      {"global_avgpool", {"global_avgpool_forward", "global_avgpool_backward"}, case_global_avgpool},
      {"linear", {"linear_forward", "linear_backward"}, case_linear},
      {"matmul", {"matmul_forward", "matmul_backward"}, case_matmul},
      {"add", {"add_forward"}, [](Run& r) { case_binary(r, "add"); }},
      {"sub", {"sub_forward"}, [](Run& r) { case_binary(r, "sub"); }},
      {"mul", {"mul_forward"}, [](Run& r) { case_binary(r, "mul"); }},
      {"mul_backward", {"mul_backward"}, case_mul_backward},
      {"scale", {"scale_forward"}, case_scale},
      {"fill", {"fill_forward"}, case_fill},
      {"axpy", {"axpy_forward"}, case_axpy},
      {"sum", {"sum_forward"}, case_sum},
      {"concat", {"concat_forward"}, case_concat},
      {"add_channel_bias", {"add_channel_bias_forward"}, case_add_channel_bias},
      {"l2normalize", {"l2normalize_forward", "l2normalize_backward"}, case_l2normalize},
      {"cosine_similarity", {"cosine_similarity_forward", "cosine_similarity_backward"}, case_cosine_similarity},
      {"cosine_loss", {"cosine_loss_forward"}, case_cosine_loss},
      {"ntxent", {"ntxent_forward"}, case_ntxent},
      {"crossentropy", {"crossentropy_forward"}, case_crossentropy},
      {"mse", {"mse_forward"}, case_mse},
      {"sgd", {"sgd_update"}, case_sgd},
      {"adam", {"adam_update"}, case_adam},
      {"rand_uniform", {"rand_uniform_forward"}, case_rand_uniform},
      {"rand_normal", {"rand_normal_forward"}, case_rand_normal},
      {"gaussian_noise", {"gaussian_noise_forward"}, case_gaussian_noise},
      {"topk", {"topk_forward"}, case_topk},
      {"round", {"round_forward"}, case_round},
      {"gather_rows", {"gather_rows_forward", "gather_rows_backward"}, case_gather_rows},
      {"concat_rows", {"concat_rows_forward"}, case_concat_rows},
      {"scale_rows", {"scale_rows_forward"}, case_scale_rows},
      {"lsh_codes", {"lsh_codes_forward"}, case_lsh_codes},
  };
  return cases;
}

// Ops of the list that the table does not run, and where they are tested
// instead. Only CPU-only ops belong here.
const std::vector<std::pair<std::string, std::string>> kTestedElsewhere = {
    {"images_to_tensor", "CPU only; fast vs naive in native/tests/test_cpu_augment.cpp"},
    {"augment_forward", "CPU only; fast vs naive in native/tests/test_cpu_augment.cpp"},
};

// The one loop: case c on the CPU (reference) and on backend `be`, every output compared.
void run_case(const OpCase& c, const Backend& be) {
  if (be.device && !cuda_unavailable().empty()) SKIP(cuda_unavailable());
  for (const std::string& op : c.ops)
    if (!has_op(*be.ops, op)) SKIP(std::string(be.name) + " has no " + op + " (native/ops.def)");
  const std::set<std::string> declared(c.ops.begin(), c.ops.end());
  Run ref(kCpu, be.mirrors_cpu, declared);
  c.body(ref);
  Run got(be, be.mirrors_cpu, declared);
  c.body(got);
  compare_outputs("backend_" + c.name + "[" + be.name + "]", got.outputs, ref.outputs);
}

// Registers backend_<case>[<backend>] for every case and every backend.
struct RegisterOpCases {
  RegisterOpCases() {
    static std::vector<std::string> names;  // the registry keeps const char*
    names.reserve(op_cases().size() * 2);
    for (const Backend* be : {&kNaive, &kCuda})
      for (const OpCase& c : op_cases()) {
        names.push_back("backend_" + c.name + "[" + be->name + "]");
        encsec_test::registry().push_back({names.back().c_str(), [&c, be] { run_case(c, *be); }});
      }
  }
} register_op_cases;

}  // namespace

// Every op of native/ops.def has a case (or is listed as tested elsewhere),
// and every case names only ops of the list.
ENCSEC_TEST(backend_table_covers_every_op) {
  const std::vector<std::string>& names = all_op_names();
  std::set<std::string> covered;
  for (const OpCase& c : op_cases())
    for (const std::string& op : c.ops) {
      if (std::find(names.begin(), names.end(), op) == names.end())
        encsec_test::record_failure(__FILE__, __LINE__, "case " + c.name + " names " + op + ", not in native/ops.def");
      covered.insert(op);
    }
  for (const auto& e : kTestedElsewhere) covered.insert(e.first);
  for (const std::string& op : names)
    if (!covered.count(op)) encsec_test::record_failure(__FILE__, __LINE__, "op " + op + " has no backend test case");
}

// ===================================================================== device
// Device management and the caching allocator (not ops of the list).
ENCSEC_TEST(backend_device_and_allocator) {
  if (!cuda_unavailable().empty()) SKIP(cuda_unavailable());
#ifdef ENCSEC_HAVE_CUDA
  char msg[256];
  CHECK(cuda_device_count(msg, sizeof msg) > 0);
  char name[256];
  size_t mem = 0;
  CHECK(cuda_device_info(0, name, sizeof name, &mem) == 0);
  CHECK(name[0] != '\0' && mem > 0);
  CHECK(cuda_error_string(0) != nullptr);

  // Round trips through the cache: the same size twice, different sizes, d2d copy.
  Vec a = rnd(1000, 1);
  for (int rep = 0; rep < 3; ++rep) {
    BF d(kCuda, a), e(kCuda, a.size());
    CHECK(cuda_memcpy_d2d(e.get(), d.get(), a.size() * sizeof(float)) == 0);
    const Vec eh = e.host();
    CHECK(std::memcmp(eh.data(), a.data(), a.size() * sizeof(float)) == 0);
  }
  BF big(kCuda, size_t(3) << 20);
  CHECK(cuda_fill_forward(big.get(), 2.5f, 3 << 20) == 0);
  Vec bh = big.host();
  CHECK(bh.front() == 2.5f && bh.back() == 2.5f);

  int fin = -1;
  BF ok(kCuda, a);
  CHECK(cuda_all_finite(ok.get(), static_cast<int64_t>(a.size()), &fin) == 0);
  CHECK(fin == 1);
  for (float bad : {kNaN, std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()}) {
    Vec b = a;
    b[777] = bad;
    BF db(kCuda, b);
    CHECK(cuda_all_finite(db.get(), static_cast<int64_t>(b.size()), &fin) == 0);
    CHECK(fin == 0);
  }
  CHECK(cuda_all_finite(ok.get(), 0, &fin) == 0);
  CHECK(fin == 1);
#endif
}
