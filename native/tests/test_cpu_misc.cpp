// Tests of the element-wise, normalisation, loss, optimiser and perturbation
// CPU kernels: fast vs naive on odd sizes, naive gradients vs double-precision
// finite differences of a double-precision forward written here, hand-computed
// values, and the properties the callers rely on (RNG reproducibility, exact
// top-k count, idempotent rounding, thread-count-independent sums).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <vector>

#include "cpu/gemm_internal.h"
#include "cpu/kernels.h"
#include "cpu/naive.h"
#include "harness.h"
#include "rng.h"
#include "threadpool.h"

using namespace encsec;
using encsec_test::random_vector;

namespace {

using Vec = std::vector<float>;
using DVec = std::vector<double>;

// Central differences in double; the step is small relative to |x| so the
// truncation error (h^2) and the cancellation error (1e-16 / h) both stay
// far below the float tolerance of the comparisons.
Vec fd_grad(const std::function<double(const DVec&)>& f, DVec x) {
  Vec g(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    double h = 1e-6 * std::max(1.0, std::fabs(x[i]));
    double xi = x[i];
    x[i] = xi + h;
    double fp = f(x);
    x[i] = xi - h;
    double fm = f(x);
    x[i] = xi;
    g[i] = static_cast<float>((fp - fm) / (2 * h));
  }
  return g;
}

DVec to_d(const Vec& v) { return DVec(v.begin(), v.end()); }

double max_abs(const Vec& v) {
  double m = 0;
  for (float x : v) m = std::max(m, static_cast<double>(std::fabs(x)));
  return m;
}

// Gradient comparison: absolute tolerance scaled to the gradient's magnitude.
#define CHECK_GRAD(a, b, n) CHECK_CLOSE((a), (b), (n), 1e-4 * std::max(1e-6, max_abs(Vec((b), (b) + (n)))), 1e-3)

double norm_d(const double* x, int D) {
  double s = 0;
  for (int i = 0; i < D; ++i) s += x[i] * x[i];
  return std::sqrt(s);
}

// NT-Xent in double, straight from the definition (the FD reference).
double ntxent_d(const DVec& z, int N, int D, double tau) {
  int R = 2 * N;
  DVec zn(z.size());
  for (int r = 0; r < R; ++r) {
    double n = std::max(norm_d(&z[static_cast<size_t>(r) * D], D), 1e-12);
    for (int k = 0; k < D; ++k) zn[static_cast<size_t>(r) * D + k] = z[static_cast<size_t>(r) * D + k] / n;
  }
  double total = 0;
  for (int r = 0; r < R; ++r) {
    DVec row;
    double spos = 0;
    for (int j = 0; j < R; ++j) {
      double d = 0;
      for (int k = 0; k < D; ++k) d += zn[static_cast<size_t>(r) * D + k] * zn[static_cast<size_t>(j) * D + k];
      d /= tau;
      if (j == (r < N ? r + N : r - N)) spos = d;
      if (j != r) row.push_back(d);
    }
    double m = *std::max_element(row.begin(), row.end());
    double s = 0;
    for (double v : row) s += std::exp(v - m);
    total += m + std::log(s) - spos;
  }
  return total / R;
}

// Runs fn with the kernels on one thread: from inside a pool task, a kernel's
// parallel_for sees a nested call and runs serially. (Used instead of
// set_num_threads, so the test does not resize the shared pool.)
template <typename F>
void run_single_threaded(F fn) {
  parallel_tasks(2, [&](int64_t task) {
    if (task == 0) fn();
  });
}

// Runs fast and naive ntxent and compares loss and both gradients.
void check_ntxent_vs_naive(int N, int D, float tau, uint32_t seed) {
  Vec s = random_vector(static_cast<size_t>(N) * D, seed), t = random_vector(static_cast<size_t>(N) * D, seed + 1);
  Vec ds(s.size()), dt(t.size()), ds0(s.size()), dt0(t.size());
  float loss = -1, loss0 = -2;
  ntxent_forward(&loss, ds.data(), dt.data(), s.data(), t.data(), N, D, tau);
  ntxent_forward_naive(&loss0, ds0.data(), dt0.data(), s.data(), t.data(), N, D, tau);
  CHECK_CLOSE(&loss, &loss0, 1, 1e-5, 1e-5);
  CHECK_GRAD(ds.data(), ds0.data(), ds.size());
  CHECK_GRAD(dt.data(), dt0.data(), dt.size());
  // Loss only, and one gradient at a time, give the same numbers.
  float loss2 = -1;
  ntxent_forward(&loss2, nullptr, nullptr, s.data(), t.data(), N, D, tau);
  CHECK(loss2 == loss);
  Vec ds2(s.size(), 7.0f);
  ntxent_forward(&loss2, ds2.data(), nullptr, s.data(), t.data(), N, D, tau);
  CHECK(std::memcmp(ds2.data(), ds.data(), ds.size() * sizeof(float)) == 0);
  Vec dt2(t.size(), 7.0f);
  ntxent_forward(&loss2, nullptr, dt2.data(), s.data(), t.data(), N, D, tau);
  CHECK(std::memcmp(dt2.data(), dt.data(), dt.size() * sizeof(float)) == 0);
}

}  // namespace

// ------------------------------------------------------------ elementwise

