// Tests of the caching host allocator (native/alloc.cpp): the size-class rule
// (64-byte rounding below 64 KiB, 8 classes per power of two above, at most
// 12.5% over), 64-byte alignment, reuse of a cached block by any request of
// its class and by large requests of up to half its size, and the property
// the server relies on: batches of varying sizes (100, 103, 106... images)
// share cached blocks instead of leaving blocks of each size in the cache.
// Each test empties the cache first and measures it with host_cache_bytes(),
// so the other tests' leftovers do not matter.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <set>
#include <vector>

#include "alloc.h"
#include "harness.h"

using namespace encsec;

namespace {

bool aligned64(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 63u) == 0; }

// Frees p and reports whether the cache took it (false when ENCSEC_HOST_CACHE_MB
// is set too low for this test to say anything).
bool free_into_cache(void* p, size_t bytes) {
  const size_t before = host_cache_bytes();
  host_free(p, bytes);
  return host_cache_bytes() > before;
}

void need_cache() {
  host_cache_clear();
  void* p = host_alloc(size_t(4) << 20);
  if (!free_into_cache(p, size_t(4) << 20)) {
    host_cache_clear();
    SKIP("the host cache does not hold a 4 MiB block (ENCSEC_HOST_CACHE_MB is set low)");
  }
  host_cache_clear();
}

}  // namespace

ENCSEC_TEST(alloc_size_classes) {
  // Small: 64-byte multiples, 0 counts as 1.
  CHECK(host_block_bytes(0) == 64);
  CHECK(host_block_bytes(1) == 64);
  CHECK(host_block_bytes(64) == 64);
  CHECK(host_block_bytes(65) == 128);
  CHECK(host_block_bytes(4000) == 4032);
  CHECK(host_block_bytes(65535) == 65536);
  // From 64 KiB: steps of 2^p / 8.
  CHECK(host_block_bytes(65536) == 65536);
  CHECK(host_block_bytes(65537) == 65536 + 8192);
  CHECK(host_block_bytes(70000) == 73728);
  CHECK(host_block_bytes(1000000) == 1048576);
  CHECK(host_block_bytes(1048577) == 1048576 + 131072);
  CHECK(host_block_bytes((size_t(15) << 20) + 1) == (size_t(16) << 20));
  // Over a wide range: never smaller, at most 12.5% larger (64 bytes below
  // 64 KiB), a multiple of 64, monotone, idempotent, 8 classes per octave.
  size_t prev = 0;
  bool ok_bound = true, ok_mult = true, ok_mono = true, ok_idem = true;
  for (size_t b = 1; b < (size_t(1) << 34); b += 1 + b / 97) {
    const size_t c = host_block_bytes(b);
    if (c < b || (b < 65536 ? c - b >= 64 : (c - b) * 8 > b)) ok_bound = false;
    if (c % 64) ok_mult = false;
    if (c < prev) ok_mono = false;
    if (host_block_bytes(c) != c) ok_idem = false;
    prev = c;
  }
  CHECK(ok_bound);
  CHECK(ok_mult);
  CHECK(ok_mono);
  CHECK(ok_idem);
  for (int p = 16; p < 34; ++p) {
    std::set<size_t> classes;
    for (size_t b = size_t(1) << p; b < (size_t(2) << p); b += size_t(1) << (p - 6)) classes.insert(host_block_bytes(b));
    // 2^p itself, then 2^p + k * 2^p/8 for k = 1..8 (the last is 2^(p+1)).
    CHECK(classes.size() == 9);
  }
}

ENCSEC_TEST(alloc_small_blocks_round_to_64) {
  need_cache();
  for (size_t b : {size_t(0), size_t(1), size_t(63), size_t(64), size_t(65), size_t(100), size_t(4000), size_t(65535)}) {
    void* p = host_alloc(b);
    CHECK(aligned64(p));
    std::memset(p, 0x5a, host_block_bytes(b));  // the whole block is usable
    const size_t before = host_cache_bytes();
    host_free(p, b);
    const size_t want = b == 0 ? 64 : (b + 63) / 64 * 64;
    CHECK(host_cache_bytes() - before == want);
  }
  host_cache_clear();
  CHECK(host_cache_bytes() == 0);
}

