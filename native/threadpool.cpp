#include "threadpool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

namespace encsec {
namespace {

thread_local bool t_in_parallel = false;

class Pool {
 public:
  Pool() {
    int n = 0;
    if (const char* env = std::getenv("ENCSEC_THREADS")) n = std::atoi(env);
    if (n <= 0) n = static_cast<int>(std::thread::hardware_concurrency());
    if (n <= 0) n = 1;
    resize(std::min(n, 256));
  }
  ~Pool() { stop_workers(); }

  // The current size. Outside run() it is only a hint (another thread may
  // resize at any moment); run() reads the size it works with under its lock.
  int size() const { return nthreads_.load(std::memory_order_relaxed); }

  // Waits for the parallel region in progress (run_mutex_), then replaces the
  // workers. Runs that start later see the new size.
  void resize(int n) {
    std::lock_guard<std::mutex> run_lock(run_mutex_);
    if (n == nthreads_.load(std::memory_order_relaxed)) return;
    stop_workers();
    nthreads_.store(n, std::memory_order_relaxed);
    stop_ = false;
    // New workers start from the current generation: a job published before
    // they existed is not theirs to run.
    uint64_t gen;
    {
      std::lock_guard<std::mutex> lk(m_);
      gen = generation_;
    }
    for (int i = 1; i < n; ++i) workers_.emplace_back([this, i, gen] { worker_loop(i, gen); });
  }

  // Runs job(worker_index, nthreads) on every thread (index 0 = caller) and
  // waits for all. nthreads is read under run_mutex_, the lock resize() takes:
  // the pool cannot change size between the caller's split of the work and the
  // run, so every index in [0, nthreads) is executed exactly once.
  void run(const std::function<void(int, int)>& job) {
    std::lock_guard<std::mutex> run_lock(run_mutex_);
    const int nt = nthreads_.load(std::memory_order_relaxed);
    std::function<void(int)> bound = [&job, nt](int t) { job(t, nt); };
    {
      std::lock_guard<std::mutex> lk(m_);
      job_ = &bound;
      pending_ = nt - 1;
      ++generation_;
    }
    cv_.notify_all();
    t_in_parallel = true;
    bound(0);
    t_in_parallel = false;
    std::unique_lock<std::mutex> lk(m_);
    done_cv_.wait(lk, [this] { return pending_ == 0; });
    job_ = nullptr;
  }

 private:
  void worker_loop(int index, uint64_t seen) {
    for (;;) {
      const std::function<void(int)>* job;
      {
        std::unique_lock<std::mutex> lk(m_);
        cv_.wait(lk, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
        job = job_;
      }
      t_in_parallel = true;
      (*job)(index);
      t_in_parallel = false;
      {
        std::lock_guard<std::mutex> lk(m_);
        if (--pending_ == 0) done_cv_.notify_one();
      }
    }
  }

  void stop_workers() {
    {
      std::lock_guard<std::mutex> lk(m_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
  }

  std::atomic<int> nthreads_{1};  // written under run_mutex_; read anywhere (size())
  std::vector<std::thread> workers_;
  std::mutex run_mutex_;  // one parallel region at a time (AsyncWorker + main thread)
  std::mutex m_;
  std::condition_variable cv_, done_cv_;
  const std::function<void(int)>* job_ = nullptr;
  int pending_ = 0;
  uint64_t generation_ = 0;
  bool stop_ = false;
};

Pool& pool() {
  static Pool p;
  return p;
}

}  // namespace

int num_threads() { return pool().size(); }

void set_num_threads(int n) {
  if (n < 1) n = 1;
  if (n > 256) n = 256;
  pool().resize(n);  // a no-op when n is the current size
}

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  const int64_t max_chunks = (n + grain - 1) / grain;
  // pool().size() is only a hint here (a resize may run concurrently): it
  // skips waking the pool for serial work. The split itself uses the size that
  // run() holds fixed, so no chunk is lost when the pool shrinks meanwhile.
  if (t_in_parallel || max_chunks <= 1 || pool().size() == 1) {
    fn(0, n);
    return;
  }
  pool().run([&](int t, int nt) {
    const int64_t chunks = std::min<int64_t>(nt, max_chunks);
    if (t >= chunks) return;
    const int64_t begin = n * t / chunks;
    const int64_t end = n * (t + 1) / chunks;
    if (begin < end) fn(begin, end);
  });
}

void parallel_tasks(int64_t ntasks, const std::function<void(int64_t)>& fn) {
  if (ntasks <= 0) return;
  if (t_in_parallel || ntasks == 1 || pool().size() == 1) {
    for (int64_t i = 0; i < ntasks; ++i) fn(i);
    return;
  }
  // Tasks are pulled from a shared counter until none is left, so they are
  // all run whatever the number of members (the caller alone finishes them).
  std::atomic<int64_t> next{0};
  pool().run([&](int, int) {
    for (;;) {
      const int64_t i = next.fetch_add(1);
      if (i >= ntasks) break;
      fn(i);
    }
  });
}

}  // namespace encsec