ENCSEC_TEST(misc_elementwise_ops) {
  for (int64_t n : {int64_t(1), int64_t(17), int64_t(1000), int64_t(100003)}) {
    Vec a = random_vector(n, 1), b = random_vector(n, 2), g = random_vector(n, 3), out(n), ref(n);
    add_forward(out.data(), a.data(), b.data(), n);
    for (int64_t i = 0; i < n; ++i) ref[i] = a[i] + b[i];
    CHECK(out == ref);
    sub_forward(out.data(), a.data(), b.data(), n);
    for (int64_t i = 0; i < n; ++i) ref[i] = a[i] - b[i];
    CHECK(out == ref);
    mul_forward(out.data(), a.data(), b.data(), n);
    mul_forward_naive(ref.data(), a.data(), b.data(), n);
    CHECK(out == ref);
    scale_forward(out.data(), a.data(), -2.5f, n);
    for (int64_t i = 0; i < n; ++i) ref[i] = -2.5f * a[i];
    CHECK(out == ref);
    fill_forward(out.data(), 3.25f, n);
    CHECK(std::all_of(out.begin(), out.end(), [](float v) { return v == 3.25f; }));
    // axpy in place (out aliases a).
    Vec acc = a;
    axpy_forward(acc.data(), acc.data(), 0.5f, b.data(), n);
    for (int64_t i = 0; i < n; ++i) ref[i] = a[i] + 0.5f * b[i];
    CHECK_CLOSE(acc.data(), ref.data(), n, 1e-7, 1e-6);
    Vec da(n), db(n), da0(n), db0(n);
    mul_backward(da.data(), db.data(), g.data(), a.data(), b.data(), n);
    mul_backward_naive(da0.data(), db0.data(), g.data(), a.data(), b.data(), n);
    CHECK(da == da0 && db == db0);
    Vec only(n, 9.0f);
    mul_backward(nullptr, only.data(), g.data(), a.data(), b.data(), n);
    CHECK(only == db0);
    mul_backward(only.data(), nullptr, g.data(), a.data(), b.data(), n);
    CHECK(only == da0);
  }
}

ENCSEC_TEST(misc_channel_bias_and_concat) {
  const int N = 3, C = 5, HW = 7 * 9;
  Vec x = random_vector(N * C * HW, 4), bias = random_vector(C, 5), out(x.size()), ref(x.size());
  add_channel_bias_forward(out.data(), x.data(), bias.data(), N, C, HW);
  add_channel_bias_forward_naive(ref.data(), x.data(), bias.data(), N, C, HW);
  CHECK(out == ref);
  for (int64_t na : {int64_t(0), int64_t(5), int64_t(300001)}) {
    int64_t nb = 200003;
    Vec a = random_vector(na, 6), b = random_vector(nb, 7), c(na + nb);
    concat_forward(c.data(), a.data(), na, b.data(), nb);
    CHECK(std::equal(a.begin(), a.end(), c.begin()));
    CHECK(std::equal(b.begin(), b.end(), c.begin() + na));
  }
}

ENCSEC_TEST(misc_sum_double_and_deterministic) {
  const int64_t n = 1000003;
  Vec x = random_vector(n, 8, -1.0f, 3.0f);
  double ref = 0;
  for (float v : x) ref += v;
  float s1 = 0, s2 = 0;
  run_single_threaded([&] { sum_forward(&s1, x.data(), n); });
  sum_forward(&s2, x.data(), n);
  CHECK(s1 == s2);  // fixed reduction blocks: any thread count
  float r = static_cast<float>(ref);
  CHECK_CLOSE(&s1, &r, 1, 1e-6, 1e-6);
  // Float accumulation of 1 + many tiny terms would lose them; double keeps them.
  Vec y(1 << 20, 1e-8f);
  y[0] = 1.0f;
  float sy = 0;
  sum_forward(&sy, y.data(), y.size());
  float ey = static_cast<float>(1.0 + 1e-8 * ((1 << 20) - 1));
  CHECK_CLOSE(&sy, &ey, 1, 0, 1e-6);
  float empty = 5;
  sum_forward(&empty, x.data(), 0);
  CHECK(empty == 0.0f);
}

ENCSEC_TEST(misc_all_finite) {
  Vec x = random_vector(300007, 9);
  CHECK(all_finite(x.data(), x.size()));
  CHECK(all_finite(x.data(), 0));
  for (size_t where : {size_t(0), size_t(12345), size_t(300006)}) {
    for (float bad : {std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                      std::numeric_limits<float>::quiet_NaN()}) {
      Vec y = x;
      y[where] = bad;
      CHECK(!all_finite(y.data(), y.size()));
    }
  }
  Vec big = {3.4e38f, -3.4e38f, 1e-45f, 0.0f, -0.0f};
  CHECK(all_finite(big.data(), big.size()));
}

// -------------------------------------------------------------- normalize