ENCSEC_TEST(alloc_block_reused_across_its_class) {
  need_cache();
  // A class spans (previous class, class]: both ends get the same block.
  const size_t top = size_t(9) << 17;      // 1152 KiB = 2^20 * 9/8, a class
  const size_t bottom = (size_t(1) << 20) + 1;  // just above the class below (1 MiB)
  CHECK(host_block_bytes(bottom) == top);
  void* a = host_alloc(top);
  CHECK(aligned64(a));
  std::memset(a, 1, top);
  CHECK(free_into_cache(a, top));
  CHECK(host_cache_bytes() == top);
  void* b = host_alloc(bottom);
  CHECK(b == a);
  CHECK(host_cache_bytes() == 0);
  // ...and the other way round: freed by a small request, taken by a large one.
  CHECK(free_into_cache(b, bottom));
  void* c = host_alloc(top);
  CHECK(c == a);
  std::memset(c, 2, top);  // the full class size is writable
  // A request of the next class up does not take a cached block of this one.
  host_free(c, top);
  void* d = host_alloc(top + 1);
  CHECK(d != a);
  CHECK(aligned64(d));
  CHECK(host_cache_bytes() == top);
  host_free(d, top + 1);
  CHECK(host_cache_bytes() == top + host_block_bytes(top + 1));
  host_cache_clear();
}

ENCSEC_TEST(alloc_nearby_sizes_share_the_cache) {
  need_cache();
  // The server's pattern: one "activation" per batch, batches of sizes 3%
  // apart (1 MB * 1.03^i, 60 sizes over 5.9x), each allocated and freed in
  // turn. Exact-size caching would keep 60 blocks; classes keep one per class.
  std::vector<size_t> sizes;
  for (double s = 1e6; sizes.size() < 60; s *= 1.03) sizes.push_back(static_cast<size_t>(s) + 4 * sizes.size());
  std::set<size_t> classes;
  size_t sum_sizes = 0, sum_classes = 0;
  for (size_t s : sizes) {
    sum_sizes += s;
    if (classes.insert(host_block_bytes(s)).second) sum_classes += host_block_bytes(s);
  }
  CHECK(classes.size() <= 24);  // about 8 per octave over log2(5.9) = 2.6 octaves
  for (int round = 0; round < 3; ++round) {
    for (size_t s : sizes) {
      void* p = host_alloc(s);
      CHECK(aligned64(p));
      static_cast<volatile char*>(p)[s - 1] = 1;
      host_free(p, s);
    }
    // After every pass the cache holds exactly one block per class.
    CHECK(host_cache_bytes() == sum_classes);
  }
  CHECK(sum_classes * 2 < sum_sizes);
  // Largest first (a server's batches after a big one): the big block serves
  // every request down to half its size, so a few blocks serve all 60 sizes.
  host_cache_clear();
  for (int round = 0; round < 3; ++round) {
    for (auto it = sizes.rbegin(); it != sizes.rend(); ++it) {
      void* p = host_alloc(*it);
      CHECK(aligned64(p));
      static_cast<volatile char*>(p)[*it - 1] = 1;
      host_free(p, *it);
    }
    CHECK(host_cache_bytes() <= 2 * host_block_bytes(sizes.back()));
  }
  // Several blocks of one class live at once are all kept, and all reused.
  const size_t s0 = sizes[10], s1 = sizes[10] + 1000;
  CHECK(host_block_bytes(s0) == host_block_bytes(s1));
  host_cache_clear();
  void* p0 = host_alloc(s0);
  void* p1 = host_alloc(s1);
  CHECK(p0 != p1);
  host_free(p0, s0);
  host_free(p1, s1);
  CHECK(host_cache_bytes() == 2 * host_block_bytes(s0));
  void* q0 = host_alloc(s1);
  void* q1 = host_alloc(s0);
  CHECK((q0 == p0 || q0 == p1) && (q1 == p0 || q1 == p1) && q0 != q1);
  CHECK(host_cache_bytes() == 0);
  host_free(q0, s1);
  host_free(q1, s0);
  host_cache_clear();
}

