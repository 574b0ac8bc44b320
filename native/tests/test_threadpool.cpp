// The thread pool: every index visited once, nesting runs serially, and
// changing the thread count between runs is safe (a regression: new workers
// once ran a stale job).
#include <atomic>
#include <thread>
#include <vector>

#include "cpu/kernels.h"
#include "harness.h"
#include "threadpool.h"

ENCSEC_TEST(pool_parallel_for_covers_every_index_once) {
  std::vector<std::atomic<int>> hits(10007);
  encsec::parallel_for(10007, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) hits[i]++;
  });
  int bad = 0;
  for (auto& h : hits) bad += h.load() != 1;
  CHECK(bad == 0);
}

ENCSEC_TEST(pool_nested_regions_run_serially) {
  std::atomic<int64_t> total{0};
  encsec::parallel_tasks(8, [&](int64_t) {
    encsec::parallel_for(100, 1, [&](int64_t b, int64_t e) { total += e - b; });
  });
  CHECK(total.load() == 800);
}

ENCSEC_TEST(pool_resize_between_runs) {
  int before = encsec::num_threads();
  for (int round = 0; round < 20; ++round) {
    encsec::set_num_threads(1 + round % 3);
    std::atomic<int64_t> sum{0};
    encsec::parallel_for(1000, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) sum += i;
    });
    CHECK(sum.load() == 999 * 1000 / 2);
  }
  encsec::set_num_threads(before);
  CHECK(encsec::num_threads() == before);
}

// The race of issue #19: threads resizing the pool while others run
// parallel_for / parallel_tasks. Every chunk must run exactly once (before the
// fix, a pool that shrank between the size read and the run dropped the upper
// chunks). Several callers at once also exercise the run lock.
ENCSEC_TEST(pool_resize_concurrent_with_parallel_for) {
  const int before = encsec::num_threads();
  constexpr int kCallers = 3, kRounds = 300, kN = 4099;
  std::atomic<bool> stop{false};
  std::atomic<int> bad_for{0}, bad_tasks{0};
  std::thread resizer([&] {
    for (int i = 0; !stop.load(); ++i) encsec::set_num_threads(1 + i % 4);
  });
  std::vector<std::thread> callers;
  for (int c = 0; c < kCallers; ++c)
    callers.emplace_back([&, c] {
      std::vector<std::atomic<int>> hits(kN);
      for (int round = 0; round < kRounds; ++round) {
        for (auto& h : hits) h.store(0, std::memory_order_relaxed);
        // Grain 1 and a small n too: up to one chunk per thread.
        const int64_t n = round % 2 ? kN : 1 + round % 7;
        encsec::parallel_for(n, 1, [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) hits[i]++;
        });
        for (int64_t i = 0; i < n; ++i)
          if (hits[i].load() != 1) {
            bad_for++;
            break;
          }
        std::atomic<int64_t> tasks{0};
        encsec::parallel_tasks(17 + c, [&](int64_t t) { tasks += t + 1; });
        if (tasks.load() != int64_t(17 + c) * (18 + c) / 2) bad_tasks++;
      }
    });
  for (auto& t : callers) t.join();
  stop = true;
  resizer.join();
  CHECK(bad_for.load() == 0);
  CHECK(bad_tasks.load() == 0);
  encsec::set_num_threads(before);
  CHECK(encsec::num_threads() == before);
}

// The same race through real kernels, as embed() meets it: callers running a
// small conv -> relu -> linear forward (the work of an inference plan) while
// the thread count toggles between 1 and 2. Every result must be bitwise the
// one computed before (the kernels' results do not depend on the thread count).
ENCSEC_TEST(pool_resize_during_kernel_forward) {
  const int before = encsec::num_threads();
  const int N = 8, C = 1, H = 28, W = 28, OC = 16, K = 3, OH = 26, OW = 26, F = 32;
  const std::vector<float> x = encsec_test::random_vector(size_t(N) * C * H * W, 1);
  const std::vector<float> w = encsec_test::random_vector(size_t(OC) * C * K * K, 2);
  const std::vector<float> lw = encsec_test::random_vector(size_t(F) * OC * OH * OW, 3, -0.01f, 0.01f);
  auto forward = [&] {
    std::vector<float> conv(size_t(N) * OC * OH * OW), out(size_t(N) * F);
    encsec::conv2d_forward(conv.data(), x.data(), w.data(), nullptr, N, C, H, W, OC, K, K, 1, 0);
    encsec::relu_forward(conv.data(), conv.data(), static_cast<int64_t>(conv.size()));
    encsec::linear_forward(out.data(), conv.data(), lw.data(), nullptr, N, OC * OH * OW, F);
    return out;
  };
  encsec::set_num_threads(2);
  const std::vector<float> ref = forward();
  encsec::set_num_threads(1);
  CHECK(forward() == ref);  // 1 and 2 threads agree bitwise

  std::atomic<bool> stop{false};
  std::atomic<int> wrong{0}, runs{0};
  std::thread resizer([&] {
    for (int i = 0; !stop.load(); ++i) encsec::set_num_threads(1 + i % 2);
  });
  std::vector<std::thread> callers;
  for (int c = 0; c < 3; ++c)
    callers.emplace_back([&] {
      for (int k = 0; k < 15; ++k) {
        if (forward() != ref) wrong++;
        runs++;
      }
    });
  for (auto& t : callers) t.join();
  stop = true;
  resizer.join();
  CHECK(runs.load() == 45);
  CHECK(wrong.load() == 0);
  encsec::set_num_threads(before);
}