ENCSEC_TEST(misc_l2normalize_vs_naive_and_fd) {
  const int rows = 7, D = 13;
  const float eps = 1e-12f;
  Vec x = random_vector(rows * D, 10);
  for (int k = 0; k < D; ++k) x[3 * D + k] = 0.0f;  // a zero row takes the eps branch
  Vec y(x.size()), y0(x.size()), nr(rows), nr0(rows);
  l2normalize_forward(y.data(), nr.data(), x.data(), rows, D, eps);
  l2normalize_forward_naive(y0.data(), nr0.data(), x.data(), rows, D, eps);
  CHECK_CLOSE(y.data(), y0.data(), y.size(), 1e-6, 1e-5);
  CHECK_CLOSE(nr.data(), nr0.data(), rows, 1e-6, 1e-5);
  Vec W = random_vector(x.size(), 11);
  Vec dx(x.size()), dx0(x.size());
  l2normalize_backward(dx.data(), W.data(), x.data(), nr.data(), rows, D, eps);
  l2normalize_backward_naive(dx0.data(), W.data(), x.data(), nr0.data(), rows, D, eps);
  // The zero row's gradient is W / eps (huge); compare the others closely and
  // that row exactly by its formula.
  Vec wz(D);
  for (int k = 0; k < D; ++k) wz[k] = W[3 * D + k] / eps;
  CHECK_CLOSE(dx.data() + 3 * D, wz.data(), D, 0, 1e-6);
  for (int k = 0; k < D; ++k) dx[3 * D + k] = dx0[3 * D + k] = 0;
  CHECK_GRAD(dx.data(), dx0.data(), dx.size());
  // FD on the rows with a norm (objective: sum W * normalize(x)).
  auto f = [&](const DVec& v) {
    double tot = 0;
    for (int r = 0; r < rows; ++r) {
      if (r == 3) continue;
      double n = std::max(norm_d(&v[static_cast<size_t>(r) * D], D), 1e-12);
      for (int k = 0; k < D; ++k) tot += W[r * D + k] * v[static_cast<size_t>(r) * D + k] / n;
    }
    return tot;
  };
  Vec fd = fd_grad(f, to_d(x));
  CHECK_GRAD(dx0.data(), fd.data(), fd.size());
}

// ----------------------------------------------------------------- cosine

ENCSEC_TEST(misc_cosine_similarity_vs_naive_and_fd) {
  const int n = 5, m = 9, D = 19;
  const float eps = 1e-8f;
  Vec a = random_vector(n * D, 12), b = random_vector(m * D, 13), dout = random_vector(n * m, 14);
  for (int k = 0; k < D; ++k) b[4 * D + k] = 0.0f;  // eps branch for one b row
  Vec out(n * m), out0(n * m);
  cosine_similarity_forward(out.data(), a.data(), b.data(), n, m, D, eps);
  cosine_similarity_forward_naive(out0.data(), a.data(), b.data(), n, m, D, eps);
  CHECK_CLOSE(out.data(), out0.data(), out.size(), 1e-6, 1e-5);
  Vec da(a.size()), db(b.size()), da0(a.size()), db0(b.size());
  cosine_similarity_backward(da.data(), db.data(), dout.data(), a.data(), b.data(), n, m, D, eps);
  cosine_similarity_backward_naive(da0.data(), db0.data(), dout.data(), a.data(), b.data(), n, m, D, eps);
  CHECK_GRAD(da.data(), da0.data(), da.size());
  // db of the zero row is dout^T a / (|a| eps): ~1e8; compare relatively.
  CHECK_CLOSE(db.data(), db0.data(), db.size(), 1e-4 * max_abs(Vec(db0.begin(), db0.begin() + 4 * D)), 1e-4);
  Vec da1(a.size(), 5.0f);
  cosine_similarity_backward(da1.data(), nullptr, dout.data(), a.data(), b.data(), n, m, D, eps);
  CHECK(da1 == da);
  // FD of sum(dout * cos(a, b)) w.r.t. a and the non-zero rows of b.
  auto f = [&](const DVec& v) {
    const double* av = v.data();
    const double* bv = v.data() + n * D;
    double tot = 0;
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < m; ++j) {
        double d = 0;
        for (int k = 0; k < D; ++k) d += av[i * D + k] * bv[j * D + k];
        double A = std::max(norm_d(av + i * D, D), 1e-8), B = std::max(norm_d(bv + j * D, D), 1e-8);
        tot += dout[i * m + j] * d / (A * B);
      }
    return tot;
  };
  DVec ab = to_d(a);
  ab.insert(ab.end(), b.begin(), b.end());
  Vec fd = fd_grad(f, ab);
  CHECK_GRAD(da0.data(), fd.data(), a.size());
  CHECK_GRAD(db0.data(), fd.data() + a.size(), 4 * D);  // rows 0..3 of b
}

ENCSEC_TEST(misc_cosine_loss_vs_naive_and_fd) {
  const int rows = 11, D = 21;
  const float eps = 1e-8f;
  Vec a = random_vector(rows * D, 15), b = random_vector(rows * D, 16);
  float loss = 0, loss0 = 0;
  Vec da(a.size()), db(b.size()), da0(a.size()), db0(b.size());
  cosine_loss_forward(&loss, da.data(), db.data(), a.data(), b.data(), rows, D, eps);
  cosine_loss_forward_naive(&loss0, da0.data(), db0.data(), a.data(), b.data(), rows, D, eps);
  CHECK_CLOSE(&loss, &loss0, 1, 1e-6, 1e-5);
  CHECK_GRAD(da.data(), da0.data(), da.size());
  CHECK_GRAD(db.data(), db0.data(), db.size());
  auto f = [&](const DVec& v) {
    const double* av = v.data();
    const double* bv = v.data() + rows * D;
    double tot = 0;
    for (int r = 0; r < rows; ++r) {
      double d = 0;
      for (int k = 0; k < D; ++k) d += av[r * D + k] * bv[r * D + k];
      tot += 1 - d / (std::max(norm_d(av + r * D, D), 1e-8) * std::max(norm_d(bv + r * D, D), 1e-8));
    }
    return tot / rows;
  };
  DVec ab = to_d(a);
  ab.insert(ab.end(), b.begin(), b.end());
  Vec fd = fd_grad(f, ab);
  CHECK_GRAD(da0.data(), fd.data(), a.size());
  CHECK_GRAD(db0.data(), fd.data() + a.size(), b.size());
  double fv = f(ab);
  float fvf = static_cast<float>(fv);
  CHECK_CLOSE(&loss0, &fvf, 1, 1e-6, 1e-6);
  // Identical rows: loss 0.
  cosine_loss_forward(&loss, nullptr, nullptr, a.data(), a.data(), rows, D, eps);
  CHECK(std::fabs(loss) < 1e-6f);
}