ENCSEC_TEST(alloc_scratch_buffer_uses_classes) {
  need_cache();
  {
    ScratchBuffer a((size_t(1) << 18) + 3);  // floats: just over 1 MiB
    CHECK(aligned64(a.data()));
  }
  const size_t cached = host_cache_bytes();
  CHECK(cached == host_block_bytes(((size_t(1) << 18) + 3) * sizeof(float)));
  {
    ScratchBuffer b((size_t(1) << 18) + 20000);  // 8% more: same class, same block
    CHECK(host_cache_bytes() == 0);
  }
  CHECK(host_cache_bytes() == cached);
  { ScratchBuffer z(0); CHECK(aligned64(z.data())); }
  host_cache_clear();
}

ENCSEC_TEST(alloc_large_request_takes_a_larger_cached_block) {
  need_cache();
  const size_t two = size_t(2) << 20, one_half = size_t(3) << 19;
  void* big = host_alloc(two);
  CHECK(free_into_cache(big, two));
  // 1.2 MB (class 1.25 MiB) takes the 2 MiB block; freed with its own count,
  // the block goes back as the 2 MiB block it is.
  void* p = host_alloc(1200000);
  CHECK(p == big);
  CHECK(host_cache_bytes() == 0);
  std::memset(p, 3, host_block_bytes(1200000));
  host_free(p, 1200000);
  CHECK(host_cache_bytes() == two);
  void* q = host_alloc(two);  // still a 2 MiB block: a 2 MiB request takes it
  CHECK(q == big);
  std::memset(q, 4, two);
  host_free(q, two);
  // Exactly half: 1 MiB takes it; just below (class 15/16 MiB) does not.
  void* h = host_alloc(size_t(1) << 20);
  CHECK(h == big);
  host_free(h, size_t(1) << 20);
  void* r = host_alloc((size_t(15) << 16) - 100);
  CHECK(r != big);
  CHECK(host_cache_bytes() == two);
  host_free(r, (size_t(15) << 16) - 100);
  host_cache_clear();
  // A small request never takes a large block.
  void* l = host_alloc(size_t(64) << 10);
  host_free(l, size_t(64) << 10);
  void* s = host_alloc(60000);
  CHECK(s != l);
  host_free(s, 60000);
  host_cache_clear();
  // The smallest block that fits is taken first.
  void* b2 = host_alloc(two);
  void* b15 = host_alloc(one_half);
  host_free(b2, two);
  host_free(b15, one_half);
  void* x = host_alloc(1100000);  // class 1.125 MiB: 1.5 MiB and 2 MiB fit
  CHECK(x == b15);
  void* y = host_alloc(1100000);
  CHECK(y == b2);
  CHECK(host_cache_bytes() == 0);
  host_free(x, 1100000);
  host_free(y, 1100000);
  CHECK(host_cache_bytes() == two + one_half);
  host_cache_clear();
}

ENCSEC_TEST(alloc_server_batches_keep_the_cache_bounded) {
  need_cache();
  // A model's activations for a batch of n images are n times a per-image
  // size; the server's batches have any n from 1 to maxBatch. Each batch's
  // tensors are live together, then freed. The cache must stay within a
  // small multiple of the largest batch's working set (caching by exact size
  // kept 26 times it here, size classes alone 5.7 times).
  const size_t per[] = {70000, 140000, 100000, 280000};
  const int max_batch = 64;
  size_t largest = 0;
  for (size_t s : per) largest += host_block_bytes(max_batch * s);
  uint32_t st = 12345;
  auto next = [&st] {
    st ^= st << 13;
    st ^= st >> 17;
    st ^= st << 5;
    return st;
  };
  std::set<size_t> batch_sizes;
  size_t after_half = 0;
  for (int batch = 0; batch < 400; ++batch) {
    const size_t n = 1 + next() % max_batch;
    void* live[4];
    for (int i = 0; i < 4; ++i) {
      live[i] = host_alloc(n * per[i]);
      CHECK(aligned64(live[i]));
    }
    batch_sizes.insert(n);
    for (int i = 0; i < 4; ++i) host_free(live[i], n * per[i]);
    if (batch == 199) after_half = host_cache_bytes();
  }
  CHECK(batch_sizes.size() == (size_t)max_batch);  // every batch size came
  CHECK(host_cache_bytes() <= 4 * largest);
  // It settles: the second 200 batches add at most one largest working set.
  CHECK(host_cache_bytes() <= after_half + largest);
  host_cache_clear();
}
