// A small fixed thread pool for the CPU kernels. All cores by default;
// ENCSEC_THREADS sets the count. parallel_for splits [0, n) into contiguous
// chunks, one per worker, and blocks until all are done. Calls from inside a
// parallel region run serially (no nested parallelism, no deadlock).
//
// Thread safety: parallel_for / parallel_tasks may be called from several
// threads at once (the main thread and AsyncWorkers); their regions run one at
// a time. set_num_threads may be called at any moment from any thread: it
// waits for the region in progress, and each region splits its work with the
// size it runs with, so a resize never drops or repeats a chunk. (It once
// did: the size was read before taking the run lock, and a pool that shrank in
// between never ran the upper chunks — wrong embeddings, silently.)
#pragma once

#include <cstdint>
#include <functional>

namespace encsec {

// Number of worker threads (including the calling thread). A snapshot: with
// concurrent set_num_threads calls it may be stale by the time it is used, so
// kernels may use it to choose a number of parts, never as a thread index bound.
int num_threads();
// Change the thread count (clamped to 1..256). Waits for the parallel region
// in progress; takes effect for the next one.
void set_num_threads(int n);

// Run fn(begin, end) over [0, n) split into at most num_threads() chunks of
// at least `grain` items each.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

// Run fn(task) for task in [0, ntasks), tasks handed out dynamically.
void parallel_tasks(int64_t ntasks, const std::function<void(int64_t)>& fn);

}  // namespace encsec