// ----------------------------------------------------------------- ntxent

ENCSEC_TEST(misc_ntxent_hand_computed) {
  // N = 2, D = 2, tau = 0.5. s = [(3,4), (1,0)], t = [(0,2), (-1,0)] normalise to
  // a = (.6,.8), b = (1,0), c = (0,1), d = (-1,0); S = <.,.>/tau:
  //   ab = 1.2, ac = 1.6, ad = -1.2, bc = 0, bd = -2, cd = 0.
  // Positives: a-c, b-d. Row terms, lse over the three non-self entries:
  //   a: lse(1.2, 1.6, -1.2) - 1.6 = 0.548774437
  //   b: lse(1.2, 0, -2) + 2      = 3.494128561
  //   c: lse(1.6, 0, 0) - 1.6     = 0.339177884
  //   d: lse(-1.2, -2, 0) + 2     = 2.362230132
  // loss = mean = 1.686077754 (evaluated with a calculator, math.log/math.exp).
  Vec s = {3, 4, 1, 0}, t = {0, 2, -1, 0};
  float loss = 0, loss0 = 0, expect = 1.686077754f;
  Vec ds(4), dt(4), ds0(4), dt0(4);
  ntxent_forward(&loss, ds.data(), dt.data(), s.data(), t.data(), 2, 2, 0.5f);
  ntxent_forward_naive(&loss0, ds0.data(), dt0.data(), s.data(), t.data(), 2, 2, 0.5f);
  CHECK_CLOSE(&loss, &expect, 1, 1e-6, 1e-6);
  CHECK_CLOSE(&loss0, &expect, 1, 1e-7, 1e-7);
  CHECK_GRAD(ds.data(), ds0.data(), 4);
  CHECK_GRAD(dt.data(), dt0.data(), 4);
}

ENCSEC_TEST(misc_ntxent_naive_fd) {
  for (auto cfg : {std::make_tuple(1, 3, 0.5f), std::make_tuple(2, 2, 0.5f), std::make_tuple(3, 5, 0.1f),
                   std::make_tuple(4, 7, 1.0f), std::make_tuple(3, 4, 10.0f)}) {
    int N = std::get<0>(cfg), D = std::get<1>(cfg);
    float tau = std::get<2>(cfg);
    Vec s = random_vector(N * D, 17 + N), t = random_vector(N * D, 18 + D);
    float loss0 = 0;
    Vec ds0(s.size()), dt0(t.size());
    ntxent_forward_naive(&loss0, ds0.data(), dt0.data(), s.data(), t.data(), N, D, tau);
    DVec z = to_d(s);
    z.insert(z.end(), t.begin(), t.end());
    auto f = [&](const DVec& v) { return ntxent_d(v, N, D, tau); };
    float ref = static_cast<float>(f(z));
    CHECK_CLOSE(&loss0, &ref, 1, 1e-6, 1e-6);
    Vec fd = fd_grad(f, z);
    Vec g = ds0;
    g.insert(g.end(), dt0.begin(), dt0.end());
    CHECK_CLOSE(g.data(), fd.data(), g.size(), 1e-5 * std::max(1.0, max_abs(fd)), 1e-3);
  }
}

ENCSEC_TEST(misc_ntxent_vs_naive) {
  // Odd sizes: below, at and across the 32-row tiles and the 128-row blocks.
  check_ntxent_vs_naive(1, 1, 0.5f, 20);
  check_ntxent_vs_naive(1, 5, 0.2f, 21);
  check_ntxent_vs_naive(3, 7, 0.07f, 22);
  check_ntxent_vs_naive(16, 33, 1.0f, 23);
  check_ntxent_vs_naive(17, 16, 0.5f, 24);
  check_ntxent_vs_naive(70, 19, 0.1f, 25);
  check_ntxent_vs_naive(65, 130, 10.0f, 26);
  check_ntxent_vs_naive(100, 3, 0.05f, 27);
}

