#include "alloc.h"

#include <algorithm>
#include <cstdlib>
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

struct Cache {
  std::mutex m;
  std::unordered_map<size_t, std::vector<void*>> free_lists;
  size_t cached = 0;
};

Cache& cache() {
  static Cache* c = new Cache();  // never destroyed: frees may come from finalizers at exit
  return *c;
}

size_t round_bytes(size_t bytes) { return (bytes + 63) & ~size_t(63); }

}  // namespace

void* host_alloc(size_t bytes) {
  size_t rb = round_bytes(bytes ? bytes : 1);
  {
    Cache& c = cache();
    std::lock_guard<std::mutex> lk(c.m);
    auto it = c.free_lists.find(rb);
    if (it != c.free_lists.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      c.cached -= rb;
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
  size_t rb = round_bytes(bytes ? bytes : 1);
  Cache& c = cache();
  {
    std::lock_guard<std::mutex> lk(c.m);
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
