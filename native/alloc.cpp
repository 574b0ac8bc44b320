#include "alloc.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif

namespace encsec {
namespace {

// Cap on cached (free) bytes; above it, frees go straight to the OS. It must
// hold a training step's working set, or every step gives blocks back and
// page-faults fresh zeroed pages in again: with a 1 GiB cap a resnet18-cifar
// SimCLR step at batch 128 (about 1.5 GB of activations and gradients) spent
// 16% of its time in the kernel's clear_page (perf record). Default: a
// quarter of physical memory, at least 1 GiB; ENCSEC_HOST_CACHE_MB overrides.
size_t max_cached_bytes() {
  static const size_t cap = [] {
    // Digits only ("-5" would wrap around in strtoull); anything else keeps the default.
    if (const char* e = std::getenv("ENCSEC_HOST_CACHE_MB"); e && *e >= '0' && *e <= '9') {
      char* end = nullptr;
      const unsigned long long mb = std::strtoull(e, &end, 10);
      if (end != e && *end == '\0') return static_cast<size_t>(mb) << 20;
    }
    size_t phys = 0;
#if defined(_SC_PHYS_PAGES) && defined(_SC_PAGESIZE)
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0) phys = static_cast<size_t>(pages) * static_cast<size_t>(page);
#endif
    return std::max(size_t(1) << 30, phys / 4);
  }();
  return cap;
}

// From this size up, blocks come in size classes (see host_block_bytes).
constexpr size_t kClassMin = size_t(64) << 10;

struct Cache {
  std::mutex m;
  // Free blocks by block size (a class of host_block_bytes), ordered so that
  // a large request finds the smallest cached block of its class or of the
  // classes above it (see host_alloc).
  std::map<size_t, std::vector<void*>> free_lists;
  // Large blocks in use that are bigger than their request's class (taken
  // from a class above it): their real size, for host_free.
  std::unordered_map<void*, size_t> oversize;
  size_t cached = 0;
};

Cache& cache() {
  static Cache* c = new Cache();  // never destroyed: frees may come from finalizers at exit
  return *c;
}

}  // namespace

// Size classes. Blocks were once cached by exact size (rounded to 64 bytes),
// which suits training (the same sizes every step) but not the HTTP server:
// its dynamic batcher (lib/server/batcher.ts) runs batches of every size from
// 1 to maxBatch images and every activation's size is proportional to the
// batch, so each new batch size missed the cache and left a set of blocks of
// its own behind (a cnn-small server's RSS rose in steps to 1.1-1.25 GB over
// a soak; benchmarks/alloc-batches.ts measures it). Two rules fix it:
//  - from 64 KiB up, a block's size is rounded up to the next of 8 classes
//    per power of two (2^p, 2^p * 9/8, ..., 2^p * 15/8, 2^(p+1)): at most
//    12.5% over, and sizes within a few percent share blocks. Smaller blocks
//    keep the 64-byte rounding: one block of each of the 1,024 small sizes
//    is 32 MiB in all, so coarser steps there would save little;
//  - a large request with nothing cached in its class takes the smallest
//    cached block up to twice its class's size before asking the OS. Classes
//    alone still left a block per class behind (8 per octave of batch size);
//    with this the blocks of one large batch serve the smaller ones.
// benchmarks/alloc-batches.ts (cnn-small, 2,000 batches of 1..256 images):
// with exact sizes the cache filled up to its cap (a quarter of memory:
// 5.9 GiB, RSS 6229 MiB), with classes alone it settled at 938 MiB, with
// both rules at 258 MiB (RSS 314 MiB), and images/s did not drop.
// host_alloc and host_free derive the class from the requested byte count
// with this one function; a block taken from a class above is remembered in
// Cache::oversize, so a caller needs to know only the size it asked for.
size_t host_block_bytes(size_t bytes) {
  if (bytes == 0) bytes = 1;
  if (bytes < kClassMin) return (bytes + 63) & ~size_t(63);
  int p = 63;
  while (!(bytes >> p)) --p;                   // 2^p <= bytes < 2^(p+1), p >= 16
  const size_t step = size_t(1) << (p - 3);    // 2^p / 8, a multiple of 64
  if (bytes > SIZE_MAX - step) return bytes;   // impossible request: aligned_alloc fails on it
  return (bytes + step - 1) & ~(step - 1);
}

void* host_alloc(size_t bytes) {
  const size_t rb = host_block_bytes(bytes);
  {
    Cache& c = cache();
    std::lock_guard<std::mutex> lk(c.m);
    // Small: the exact class only. Large: the smallest block of [rb, 2 rb]
    // (at most 9 classes to look at). Emptied lists stay in the map, so that
    // the steady state of a training loop allocates nothing here.
    const size_t limit = rb < kClassMin ? rb : (rb > SIZE_MAX / 2 ? SIZE_MAX : 2 * rb);
    for (auto it = c.free_lists.lower_bound(rb); it != c.free_lists.end() && it->first <= limit; ++it) {
      if (it->second.empty()) continue;
      const size_t size = it->first;
      void* p = it->second.back();
      it->second.pop_back();
      c.cached -= size;
      if (size != rb) c.oversize.emplace(p, size);
      return p;
    }
  }
  void* p = std::aligned_alloc(64, rb);
  if (!p) {
    host_cache_clear();
    p = std::aligned_alloc(64, rb);
    if (!p) throw std::bad_alloc();
  }
  return p;
}

void host_free(void* p, size_t bytes) {
  if (!p) return;
  size_t rb = host_block_bytes(bytes);
  Cache& c = cache();
  {
    std::lock_guard<std::mutex> lk(c.m);
    if (rb >= kClassMin && !c.oversize.empty()) {
      auto o = c.oversize.find(p);
      if (o != c.oversize.end()) {
        rb = o->second;
        c.oversize.erase(o);
      }
    }
    if (c.cached + rb <= max_cached_bytes()) {
      c.free_lists[rb].push_back(p);
      c.cached += rb;
      return;
    }
  }
  std::free(p);
}

void host_cache_clear() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lk(c.m);
  for (auto& kv : c.free_lists)
    for (void* p : kv.second) std::free(p);
  c.free_lists.clear();
  c.cached = 0;
}

size_t host_cache_bytes() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lk(c.m);
  return c.cached;
}

}  // namespace encsec