ENCSEC_TEST(misc_ntxent_edge_cases) {
  // N = 1: each row's only non-self entry is its positive: loss 0, gradient 0.
  {
    Vec s = {1, 2, 3}, t = {-3, 0.5f, 2};
    float loss = 1;
    Vec ds(3, 1), dt(3, 1);
    ntxent_forward(&loss, ds.data(), dt.data(), s.data(), t.data(), 1, 3, 0.3f);
    CHECK(std::fabs(loss) < 1e-6f);
    CHECK(max_abs(ds) < 1e-6 && max_abs(dt) < 1e-6);
  }
  // Tiny tau (|S| up to 1/tau = 1000): finite and equal to the naive double result.
  {
    const int N = 9, D = 6;
    Vec s = random_vector(N * D, 30), t = random_vector(N * D, 31);
    float loss = 0, loss0 = 0;
    Vec ds(s.size()), dt(t.size()), ds0(s.size()), dt0(t.size());
    ntxent_forward(&loss, ds.data(), dt.data(), s.data(), t.data(), N, D, 0.001f);
    ntxent_forward_naive(&loss0, ds0.data(), dt0.data(), s.data(), t.data(), N, D, 0.001f);
    CHECK(std::isfinite(loss) && all_finite(ds.data(), ds.size()) && all_finite(dt.data(), dt.size()));
    CHECK_CLOSE(&loss, &loss0, 1, 1e-3, 1e-4);
    CHECK_GRAD(ds.data(), ds0.data(), ds.size());
    CHECK_GRAD(dt.data(), dt0.data(), dt.size());
  }
  // A zero row (norm below eps): zn = 0 there; still matches the naive twin.
  {
    const int N = 4, D = 5;
    Vec s = random_vector(N * D, 32), t = random_vector(N * D, 33);
    for (int k = 0; k < D; ++k) t[2 * D + k] = 0;
    float loss = 0, loss0 = 0;
    Vec ds(s.size()), dt(t.size()), ds0(s.size()), dt0(t.size());
    ntxent_forward(&loss, ds.data(), dt.data(), s.data(), t.data(), N, D, 0.5f);
    ntxent_forward_naive(&loss0, ds0.data(), dt0.data(), s.data(), t.data(), N, D, 0.5f);
    CHECK_CLOSE(&loss, &loss0, 1, 1e-5, 1e-5);
    CHECK_CLOSE(ds.data(), ds0.data(), ds.size(), 1e-4 * max_abs(ds0), 1e-3);
    CHECK_CLOSE(dt.data(), dt0.data(), dt.size(), 1e-4 * max_abs(dt0), 1e-3);
  }
  // Same result for any thread count (no reduction order depends on it).
  {
    // Big enough to split over the pool (R^2 (D + 16) >= 2^21), R not a multiple of 8.
    const int N = 101, D = 67;
    Vec s = random_vector(N * D, 34), t = random_vector(N * D, 35);
    float l1 = 0, l2 = 0;
    Vec ds1(s.size()), ds2(s.size()), dt1(t.size()), dt2(t.size());
    run_single_threaded([&] { ntxent_forward(&l1, ds1.data(), dt1.data(), s.data(), t.data(), N, D, 0.2f); });
    ntxent_forward(&l2, ds2.data(), dt2.data(), s.data(), t.data(), N, D, 0.2f);
    CHECK(l1 == l2);
    CHECK(ds1 == ds2 && dt1 == dt2);
    // And it is the right answer.
    float l0 = 0;
    Vec ds0(s.size()), dt0(t.size());
    ntxent_forward_naive(&l0, ds0.data(), dt0.data(), s.data(), t.data(), N, D, 0.2f);
    CHECK_CLOSE(&l2, &l0, 1, 1e-5, 1e-5);
    CHECK_GRAD(ds2.data(), ds0.data(), ds2.size());
    CHECK_GRAD(dt2.data(), dt0.data(), dt2.size());
  }
}

// ------------------------------------------------------- crossentropy / mse

ENCSEC_TEST(misc_crossentropy_vs_naive_and_fd) {
  const int B = 7, C = 11;
  Vec logits = random_vector(B * C, 40, -3.0f, 3.0f);
  std::vector<int32_t> labels = {0, 10, 3, 3, 5, 9, 1};
  float loss = 0, loss0 = 0;
  Vec g(logits.size()), g0(logits.size());
  crossentropy_forward(&loss, g.data(), logits.data(), labels.data(), B, C);
  crossentropy_forward_naive(&loss0, g0.data(), logits.data(), labels.data(), B, C);
  CHECK_CLOSE(&loss, &loss0, 1, 1e-6, 1e-6);
  CHECK_GRAD(g.data(), g0.data(), g.size());
  auto f = [&](const DVec& v) {
    double tot = 0;
    for (int b = 0; b < B; ++b) {
      double m = *std::max_element(v.begin() + b * C, v.begin() + (b + 1) * C), s = 0;
      for (int j = 0; j < C; ++j) s += std::exp(v[b * C + j] - m);
      tot += m + std::log(s) - v[b * C + labels[b]];
    }
    return tot / B;
  };
  Vec fd = fd_grad(f, to_d(logits));
  CHECK_GRAD(g0.data(), fd.data(), fd.size());
  // Huge logits: log-softmax with max subtraction stays finite and exact.
  Vec big = {1e4f, 0.0f, -1e4f, 3e4f, 3e4f, 3e4f};
  std::vector<int32_t> lb = {1, 2};
  Vec gb(6);
  crossentropy_forward(&loss, gb.data(), big.data(), lb.data(), 2, 3);
  // Row 0: lse = 1e4, loss 1e4; row 1: lse = 3e4 + log 3, loss log 3. Mean:
  float eb = static_cast<float>((1e4 + std::log(3.0)) / 2);
  CHECK_CLOSE(&loss, &eb, 1, 1e-3, 1e-6);
  float egb[6] = {0.5f, -0.5f, 0.0f, 1.0f / 6, 1.0f / 6, -1.0f / 3};
  CHECK_CLOSE(gb.data(), egb, 6, 1e-6, 1e-5);
}

