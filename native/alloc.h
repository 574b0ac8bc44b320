// Host memory for tensors and kernel scratch space: 64-byte aligned, and
// cached by size class. A training step allocates the same sizes every
// iteration; giving freed blocks back to the next request of the same class
// avoids mmap/munmap and page-faulting fresh zero pages on every op (glibc
// serves large blocks with mmap), which otherwise costs more than some kernels.
// Classes: 64-byte multiples below 64 KiB, 8 per power of two above it (see
// host_block_bytes), and a large request with its class empty takes a cached
// block of up to twice its class's size, so that the varying batch sizes of
// the server share blocks instead of each leaving its own behind.
#pragma once

#include <cstddef>
#include <memory>

namespace encsec {

// A 64-byte aligned block with host_block_bytes(bytes) usable bytes (a block
// taken from the cache may be larger); throws std::bad_alloc.
void* host_alloc(size_t bytes);
// `bytes` is the count that was passed to host_alloc, not the block's size.
void host_free(void* p, size_t bytes);
// The class of a request: bytes (0 counts as 1) rounded up to a multiple of
// 64 below 64 KiB, else to the next of 8 classes per power of two (at most
// 12.5% over). A cached block serves any request of its class.
size_t host_block_bytes(size_t bytes);
// Release every cached block to the OS.
void host_cache_clear();
// Bytes currently held in the cache (free, not in use).
size_t host_cache_bytes();

// RAII scratch buffer of floats from the caching allocator.
class ScratchBuffer {
 public:
  explicit ScratchBuffer(size_t count) : bytes_(count * sizeof(float)) {
    data_ = static_cast<float*>(host_alloc(bytes_ ? bytes_ : 64));
  }
  ~ScratchBuffer() { host_free(data_, bytes_ ? bytes_ : 64); }
  ScratchBuffer(const ScratchBuffer&) = delete;
  ScratchBuffer& operator=(const ScratchBuffer&) = delete;
  float* data() const { return data_; }

 private:
  size_t bytes_;
  float* data_;
};

}  // namespace encsec