ENCSEC_TEST(misc_mse_vs_naive_and_fd) {
  for (int64_t n : {int64_t(1), int64_t(37), int64_t(100001)}) {
    Vec a = random_vector(n, 41), b = random_vector(n, 42);
    float loss = 0, loss0 = 0;
    Vec da(n), db(n), da0(n), db0(n);
    mse_forward(&loss, da.data(), db.data(), a.data(), b.data(), n);
    mse_forward_naive(&loss0, da0.data(), db0.data(), a.data(), b.data(), n);
    CHECK_CLOSE(&loss, &loss0, 1, 1e-7, 1e-6);
    CHECK_GRAD(da.data(), da0.data(), n);
    CHECK_GRAD(db.data(), db0.data(), n);
    Vec only(n, 3.0f);
    mse_forward(&loss, nullptr, only.data(), a.data(), b.data(), n);
    CHECK(only == db);
    if (n == 37) {
      auto f = [&](const DVec& v) {
        double tot = 0;
        for (int64_t i = 0; i < n; ++i) tot += (v[i] - v[n + i]) * (v[i] - v[n + i]);
        return tot / n;
      };
      DVec ab = to_d(a);
      ab.insert(ab.end(), b.begin(), b.end());
      Vec fd = fd_grad(f, ab);
      CHECK_GRAD(da0.data(), fd.data(), n);
      CHECK_GRAD(db0.data(), fd.data() + n, n);
    }
  }
}

// ------------------------------------------------------------------ optim

ENCSEC_TEST(misc_sgd_hand_computed) {
  // param 1, grad 0.5 twice, lr 0.1, momentum 0.9, wd 0.01. By hand:
  //   step 1: g = 0.5 + 0.01*1 = 0.51, buf = 0.51, p = 1 - 0.051 = 0.949
  //   step 2: g = 0.5 + 0.00949 = 0.50949, buf = 0.459 + 0.50949 = 0.96849, p = 0.852151
  // Nesterov: step 1: p = 1 - 0.1*(0.51 + 0.9*0.51) = 0.9031
  //           step 2: g = 0.509031, buf = 0.968031, p = 0.9031 - 0.1*(0.509031 + 0.8712279) = 0.76507411
  for (bool nest : {false, true}) {
    float p = 1, buf = 123, g = 0.5f;
    sgd_update(&p, &buf, &g, 1, 0.1f, 0.9f, 0.01f, nest, true);
    float e1 = nest ? 0.9031f : 0.949f;
    CHECK_CLOSE(&p, &e1, 1, 0, 1e-6);
    sgd_update(&p, &buf, &g, 1, 0.1f, 0.9f, 0.01f, nest, false);
    float e2 = nest ? 0.76507411f : 0.852151f;
    CHECK_CLOSE(&p, &e2, 1, 0, 1e-6);
  }
  // No momentum buffer: plain SGD.
  float p = 2, g = -1;
  sgd_update(&p, nullptr, &g, 1, 0.5f, 0.0f, 0.0f, false, true);
  CHECK(p == 2.5f);
}

ENCSEC_TEST(misc_adam_hand_computed) {
  // param 1, grads 0.5, -1, 0.25 at steps 1..3; lr 0.01, betas (0.9, 0.999),
  // eps 1e-8. Expected values from the update rule evaluated in double
  // (Python floats), e.g. step 1: m = 0.05, v = 0.00025,
  // denom = sqrt(0.00025)/sqrt(0.001) + 1e-8 = 0.50000001,
  // p = 1 - (0.01/0.1) * 0.05 / 0.50000001 = 0.9900000002.
  struct Case {
    float wd;
    bool decoupled;
    double p[3];
  };
  const Case cases[] = {
      {0.0f, false, {0.9900000002, 0.9936610354240566, 0.9950279420338977}},
      {0.1f, false, {0.9900000001666667, 0.9924819887658624, 0.9923451627289993}},   // Adam, L2
      {0.1f, true, {0.9890000002, 0.9916720354238566, 0.9920472699982739}},          // AdamW
  };
  const float grads[3] = {0.5f, -1.0f, 0.25f};
  for (const Case& c : cases) {
    float p = 1, m = 0, v = 0;
    for (int step = 1; step <= 3; ++step) {
      adam_update(&p, &m, &v, &grads[step - 1], 1, 0.01f, 0.9f, 0.999f, 1e-8f, c.wd, c.decoupled, step);
      float e = static_cast<float>(c.p[step - 1]);
      CHECK_CLOSE(&p, &e, 1, 0, 2e-7);
    }
  }
}

ENCSEC_TEST(misc_optim_vs_naive) {
  const int64_t n = 70001;
  Vec g = random_vector(n, 50);
  for (int variant = 0; variant < 4; ++variant) {
    Vec p = random_vector(n, 51), buf(n), p0 = p, buf0(n);
    for (int step = 0; step < 3; ++step) {
      sgd_update(p.data(), buf.data(), g.data(), n, 0.05f, 0.9f, variant & 1 ? 1e-3f : 0.0f, variant & 2, step == 0);
      sgd_update_naive(p0.data(), buf0.data(), g.data(), n, 0.05f, 0.9f, variant & 1 ? 1e-3f : 0.0f, variant & 2,
                       step == 0);
    }
    CHECK_CLOSE(p.data(), p0.data(), n, 1e-7, 1e-6);
    CHECK_CLOSE(buf.data(), buf0.data(), n, 1e-7, 1e-6);
  }
  for (int variant = 0; variant < 3; ++variant) {
    Vec p = random_vector(n, 52), m(n), v(n), p0 = p, m0(n), v0(n);
    float wd = variant ? 0.05f : 0.0f;
    bool dec = variant == 2;
    for (int step = 1; step <= 3; ++step) {
      adam_update(p.data(), m.data(), v.data(), g.data(), n, 1e-3f, 0.9f, 0.999f, 1e-8f, wd, dec, step);
      adam_update_naive(p0.data(), m0.data(), v0.data(), g.data(), n, 1e-3f, 0.9f, 0.999f, 1e-8f, wd, dec, step);
    }
    CHECK_CLOSE(p.data(), p0.data(), n, 1e-7, 1e-6);
    CHECK_CLOSE(m.data(), m0.data(), n, 1e-8, 1e-5);
    CHECK_CLOSE(v.data(), v0.data(), n, 1e-10, 1e-5);
  }
}

// ---------------------------------------------------------------- perturb

ENCSEC_TEST(misc_rng_reproducible_and_offsets) {
  const int64_t n = 100003;
  Vec x = random_vector(n, 60), a(n), b(n), c(n), ref(n);
  gaussian_noise_forward(a.data(), x.data(), n, 0.3f, 42, 1000);
  gaussian_noise_forward(b.data(), x.data(), n, 0.3f, 42, 1000);
  CHECK(a == b);  // same seed + offset: identical
  gaussian_noise_forward_naive(ref.data(), x.data(), n, 0.3f, 42, 1000);
  CHECK(a == ref);
  // Element i uses counter offset + i: shifting the offset shifts the stream.
  Vec zero(n, 0.0f);
  gaussian_noise_forward(b.data(), zero.data(), n, 1.0f, 42, 1000);
  gaussian_noise_forward(c.data(), zero.data(), n - 7, 1.0f, 42, 1007);
  CHECK(std::equal(c.begin(), c.begin() + (n - 7), b.begin() + 7));
  CHECK(b[5] == rng_normal(42, 1000, 5));
  // A different seed gives different numbers.
  gaussian_noise_forward(c.data(), zero.data(), n, 1.0f, 43, 1000);
  int same = 0;
  for (int64_t i = 0; i < n; ++i) same += b[i] == c[i];
  CHECK(same < 10);
  // Same numbers for any thread count.
  run_single_threaded([&] { rand_uniform_forward(a.data(), n, -2, 3, 7, 0); });
  rand_uniform_forward(b.data(), n, -2, 3, 7, 0);
  CHECK(a == b);
  CHECK(a[11] == -2 + 5 * rng_uniform(7, 0, 11));
}

ENCSEC_TEST(misc_rng_statistics) {
  const int64_t n = 1000000;
  Vec z(n), u(n);
  rand_normal_forward(z.data(), n, 0.0f, 1.0f, 1234, 0);
  double m = 0, m2 = 0;
  for (float v : z) m += v;
  m /= n;
  for (float v : z) m2 += (v - m) * (v - m);
  m2 /= n;
  // Standard errors: mean 1e-3, variance ~1.4e-3; tolerances are ~5 sigma.
  CHECK(std::fabs(m) < 5e-3);
  CHECK(std::fabs(m2 - 1.0) < 7e-3);
  rand_normal_forward(z.data(), n, 2.0f, 0.5f, 99, 5);
  m = 0;
  for (float v : z) m += v;
  m /= n;
  CHECK(std::fabs(m - 2.0) < 3e-3);
  rand_uniform_forward(u.data(), n, -1.0f, 3.0f, 77, 0);
  float lo = *std::min_element(u.begin(), u.end()), hi = *std::max_element(u.begin(), u.end());
  CHECK(lo >= -1.0f && hi < 3.0f && lo < -0.99f && hi > 2.99f);
  m = 0;
  for (float v : u) m += v;
  m /= n;
  CHECK(std::fabs(m - 1.0) < 6e-3);  // sd of the mean: 4/sqrt(12e6) = 1.2e-3
  // Gaussian noise with sigma: out - inp has std sigma.
  Vec x(n, 1.0f), y(n);
  gaussian_noise_forward(y.data(), x.data(), n, 0.25f, 5, 0);
  m2 = 0;
  for (int64_t i = 0; i < n; ++i) m2 += (y[i] - 1.0) * (y[i] - 1.0);
  CHECK(std::fabs(std::sqrt(m2 / n) - 0.25) < 2e-3);
}

ENCSEC_TEST(misc_topk) {
  // Ties: |-2| == |2| == 2 at indices 1, 3, 4; k = 2 keeps the 5 and the 2 of lowest index.
  {
    Vec x = {0.5f, -2.0f, 1.0f, 2.0f, -2.0f, 5.0f}, y(6);
    topk_forward(y.data(), x.data(), 1, 6, 2);
    Vec e = {0, -2.0f, 0, 0, 0, 5.0f};
    CHECK(y == e);
    topk_forward(y.data(), x.data(), 1, 6, 3);
    e = {0, -2.0f, 0, 2.0f, 0, 5.0f};
    CHECK(y == e);
    topk_forward(y.data(), x.data(), 1, 6, 4);
    e = {0, -2.0f, 0, 2.0f, -2.0f, 5.0f};
    CHECK(y == e);
    topk_forward(y.data(), x.data(), 1, 6, 5);
    e = {0, -2.0f, 1.0f, 2.0f, -2.0f, 5.0f};
    CHECK(y == e);
    topk_forward(y.data(), x.data(), 1, 6, 0);
    CHECK(max_abs(y) == 0);
    topk_forward(y.data(), x.data(), 1, 6, 6);
    CHECK(y == x);
    topk_forward(y.data(), x.data(), 1, 6, 100);
    CHECK(y == x);
  }
  // All equal: exactly the first k kept.
  {
    Vec x(10, -1.0f), y(10);
    topk_forward(y.data(), x.data(), 1, 10, 4);
    for (int j = 0; j < 10; ++j) CHECK(y[j] == (j < 4 ? -1.0f : 0.0f));
  }
  // Random rows with many duplicate magnitudes, vs naive; exact count; in place.
  for (int D : {1, 7, 64, 300, 2048}) {
    const int rows = 5;
    Vec x = random_vector(rows * D, 70 + D, -4, 4);
    for (float& v : x) v = std::round(v * 2) / 2;  // values in {-4, -3.5, ..., 4}: heavy ties
    for (int k : {1, 3, D / 2, D - 1}) {
      if (k < 1) continue;
      Vec y(x.size()), y0(x.size());
      topk_forward(y.data(), x.data(), rows, D, k);
      topk_forward_naive(y0.data(), x.data(), rows, D, k);
      CHECK(y == y0);
      Vec inplace = x;
      topk_forward(inplace.data(), inplace.data(), rows, D, k);
      CHECK(inplace == y);
      // Count kept positions (the kept value may itself be 0, so count by index via naive rank).
      for (int r = 0; r < rows; ++r) {
        int kept_nonzero = 0, nonzero_in = 0;
        for (int j = 0; j < D; ++j) {
          kept_nonzero += y[r * D + j] != 0;
          nonzero_in += x[r * D + j] != 0;
        }
        CHECK(kept_nonzero == std::min(k, nonzero_in));
      }
    }
  }
}

ENCSEC_TEST(misc_round) {
  // Halves away from zero, on exactly representable halves.
  Vec x = {2.5f, -2.5f, 0.125f, -0.125f, 1.0f, 123456.789f, 0.0f, -0.0f}, y(8);
  round_forward(y.data(), x.data(), 8, 0);
  CHECK(y[0] == 3.0f && y[1] == -3.0f && y[2] == 0.0f && y[4] == 1.0f && y[5] == 123457.0f);
  round_forward(y.data(), x.data(), 8, 2);
  CHECK(y[2] == 0.13f && y[3] == -0.13f && y[0] == 2.5f && y[5] == 123456.79f);
  // Idempotent and equal to the naive twin over magnitudes 1e-6 .. 1e8 and every d in [0, 8].
  const int64_t n = 200000;
  Vec v = random_vector(n, 80, -1, 1);
  Vec mag = random_vector(n, 81, -6, 8);
  for (int64_t i = 0; i < n; ++i) v[i] *= std::pow(10.0f, mag[i]);
  for (int d = 0; d <= 8; ++d) {
    Vec r1(n), r2(n), r0(n);
    round_forward(r1.data(), v.data(), n, d);
    round_forward(r2.data(), r1.data(), n, d);
    round_forward_naive(r0.data(), v.data(), n, d);
    CHECK(std::memcmp(r1.data(), r2.data(), n * sizeof(float)) == 0);
    CHECK(r1 == r0);
    // Within half a unit of the last decimal (plus float rounding of the result).
    double half = 0.5 / std::pow(10.0, d);
    bool ok = true;
    for (int64_t i = 0; i < n; ++i)
      ok &= std::fabs(static_cast<double>(r1[i]) - v[i]) <= half + 1e-7 * std::fabs(v[i]);
    CHECK(ok);
  }
}

// gemm::transpose_copy (packing of A/B panels, NHWC copies in the conv
// weight gradient): exact values against the index rule, and nothing written
// outside [dst, dst + cols * ldd) nor into the gaps past `rows` when ldd >
// rows. Covers the AVX2 path for fewer than 8 rows into a contiguous
// destination (its full-vector stores spill into later columns' slots).
ENCSEC_TEST(misc_transpose_copy_exact_and_in_bounds) {
  const float guard = -12345.0f;
  for (int rows = 1; rows <= 13; ++rows)
    for (int cols : {1, 2, 7, 8, 9, 15, 16, 17, 31}) {
      for (int extra : {0, 1, 3}) {
        const int64_t lds = cols + 2, ldd = rows + extra;
        Vec src = random_vector((int64_t)rows * lds, 4000 + rows * 37 + cols);
        const int64_t margin = 16;
        Vec buf((size_t)(cols * ldd + 2 * margin), guard);
        float* dst = buf.data() + margin;
        encsec::gemm::transpose_copy(dst, ldd, src.data(), lds, rows, cols);
        bool ok = true;
        for (int64_t i = 0; i < (int64_t)buf.size(); ++i) {
          const int64_t o = i - margin;
          const bool inside = o >= 0 && o < cols * ldd && o % ldd < rows;
          const float want = inside ? src[(o % ldd) * lds + o / ldd] : guard;
          if (buf[i] != want) ok = false;
        }
        if (!ok) std::printf("  transpose_copy rows %d cols %d ldd %lld: wrong\n", rows, cols, (long long)ldd);
        CHECK(ok);
      }
    }
}
