// 2-D convolution (cross-correlation, zero padding, NCHW) as GEMM on the
// packed engine of gemm.cpp (gemm_internal.h). The N images' output pixels
// form one long column space of N*OH*OW columns; chunks of it need not
// respect image boundaries, so small images (7x7) still fill the 48-wide
// register tiles.
//
// forward:  out[OC, cols] = W[OC, K] * col[K, cols], K = C*KH*KW, per chunk of
//           columns. There is no im2col matrix: each 48-column B panel is built
//           for one depth block in an L1 buffer right before its micro-kernels
//           run (panel-outer, depth-inner, so the panel's input rows and its C
//           strip stay in L1). An epilogue moves the chunk's C tile to NCHW,
//           adding bias and either ReLU or batch-norm statistics.
// backward: images in groups whose dout is read once, from L2, by both:
//   dinp:   dcol[K, cols] = W^T * dout, one channel block at a time, added into
//           dinp by col2im while in cache (for stride 1 in gather form: one
//           read-modify-write per dinp vector).
//   dW:     dW[OC, KH*KW*C] = dout[OC, pix] * colT[pix, KH*KW*C], colT read from
//           an NHWC copy of the group (contiguous channel runs, no gathers);
//           for K < 48 (1-3 input channels) dot products along the pixels.
//           Threads own fixed image ranges with private partial sums, added in
//           range order (deterministic for a given thread count).
//   The group's dout can be produced on demand (conv_bn_relu: BN backward),
//   so it never makes a round trip through memory.
//
// With AVX-512 the im2col/col2im copies run on masked 16-lane moves driven by
// per-chunk tables of segments (pieces of an output row, <= 16 pixels, within
// one panel); stride 2 de-interleaves with permutes. With AVX2 the stride-1
// forward im2col (panel rows assembled in registers) and the stride-1 col2im
// (gather form) run on 8-lane masked loads from the same kind of tables.
// Other ISAs and strides use the tables element by element.
#include <algorithm>
#include <cstring>
#include <vector>

#include "../alloc.h"
#include "../threadpool.h"
#include "kernels.h"
#include "nn_internal.h"
#include "vec.h"

namespace encsec {
namespace nn {
namespace {

using gemm::KC;
using gemm::MR;
using gemm::NR;
using gemm::round_up;

constexpr int kSegMax = 16;

#if defined(__AVX512F__)
#define ENCSEC_CONV_VLOADS 1
constexpr int kVL = 16;  // lanes of one vector register
#elif defined(__AVX2__) && defined(__FMA__)
#define ENCSEC_CONV_VLOADS 1
constexpr int kVL = 8;
using vec::lane_mask8;
#endif
#if defined(ENCSEC_CONV_VLOADS)
// Vector registers per NR-wide panel row (48 / 16 or 16 / 8).
constexpr int kNReg = NR / kVL;
static_assert(NR % kVL == 0, "panel rows are whole vectors");
#endif
// Floats of cache one chunk may use for its B block and C tile (1 MiB, L2).
constexpr int64_t kChunkFloats = 256 * 1024;

// A piece of one output row: columns [col, col + len) of the chunk are the
// pixels (oh, ow .. ow + len) of image n. Never crosses an NR panel.
struct Seg {
  int n, oh, ow, len, col;
};

// A segment seen through one kernel tap (kh, kw): where its input values
// start (relative to the channel plane of image 0), which lanes are inside
// the image, and where it lands in the packed panel.
struct Tap {
  int64_t src;     // n*C*H*W + ih*W + iw0 (row term only when the row is valid)
  int32_t iw0;     // input column of the first pixel
  int32_t dst;     // column within its NR panel
  int32_t col;     // column within the chunk
  int32_t len;
  uint32_t lmask;  // valid input lanes: bit l (stride 1) or bit 2l (stride 2)
  bool row_ok;     // input row inside the image
};

// Image runs of a chunk: columns [col, col + len) are pixels p0.. of image n.
struct Run {
  int n, p0, len, col;
};

bool vector_taps(const ConvShape& s) {
#if defined(__AVX512F__)
  return s.stride <= 2;
#else
  (void)s;
  return false;
#endif
}

void build_segs(const ConvShape& s, int64_t col0, int ncols, std::vector<Seg>& segs) {
  segs.clear();
  int j = 0;
  while (j < ncols) {
    const int64_t g = col0 + j;
    const int n = (int)(g / s.P);
    const int p = (int)(g % s.P);
    const int oh = p / s.OW, ow = p % s.OW;
    int len = std::min(s.OW - ow, kSegMax);
    len = std::min(len, NR - j % NR);
    len = std::min(len, ncols - j);
    segs.push_back({n, oh, ow, len, j});
    j += len;
  }
}

void build_taps(const ConvShape& s, const std::vector<Seg>& segs, std::vector<Tap>& taps) {
  const int nseg = (int)segs.size();
  taps.resize((size_t)s.KH * s.KW * nseg);
  const int64_t chw = (int64_t)s.C * s.H * s.W;
  for (int kh = 0; kh < s.KH; ++kh)
    for (int kw = 0; kw < s.KW; ++kw)
      for (int i = 0; i < nseg; ++i) {
        const Seg& g = segs[i];
        Tap& t = taps[(size_t)(kh * s.KW + kw) * nseg + i];
        const int ih = g.oh * s.stride + kh - s.pad;
        t.iw0 = g.ow * s.stride + kw - s.pad;
        t.row_ok = ih >= 0 && ih < s.H;
        t.src = (int64_t)g.n * chw + (t.row_ok ? (int64_t)ih * s.W : 0) + t.iw0;
        t.len = g.len;
        t.col = g.col;
        t.dst = g.col % NR;
        t.lmask = 0;
        if (t.row_ok && s.stride == 1) {
          // Lanes [lo, hi) are inside the row.
          const int lo = std::max(0, -t.iw0), hi = std::min(g.len, s.W - t.iw0);
          if (hi > lo) t.lmask = ((hi >= 32 ? 0u : (1u << hi)) - 1u) & ~((1u << lo) - 1u);
        } else if (t.row_ok) {
          for (int l = 0; l < g.len; ++l) {
            const int iw = t.iw0 + l * s.stride;
            if (iw >= 0 && iw < s.W) t.lmask |= 1u << (2 * l);
          }
        }
      }
}

void build_runs(const ConvShape& s, int64_t col0, int ncols, bool split_panels, std::vector<Run>& runs) {
  runs.clear();
  int j = 0;
  while (j < ncols) {
    const int64_t g = col0 + j;
    const int n = (int)(g / s.P);
    const int p = (int)(g % s.P);
    int len = (int)std::min<int64_t>(s.P - p, ncols - j);
    if (split_panels) len = std::min(len, NR - j % NR);
    runs.push_back({n, p, len, j});
    j += len;
  }
}

// Rows [pc, pc + kc) of the im2col matrix for the segments [sa, sb) of one
// B panel (row k - pc at Bpanel + (k - pc) * NR). With vector taps the loop
// runs tap by tap and, inside, over the channels sharing that tap: a
// segment's offsets and masks stay in registers, only the channel stride
// changes. Otherwise element by element (any stride, any ISA).
void im2col_block(float* Bpanel, const float* inp, const std::vector<Tap>& taps, int nseg, int sa, int sb,
                  const ConvShape& s, bool vec, int pc, int kc) {
  const int khw = s.KH * s.KW;
  const int64_t hw = (int64_t)s.H * s.W;
#if defined(__AVX512F__)
  if (vec) {
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    for (int tap = 0; tap < khw; ++tap) {
      // Channels c with pc <= c * khw + tap < pc + kc.
      const int ca = std::max(0, (pc - tap + khw - 1) / khw);
      const int cb = (pc + kc - tap + khw - 1) / khw;
      if (cb <= ca) continue;
      const Tap* t = taps.data() + (size_t)tap * nseg;
      const int64_t dstep = (int64_t)khw * NR;
      float* drow = Bpanel + (int64_t)(ca * khw + tap - pc) * NR;
      const float* srow = inp + ca * hw;
      for (int i = sa; i < sb; ++i) {
        const __mmask16 sm = (__mmask16)((1u << t[i].len) - 1);
        float* d = drow + t[i].dst;
        const float* p = srow + t[i].src;
        if (s.stride == 1) {
          const __mmask16 lm = (__mmask16)t[i].lmask;
          for (int c = ca; c < cb; ++c, d += dstep, p += hw)
            _mm512_mask_storeu_ps(d, sm, _mm512_maskz_loadu_ps(lm, p));
        } else {
          const __mmask16 lo = (__mmask16)(t[i].lmask & 0xFFFF), hi = (__mmask16)(t[i].lmask >> 16);
          for (int c = ca; c < cb; ++c, d += dstep, p += hw) {
            const __m512 v0 = _mm512_maskz_loadu_ps(lo, p), v1 = _mm512_maskz_loadu_ps(hi, p + 16);
            _mm512_mask_storeu_ps(d, sm, _mm512_permutex2var_ps(v0, even, v1));
          }
        }
      }
    }
    return;
  }
#endif
  (void)vec;
  for (int k = pc; k < pc + kc; ++k) {
    const int c = k / khw;
    const Tap* t = taps.data() + (size_t)(k % khw) * nseg;
    const float* src_c = inp + c * hw;
    for (int i = sa; i < sb; ++i) {
      float* d = Bpanel + (int64_t)(k - pc) * NR + t[i].dst;
      if (!t[i].row_ok) {
        for (int l = 0; l < t[i].len; ++l) d[l] = 0.0f;
        continue;
      }
      const float* row = src_c + (t[i].src - t[i].iw0);
      for (int l = 0; l < t[i].len; ++l) {
        const int iw = t[i].iw0 + l * s.stride;
        d[l] = (iw >= 0 && iw < s.W) ? row[iw] : 0.0f;
      }
    }
  }
}

#if defined(ENCSEC_CONV_VLOADS)
// Stride-1 im2col that assembles each panel row in kNReg registers (masked
// loads, zero where padding: three zmm for AVX-512's 48 columns, two ymm for
// AVX2's 16) and writes it with full aligned stores, instead of one
// unaligned masked store per segment: stores are the scarce port here
// (AVX2's masked stores are slow on AMD), and small images have many
// segments. VEnt: one masked load; lane l of register j reads plane + src + l.
struct VEnt {
  int64_t src;
  uint32_t mask;
};

// Per panel p, tap and register j: exactly E entries starting at
// vents[((p * khw + tap) * kNReg + j) * E], padded with mask-0 entries (no
// access). A fixed count keeps the inner loops branch-predictable; variable
// 1-3 iteration loops mispredicted often enough to double the cost.
int build_vents(const ConvShape& s, const std::vector<Tap>& taps, int nseg, const std::vector<int>& pseg,
                int npanels, std::vector<VEnt>& vents) {
  const int khw = s.KH * s.KW;
  std::vector<VEnt> tmp;
  std::vector<int> beg((size_t)npanels * khw * kNReg + 1, 0);
  for (int p = 0; p < npanels; ++p)
    for (int tap = 0; tap < khw; ++tap) {
      const Tap* t = taps.data() + (size_t)tap * nseg;
      for (int j = 0; j < kNReg; ++j) {
        beg[((size_t)p * khw + tap) * kNReg + j] = (int)tmp.size();
        for (int i = pseg[p]; i < pseg[p + 1]; ++i) {
          const int a = t[i].dst, la = std::max(a, kVL * j), lb = std::min(a + t[i].len, kVL * j + kVL);
          if (la >= lb) continue;
          // Segment lane l sits at panel lane a + l, register lane a + l - kVL*j.
          const uint64_t valid = ((uint64_t)t[i].lmask << a) >> (kVL * j);
          const uint64_t range = ((1ull << (lb - kVL * j)) - 1) & ~((1ull << (la - kVL * j)) - 1);
          const uint32_t m = (uint32_t)(valid & range & ((1u << kVL) - 1));
          if (m) tmp.push_back({t[i].src - (a - kVL * j), m});
        }
      }
    }
  beg.back() = (int)tmp.size();
  int E = 1;
  for (size_t r = 0; r + 1 < beg.size(); ++r) E = std::max(E, beg[r + 1] - beg[r]);
  vents.assign(((size_t)beg.size() - 1) * E, VEnt{0, 0});
  for (size_t r = 0; r + 1 < beg.size(); ++r)
    for (int q = beg[r]; q < beg[r + 1]; ++q) vents[r * E + (q - beg[r])] = tmp[q];
  return E;
}

template <int E>
void im2col_panel_rows_t(float* Bpanel, const float* inp, const VEnt* vents, int e, int p, const ConvShape& s,
                         int pc, int kc) {
  const int n = E > 0 ? E : e;
  const int khw = s.KH * s.KW;
  const int64_t hw = (int64_t)s.H * s.W;
  for (int tap = 0; tap < khw; ++tap) {
    const int ca = std::max(0, (pc - tap + khw - 1) / khw);
    const int cb = (pc + kc - tap + khw - 1) / khw;
    if (cb <= ca) continue;
    const VEnt* e0 = vents + ((size_t)p * khw + tap) * kNReg * n;
    const VEnt* e1 = e0 + n;
    float* d = Bpanel + (int64_t)(ca * khw + tap - pc) * NR;
    const float* plane = inp + ca * hw;
#if defined(__AVX512F__)
    const VEnt* e2 = e1 + n;
    for (int c = ca; c < cb; ++c, d += khw * NR, plane += hw) {
      __m512 v0 = _mm512_setzero_ps(), v1 = _mm512_setzero_ps(), v2 = _mm512_setzero_ps();
      for (int q = 0; q < n; ++q) {
        v0 = _mm512_mask_loadu_ps(v0, (__mmask16)e0[q].mask, plane + e0[q].src);
        v1 = _mm512_mask_loadu_ps(v1, (__mmask16)e1[q].mask, plane + e1[q].src);
        v2 = _mm512_mask_loadu_ps(v2, (__mmask16)e2[q].mask, plane + e2[q].src);
      }
      _mm512_store_ps(d, v0);
      _mm512_store_ps(d + 16, v1);
      _mm512_store_ps(d + 32, v2);
    }
#else
    // The entries of one register cover disjoint lanes and maskload zeroes
    // the others, so OR merges them exactly (bit patterns, -0 included).
    if (E > 0) {
      // Fixed count: the entries' masks and offsets stay in registers
      // across the channels (only the plane moves).
      __m256i m0[E > 0 ? E : 1], m1[E > 0 ? E : 1];
      int64_t s0[E > 0 ? E : 1], s1[E > 0 ? E : 1];
      for (int q = 0; q < E; ++q) {
        m0[q] = lane_mask8(e0[q].mask);
        m1[q] = lane_mask8(e1[q].mask);
        s0[q] = e0[q].src;
        s1[q] = e1[q].src;
      }
      for (int c = ca; c < cb; ++c, d += khw * NR, plane += hw) {
        __m256 v0 = _mm256_maskload_ps(plane + s0[0], m0[0]), v1 = _mm256_maskload_ps(plane + s1[0], m1[0]);
        for (int q = 1; q < E; ++q) {
          v0 = _mm256_or_ps(v0, _mm256_maskload_ps(plane + s0[q], m0[q]));
          v1 = _mm256_or_ps(v1, _mm256_maskload_ps(plane + s1[q], m1[q]));
        }
        _mm256_store_ps(d, v0);
        _mm256_store_ps(d + 8, v1);
      }
      continue;
    }
    for (int c = ca; c < cb; ++c, d += khw * NR, plane += hw) {
      __m256 v0 = _mm256_setzero_ps(), v1 = _mm256_setzero_ps();
      for (int q = 0; q < n; ++q) {
        v0 = _mm256_or_ps(v0, _mm256_maskload_ps(plane + e0[q].src, lane_mask8(e0[q].mask)));
        v1 = _mm256_or_ps(v1, _mm256_maskload_ps(plane + e1[q].src, lane_mask8(e1[q].mask)));
      }
      _mm256_store_ps(d, v0);
      _mm256_store_ps(d + 8, v1);
    }
#endif
  }
}

// Prefetch the input rows panel p will read (all channels, centre tap): the
// rows come from L3 or memory on first touch, and the channel-strided
// pattern is invisible to the hardware prefetchers.
void prefetch_panel_rows(const float* inp, const std::vector<VEnt>& vents, int E, int p, const ConvShape& s) {
  const int khw = s.KH * s.KW;
  const int64_t hw = (int64_t)s.H * s.W;
  const VEnt* e = vents.data() + ((size_t)p * khw + khw / 2) * kNReg * E;
  for (int q = 0; q < kNReg * E; ++q) {
    if (!e[q].mask) continue;
    const float* a = inp + e[q].src;
    for (int c = 0; c < s.C; ++c, a += hw) {
      _mm_prefetch((const char*)a, _MM_HINT_T0);
      _mm_prefetch((const char*)(a + kVL - 1), _MM_HINT_T0);
    }
  }
}

void im2col_panel_rows(float* Bpanel, const float* inp, const std::vector<VEnt>& vents, int E, int p,
                       const ConvShape& s, int pc, int kc) {
  switch (E) {
    case 1: return im2col_panel_rows_t<1>(Bpanel, inp, vents.data(), E, p, s, pc, kc);
    case 2: return im2col_panel_rows_t<2>(Bpanel, inp, vents.data(), E, p, s, pc, kc);
    case 3: return im2col_panel_rows_t<3>(Bpanel, inp, vents.data(), E, p, s, pc, kc);
    case 4: return im2col_panel_rows_t<4>(Bpanel, inp, vents.data(), E, p, s, pc, kc);
    default: return im2col_panel_rows_t<0>(Bpanel, inp, vents.data(), E, p, s, pc, kc);
  }
}
#endif

// dinp (channel plane of image 0) += one dcol row, through the tap table.
void col2im_row(float* dinp_c, const float* dcol_row, const Tap* t, int nseg, const ConvShape& s, bool vec) {
#if defined(__AVX512F__)
  if (vec) {
    if (s.stride == 1) {
      for (int i = 0; i < nseg; ++i) {
        const __mmask16 m = (__mmask16)t[i].lmask;
        if (!m) continue;
        const __m512 v = _mm512_maskz_loadu_ps(m, dcol_row + t[i].col);
        float* p = dinp_c + t[i].src;
        _mm512_mask_storeu_ps(p, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, p), v));
      }
    } else {
      // Spread 16 values to the even lanes of two 16-lane halves.
      const __m512i ilo = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
      const __m512i ihi = _mm512_setr_epi32(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15);
      for (int i = 0; i < nseg; ++i) {
        if (!t[i].lmask) continue;
        const __m512 v = _mm512_maskz_loadu_ps((__mmask16)((1u << t[i].len) - 1), dcol_row + t[i].col);
        float* p = dinp_c + t[i].src;
        const __mmask16 mlo = (__mmask16)(t[i].lmask & 0xFFFF), mhi = (__mmask16)(t[i].lmask >> 16);
        const __m512 vlo = _mm512_maskz_permutexvar_ps(0xFFFF, ilo, v);
        const __m512 vhi = _mm512_maskz_permutexvar_ps(0xFFFF, ihi, v);
        _mm512_mask_storeu_ps(p, mlo, _mm512_add_ps(_mm512_maskz_loadu_ps(mlo, p), vlo));
        _mm512_mask_storeu_ps(p + 16, mhi, _mm512_add_ps(_mm512_maskz_loadu_ps(mhi, p + 16), vhi));
      }
    }
    return;
  }
#endif
  (void)vec;
  for (int i = 0; i < nseg; ++i) {
    if (!t[i].row_ok) continue;
    float* row = dinp_c + (t[i].src - t[i].iw0);
    const float* v = dcol_row + t[i].col;
    for (int l = 0; l < t[i].len; ++l) {
      const int iw = t[i].iw0 + l * s.stride;
      if (iw >= 0 && iw < s.W) row[iw] += v[l];
    }
  }
}

#if defined(ENCSEC_CONV_VLOADS)
// Gather form of col2im for stride 1: each kVL-pixel piece of an input row
// sums all its dcol contributions (one per tap whose output row lies in the
// chunk) in a register, then does a single read-modify-write of dinp.
// Scatter-adding tap by tap instead re-reads addresses just written through
// overlapping masked vectors, which defeats store forwarding and stalls.
struct GPiece {
  int64_t dst;     // n*C*H*W + ih*W + iw0
  uint32_t dmask;  // lanes inside the input row
  int first, count;
};
struct GTap {
  int32_t off;     // column offset in the dcol row of the tap
  uint32_t mask;   // lanes whose output pixel exists and lies in the chunk
  int32_t tap;
};

void build_gather(const ConvShape& s, int64_t col0, int ncols, std::vector<GPiece>& pieces,
                  std::vector<GTap>& gt) {
  pieces.clear();
  gt.clear();
  const int64_t chw = (int64_t)s.C * s.H * s.W;
  const int64_t r0 = col0 / s.OW, r1 = (col0 + ncols - 1) / s.OW;  // global output rows n*OH + oh
  for (int64_t n = r0 / s.OH; n <= r1 / s.OH; ++n) {
    const int oh_a = n == r0 / s.OH ? (int)(r0 % s.OH) : 0;
    const int oh_b = n == r1 / s.OH ? (int)(r1 % s.OH) : s.OH - 1;
    const int ih_a = std::max(0, oh_a - s.pad), ih_b = std::min(s.H - 1, oh_b + s.KH - 1 - s.pad);
    for (int ih = ih_a; ih <= ih_b; ++ih)
      for (int iw0 = 0; iw0 < s.W; iw0 += kVL) {
        const int lanes = std::min(kVL, s.W - iw0);
        GPiece pc{n * chw + (int64_t)ih * s.W + iw0, (1u << lanes) - 1, (int)gt.size(), 0};
        for (int kh = 0; kh < s.KH; ++kh) {
          const int oh = ih + s.pad - kh;
          if (oh < 0 || oh >= s.OH) continue;
          const int64_t rowbase = (n * s.OH + oh) * s.OW - col0;  // chunk column of ow = 0
          if (rowbase + s.OW <= 0 || rowbase >= ncols) continue;
          for (int kw = 0; kw < s.KW; ++kw) {
            const int ow0 = iw0 + s.pad - kw;
            uint32_t m = 0;
            for (int l = 0; l < lanes; ++l) {
              const int64_t ow = ow0 + l, col = rowbase + ow;
              if (ow >= 0 && ow < s.OW && col >= 0 && col < ncols) m |= 1u << l;
            }
            if (m) gt.push_back({(int32_t)(rowbase + ow0), m, kh * s.KW + kw});
          }
        }
        pc.count = (int)gt.size() - pc.first;
        if (pc.count) pieces.push_back(pc);
      }
  }
}

// Channels [c0, c1); dcol holds their rows, starting with channel c0.
void col2im_gather(float* dinp, const float* dcol, int64_t ldc, const std::vector<GPiece>& pieces,
                   const std::vector<GTap>& gt, const ConvShape& s, int c0, int c1) {
  const int khw = s.KH * s.KW;
  const int64_t hw = (int64_t)s.H * s.W;
  for (int c = c0; c < c1; ++c) {
    const float* dc = dcol + (int64_t)(c - c0) * khw * ldc;
    float* di = dinp + c * hw;
    for (const GPiece& pc : pieces) {
      float* p = di + pc.dst;
#if defined(__AVX512F__)
      __m512 acc = _mm512_setzero_ps();
      for (int e = pc.first; e < pc.first + pc.count; ++e)
        acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps((__mmask16)gt[e].mask, dc + gt[e].tap * ldc + gt[e].off));
      const __mmask16 m = (__mmask16)pc.dmask;
      _mm512_mask_storeu_ps(p, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, p), acc));
#else
      // Same sums, same order per lane as the AVX-512 path.
      __m256 acc = _mm256_setzero_ps();
      for (int e = pc.first; e < pc.first + pc.count; ++e)
        acc = _mm256_add_ps(acc, _mm256_maskload_ps(dc + gt[e].tap * ldc + gt[e].off, lane_mask8(gt[e].mask)));
      if (pc.dmask == 0xFFu) {
        _mm256_storeu_ps(p, _mm256_add_ps(_mm256_loadu_ps(p), acc));
      } else {
        // Row tail: scalar adds (masked stores are slow on AMD).
        alignas(32) float t[8];
        _mm256_store_ps(t, acc);
        for (int l = 0; l < 8 && (pc.dmask >> l) & 1u; ++l) p[l] += t[l];
      }
#endif
    }
  }
}
#endif

inline void copy_floats(float* dst, const float* src, int n) {
#if defined(__AVX512F__)
  int i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, _mm512_loadu_ps(src + i));
  if (i < n) {
    const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(dst + i, m, _mm512_maskz_loadu_ps(m, src + i));
  }
#elif defined(__AVX2__)
  // Inline: the runs are short (one image row, one channel run), where a
  // call to memcpy costs more than the copy.
  int i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_loadu_ps(src + i));
  for (; i < n; ++i) dst[i] = src[i];
#else
  std::memcpy(dst, src, sizeof(float) * n);
#endif
}

inline void zero_floats(float* dst, int n) {
#if defined(__AVX512F__)
  int i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, _mm512_setzero_ps());
  if (i < n) _mm512_mask_storeu_ps(dst + i, (__mmask16)((1u << (n - i)) - 1), _mm512_setzero_ps());
#elif defined(__AVX2__)
  int i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_setzero_ps());
  for (; i < n; ++i) dst[i] = 0.0f;
#else
  std::memset(dst, 0, sizeof(float) * n);
#endif
}

// Zero the columns past n in the last panel of a packed B block (panels
// KC * NR apart). They only feed C columns that are never stored, but stale
// scratch there may hold denormals, and FMAs on denormals take microcode
// assists that cost ~100x.
void zero_panel_tail(float* Bp, int n) {
  if (n % NR == 0) return;
  float* p = Bp + (int64_t)(n / NR) * KC * NR;
  for (int k = 0; k < KC; ++k)
    for (int j = n % NR; j < NR; ++j) p[(int64_t)k * NR + j] = 0.0f;
}

// Columns per chunk: the B block (KC x cols) and the C tile (rows x cols)
// together stay within kChunkFloats; at least one panel.
int chunk_cols(int64_t rows) {
  int64_t c = kChunkFloats / (KC + rows) / NR * NR;
  return (int)std::max<int64_t>(NR, std::min<int64_t>(c, 32 * NR));
}

// Split `total` columns into chunks of about `target` (whole panels), with at
// least `min_chunks` chunks when there are enough panels.
void plan_chunks(int64_t total, int target, int64_t min_chunks, int64_t& nchunks, int& chunk) {
  nchunks = gemm::ceil_div(total, target);
  nchunks = std::max(nchunks, std::min(min_chunks, gemm::ceil_div(total, NR)));
  chunk = (int)round_up(gemm::ceil_div(total, nchunks), NR);
  nchunks = gemm::ceil_div(total, chunk);
}

}  // namespace

void conv2d_forward_impl(float* out, const float* inp, const float* weight, const float* bias,
                         const ConvShape& s, bool relu, double* chan_sum, double* chan_sumsq) {
  const int64_t total = (int64_t)s.N * s.P;
  const int K = (int)s.K, OC = s.OC;
  if (total <= 0 || OC <= 0) return;
  // Weights packed once as the A operand: OC rows in MR panels, full depth.
  ScratchBuffer wbuf((size_t)round_up(OC, MR) * K);
  gemm::pack_A(wbuf.data(), (int64_t)K * MR, weight, K, false, OC, K);
  const float* Wp = wbuf.data();

  int64_t nchunks;
  int chunk;
  plan_chunks(total, chunk_cols(OC), 2 * num_threads(), nchunks, chunk);
  const bool stats = chan_sum != nullptr;
  std::vector<double> part(stats ? (size_t)nchunks * 2 * OC : 0);
  const bool vec = vector_taps(s);

  parallel_tasks(nchunks, [&](int64_t t) {
    const int64_t col0 = t * chunk;
    const int ncols = (int)std::min<int64_t>(chunk, total - col0);
    std::vector<Seg> segs;
    std::vector<Tap> taps;
    std::vector<Run> runs;
    build_segs(s, col0, ncols, segs);
    build_taps(s, segs, taps);
    build_runs(s, col0, ncols, false, runs);
    const int nseg = (int)segs.size();
    const int ldc = (int)round_up(ncols, 16);
    const int npanels = (int)gemm::ceil_div(ncols, NR);
    // Segments of panel p: [pseg[p], pseg[p + 1]) (segments never cross panels).
    std::vector<int> pseg(npanels + 1, nseg);
    for (int i = nseg - 1; i >= 0; --i) pseg[segs[i].col / NR] = i;
    for (int p = npanels - 1; p >= 0; --p) pseg[p] = std::min(pseg[p], pseg[p + 1]);
    // One B panel at a time: im2col writes it and the micro-kernels read it
    // while it is in L1 (a whole packed block would round-trip through L2).
    ScratchBuffer bbuf((size_t)KC * NR), cbuf((size_t)OC * ldc);
    float* Bpanel = bbuf.data();
    float* Ct = cbuf.data();
#if defined(ENCSEC_CONV_VLOADS)
    const bool rows = s.stride == 1;
    std::vector<VEnt> vents;
    const int E = rows ? build_vents(s, taps, nseg, pseg, npanels, vents) : 0;
#endif
    // Panel-outer, depth-inner: a panel's input rows (all channels) stay in
    // L1 across its depth blocks and are largely shared with the next panel,
    // and its C strip (OC x NR) accumulates in L1.
    const int kcb = gemm::balanced_kc(K);
    for (int p = 0; p < npanels; ++p) {
      const int nr = std::min(NR, ncols - p * NR);
#if defined(ENCSEC_CONV_VLOADS)
      if (rows && p + 2 < npanels) prefetch_panel_rows(inp, vents, E, p + 2, s);
#endif
      for (int pc = 0; pc < K; pc += kcb) {
        const int kc = std::min(kcb, K - pc);
#if defined(ENCSEC_CONV_VLOADS)
        if (rows)
          im2col_panel_rows(Bpanel, inp, vents, E, p, s, pc, kc);  // writes whole rows, tail zeros included
        else
#endif
        {
          if (nr < NR) zero_panel_tail(Bpanel, nr);
          im2col_block(Bpanel, inp, taps, nseg, pseg[p], pseg[p + 1], s, vec, pc, kc);
        }
        gemm::panel_kernel(OC, nr, kc, Wp + (int64_t)pc * MR, (int64_t)K * MR, Bpanel, Ct + p * NR, ldc, 1.0f,
                           pc == 0 ? 0.0f : 1.0f);
      }
    }
    // Epilogue: tile -> NCHW, + bias, then ReLU or statistics of the stored values.
    double* ps = stats ? part.data() + (size_t)t * 2 * OC : nullptr;
    for (int oc = 0; oc < OC; ++oc) {
      const float b = bias ? bias[oc] : 0.0f;
      const float* crow = Ct + (int64_t)oc * ldc;
      double sum = 0, sumsq = 0;
      for (const Run& r : runs) {
        float* o = out + ((int64_t)r.n * OC + oc) * s.P + r.p0;
        const float* c = crow + r.col;
        if (relu) {
          for (int i = 0; i < r.len; ++i) {
            const float v = c[i] + b;
            o[i] = v < 0.0f ? 0.0f : v;
          }
        } else {
          for (int i = 0; i < r.len; ++i) o[i] = c[i] + b;
          if (stats) add_sum_sumsq(o, r.len, sum, sumsq);
        }
      }
      if (stats) {
        ps[oc] = sum;
        ps[OC + oc] = sumsq;
      }
    }
  });
  if (stats) {
    for (int oc = 0; oc < OC; ++oc) {
      double sum = 0, sumsq = 0;
      for (int64_t t = 0; t < nchunks; ++t) {
        sum += part[(size_t)t * 2 * OC + oc];
        sumsq += part[(size_t)t * 2 * OC + OC + oc];
      }
      chan_sum[oc] = sum;
      chan_sumsq[oc] = sumsq;
    }
  }
}

namespace {

// A run of the reordered depth index k' = tap * C + c inside one NR panel.
struct KRun {
  int kh, kw, c0, len, off;
};

// An output pixel of a dW chunk: image (in the NHWC group) and the input
// coordinates of its tap (0, 0).
struct Pix {
  int n, ih0, iw0;
};

// Read-only plan of one backward call, shared by the threads.
struct BwdPlan {
  const ConvShape& s;
  int G;  // images per group: one group's dout is produced/read once for both gradients
  // dinp
  const float* WTp = nullptr;  // W^T packed as the A operand (rows K, depth OC)
  int sub = 0, cb = 0, kcb = 0, npc = 0;
  bool vec = false;
  // dweight
  std::vector<std::vector<KRun>> pruns;
  int npanels = 0;
  bool small_k = false;  // K < NR: dot-product path (dw_group_small)
  explicit BwdPlan(const ConvShape& sh) : s(sh), G(1) {}
};

// Per-thread scratch.
struct BwdScratch {
  float* Bp = nullptr;  // dinp: packed dout sub-chunk (npc blocks)
  int64_t bblock = 0;
  float* dcol = nullptr;  // dinp: one channel block of dcol
  float* inpT = nullptr;  // dW: the group's images in NHWC
  float* Ap = nullptr;    // dW: packed dout (A operand)
  float* Bpanel = nullptr;
  float* col = nullptr;  // dW, small K: plain im2col of one image
  std::vector<Pix> pix;
  std::vector<Seg> segs;
  std::vector<Tap> taps;
  std::vector<Run> runs;
#if defined(ENCSEC_CONV_VLOADS)
  std::vector<GPiece> pieces;
  std::vector<GTap> gt;
#endif
};

// dinp for images [g0, g1); dg holds their dout ([g1 - g0, OC, P]).
// dcol[K, cols] = W^T * dout is produced one channel block at a time and
// added into dinp by col2im while it is in cache.
void dinp_group(float* dinp, const float* dg, int g0, int g1, const BwdPlan& pl, BwdScratch& w) {
  const ConvShape& s = pl.s;
  const int OC = s.OC, C = s.C, khw = s.KH * s.KW;
  const int64_t chw = (int64_t)C * s.H * s.W, hw = (int64_t)s.H * s.W;
  std::memset(dinp + g0 * chw, 0, sizeof(float) * (size_t)(g1 - g0) * chw);
  const int64_t cbeg = (int64_t)g0 * s.P, cend = (int64_t)g1 * s.P;
  int64_t nsub;
  int subc;
  plan_chunks(cend - cbeg, pl.sub, 1, nsub, subc);
  for (int64_t col0 = cbeg; col0 < cend; col0 += subc) {
    const int ncols = (int)std::min<int64_t>(subc, cend - col0);
    const int ldc = (int)round_up(ncols, 16);
    build_runs(s, col0, ncols, true, w.runs);
    for (int p = 0; p < pl.npc; ++p) zero_panel_tail(w.Bp + p * w.bblock, ncols);
    for (const Run& r : w.runs) {
      const float* src = dg + (int64_t)(r.n - g0) * OC * s.P + r.p0;
      for (int k = 0; k < OC; ++k)
        copy_floats(w.Bp + (k / pl.kcb) * w.bblock + (int64_t)(r.col / NR) * KC * NR + (int64_t)(k % pl.kcb) * NR +
                        r.col % NR,
                    src + (int64_t)k * s.P, r.len);
    }
    bool gather = false;
#if defined(ENCSEC_CONV_VLOADS)
    if (s.stride == 1) {
      gather = true;
      build_gather(s, col0, ncols, w.pieces, w.gt);
    }
#endif
    if (!gather) {
      build_segs(s, col0, ncols, w.segs);
      build_taps(s, w.segs, w.taps);
    }
    for (int c0 = 0; c0 < C; c0 += pl.cb) {
      const int c1 = std::min(C, c0 + pl.cb);
      const int m0 = c0 * khw, rows = (c1 - c0) * khw;
      for (int p = 0; p < pl.npc; ++p) {
        const int pc = p * pl.kcb, kc = std::min(pl.kcb, OC - pc);
        gemm::macro_kernel(rows, ncols, kc, pl.WTp + (int64_t)(m0 / MR) * OC * MR + (int64_t)pc * MR,
                           (int64_t)OC * MR, w.Bp + p * w.bblock, (int64_t)KC * NR, w.dcol, ldc, 1.0f,
                           p == 0 ? 0.0f : 1.0f);
      }
#if defined(ENCSEC_CONV_VLOADS)
      if (gather) {
        col2im_gather(dinp, w.dcol, ldc, w.pieces, w.gt, s, c0, c1);
        continue;
      }
#endif
      const int nseg = (int)w.segs.size();
      for (int k = m0; k < m0 + rows; ++k) {
        const int c = k / khw, tap = k % khw;
        col2im_row(dinp + c * hw, w.dcol + (int64_t)(k - m0) * ldc, w.taps.data() + (size_t)tap * nseg, nseg, s,
                   pl.vec);
      }
    }
  }
}

// dW[OC, k'] (+)= dout[OC, pixels] * colT[pixels, k'] for images [g0, g1),
// k' = (kh, kw, c), colT read from an NHWC copy of the group's images.
void dw_group(float* dW, bool& first, const float* dg, const float* inp, int g0, int g1, const BwdPlan& pl,
              BwdScratch& w) {
  const ConvShape& s = pl.s;
  const int C = s.C, OC = s.OC, K = (int)s.K;
  const int64_t hw = (int64_t)s.H * s.W, chw = (int64_t)C * hw;
  for (int n = g0; n < g1; ++n) gemm::transpose_copy(w.inpT + (n - g0) * chw, C, inp + n * chw, hw, C, (int)hw);
  const int64_t gcols = (int64_t)(g1 - g0) * s.P;
  const int kcb = gemm::balanced_kc(gcols);
  for (int64_t k0 = 0; k0 < gcols; k0 += kcb) {
    const int kc = (int)std::min<int64_t>(kcb, gcols - k0);
    // A = dout[OC, pixels] packed as MR-row panels (transposing copies).
    for (int kk = 0; kk < kc;) {
      const int64_t g = k0 + kk;
      const int nl = (int)(g / s.P), p = (int)(g % s.P);
      const int len = (int)std::min<int64_t>(s.P - p, kc - kk);
      for (int oc0 = 0; oc0 < OC; oc0 += MR) {
        float* d = w.Ap + (int64_t)(oc0 / MR) * kc * MR + (int64_t)kk * MR;
        const int mr = std::min(MR, OC - oc0);
        gemm::transpose_copy(d, MR, dg + ((int64_t)nl * OC + oc0) * s.P + p, s.P, mr, len);
        for (int i = mr; i < MR; ++i)
          for (int l = 0; l < len; ++l) d[(int64_t)l * MR + i] = 0.0f;
      }
      kk += len;
    }
    // B = colT[pixels, k'], one panel at a time (written and consumed in L1).
    for (int kk = 0; kk < kc; ++kk) {
      const int64_t g = k0 + kk;
      const int nl = (int)(g / s.P), p = (int)(g % s.P);
      w.pix[kk] = {nl, (p / s.OW) * s.stride - s.pad, (p % s.OW) * s.stride - s.pad};
    }
    for (int jp = 0; jp < pl.npanels; ++jp) {
      const int nr = std::min(NR, K - jp * NR);
      if (nr < NR) zero_panel_tail(w.Bpanel, nr);
      for (int kk = 0; kk < kc; ++kk) {
        const Pix& q = w.pix[kk];
        const float* img = w.inpT + q.n * chw;
        float* d = w.Bpanel + (int64_t)kk * NR;
        for (const KRun& r : pl.pruns[jp]) {
          const int ih = q.ih0 + r.kh, iw = q.iw0 + r.kw;
          if (ih >= 0 && ih < s.H && iw >= 0 && iw < s.W)
            copy_floats(d + r.off, img + ((int64_t)ih * s.W + iw) * C + r.c0, r.len);
          else
            zero_floats(d + r.off, r.len);
        }
      }
      gemm::panel_kernel(OC, nr, kc, w.Ap, (int64_t)kc * MR, w.Bpanel, dW + jp * NR, K, 1.0f, first ? 0.0f : 1.0f);
    }
    first = false;
  }
}

// Small depth (K < NR: first layers with 1 or 3 input channels). A single,
// mostly empty B panel would waste the register tile, and the channel runs
// of colT are 1-3 floats long. Instead: dot products along the pixels, rows
// of the plain im2col matrix of one image against rows of dout, in blocks of
// 4 output channels x 3 depth rows (12 accumulators, 7 loads per 12 FMAs).
void dw_group_small(float* dW, bool& first, const float* dg, const float* inp, int g0, int g1, const BwdPlan& pl,
                    BwdScratch& w) {
  const ConvShape& s = pl.s;
  const int C = s.C, OC = s.OC, K = (int)s.K, khw = s.KH * s.KW, P = (int)s.P;
  const int ldp = (int)round_up(P, 16);
  const int64_t hw = (int64_t)s.H * s.W, chw = (int64_t)C * hw;
  float* col = w.col;
  for (int n = g0; n < g1; ++n) {
    // Plain im2col of image n: row k = (c, kh, kw), P pixels, zero tail to ldp.
    for (int k = 0; k < K; ++k) {
      const int c = k / khw, kh = k % khw / s.KW, kw = k % s.KW;
      const float* plane = inp + n * chw + c * hw;
      float* row = col + (int64_t)k * ldp;
      for (int oh = 0; oh < s.OH; ++oh) {
        float* d = row + oh * s.OW;
        const int ih = oh * s.stride + kh - s.pad;
        if (ih < 0 || ih >= s.H) {
          std::memset(d, 0, sizeof(float) * s.OW);
          continue;
        }
        const float* src = plane + (int64_t)ih * s.W;
        for (int ow = 0; ow < s.OW; ++ow) {
          const int iw = ow * s.stride + kw - s.pad;
          d[ow] = (iw >= 0 && iw < s.W) ? src[iw] : 0.0f;
        }
      }
      for (int p = P; p < ldp; ++p) row[p] = 0.0f;
    }
    const float* dn = dg + (int64_t)(n - g0) * OC * P;
    for (int oc0 = 0; oc0 < OC; oc0 += 4)
      for (int k0 = 0; k0 < K; k0 += 3) {
        // Rows past the edge alias row oc0 / k0; their sums are dropped.
        const float* a[4];
        const float* b[3];
        for (int i = 0; i < 4; ++i) a[i] = dn + (int64_t)(oc0 + i < OC ? oc0 + i : oc0) * P;
        for (int j = 0; j < 3; ++j) b[j] = col + (int64_t)(k0 + j < K ? k0 + j : k0) * ldp;
        float sum[4][3];
#if defined(__AVX512F__)
        __m512 acc[4][3];
        for (int i = 0; i < 4; ++i)
          for (int j = 0; j < 3; ++j) acc[i][j] = _mm512_setzero_ps();
        for (int p = 0; p < P; p += 16) {
          // dout rows are not padded: mask the tail. col rows are (zeros).
          const __mmask16 m = (__mmask16)(P - p >= 16 ? 0xFFFF : (1u << (P - p)) - 1);
          const __m512 b0 = _mm512_load_ps(b[0] + p), b1 = _mm512_load_ps(b[1] + p), b2 = _mm512_load_ps(b[2] + p);
          for (int i = 0; i < 4; ++i) {
            const __m512 av = _mm512_maskz_loadu_ps(m, a[i] + p);
            acc[i][0] = _mm512_fmadd_ps(av, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(av, b1, acc[i][1]);
            acc[i][2] = _mm512_fmadd_ps(av, b2, acc[i][2]);
          }
        }
        for (int i = 0; i < 4; ++i)
          for (int j = 0; j < 3; ++j) sum[i][j] = hsum(acc[i][j]);
#elif defined(__AVX2__) && defined(__FMA__)
        // 12 ymm accumulators + 3 B vectors + 1 A vector: all 16 registers.
        __m256 acc[4][3];
        for (int i = 0; i < 4; ++i)
          for (int j = 0; j < 3; ++j) acc[i][j] = _mm256_setzero_ps();
        for (int p = 0; p < P; p += 8) {
          const __m256i m = vec::first_lanes8(P - p);
          const __m256 b0 = _mm256_load_ps(b[0] + p), b1 = _mm256_load_ps(b[1] + p), b2 = _mm256_load_ps(b[2] + p);
          for (int i = 0; i < 4; ++i) {
            const __m256 av = _mm256_maskload_ps(a[i] + p, m);
            acc[i][0] = _mm256_fmadd_ps(av, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(av, b1, acc[i][1]);
            acc[i][2] = _mm256_fmadd_ps(av, b2, acc[i][2]);
          }
        }
        for (int i = 0; i < 4; ++i)
          for (int j = 0; j < 3; ++j) sum[i][j] = hsum(acc[i][j]);
#else
        for (int i = 0; i < 4; ++i)
          for (int j = 0; j < 3; ++j) {
            float t = 0.0f;
            for (int p = 0; p < P; ++p) t += a[i][p] * b[j][p];
            sum[i][j] = t;
          }
#endif
        for (int i = 0; i < 4 && oc0 + i < OC; ++i)
          for (int j = 0; j < 3 && k0 + j < K; ++j) {
            const int k = k0 + j;
            float& d = dW[(int64_t)(oc0 + i) * K + (k % khw) * C + k / khw];  // k' = tap * C + c
            d = first ? sum[i][j] : d + sum[i][j];
          }
      }
    first = false;
  }
}

}  // namespace

void conv2d_backward_impl(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                          const float* weight, const ConvShape& s, const DoutProducer* make_dout) {
  const int C = s.C, OC = s.OC, khw = s.KH * s.KW, K = (int)s.K;
  if (s.N <= 0) {
    if (dweight) std::memset(dweight, 0, sizeof(float) * (size_t)OC * K);
    if (dbias) std::memset(dbias, 0, sizeof(float) * (size_t)OC);
    return;
  }
  if (dbias && dout)
    parallel_for(OC, 1, [&](int64_t o0, int64_t o1) {
      for (int64_t oc = o0; oc < o1; ++oc) {
        double sum = 0;
        for (int n = 0; n < s.N; ++n) add_sum(dout + ((int64_t)n * OC + oc) * s.P, s.P, sum);
        dbias[oc] = (float)sum;
      }
    });
  if (!dinp && !dweight) return;

  BwdPlan pl(s);
  // About 256 KiB of dout per group: it is read from L2 by both gradients.
  pl.G = (int)std::max<int64_t>(1, 65536 / ((int64_t)OC * s.P));
  ScratchBuffer wbuf(dinp ? (size_t)round_up(K, MR) * OC : 0);
  if (dinp) {
    gemm::pack_A(wbuf.data(), (int64_t)OC * MR, weight, K, true, K, OC);
    pl.WTp = wbuf.data();
    // Column sub-chunks: the packed dout block (OC x cols) stays in L2 while
    // dcol rows are produced one channel block (cb*khw x cols) at a time.
    pl.sub = (int)std::max<int64_t>(NR, std::min<int64_t>(32 * NR, kChunkFloats / 2 / OC / NR * NR));
    // Channel blocks are whole multiples of MR channels, so every block starts
    // on an A panel boundary (row c0*khw is a multiple of MR).
    pl.cb = (int)std::max<int64_t>(1, kChunkFloats / 2 / ((int64_t)pl.sub * khw * MR)) * MR;
    pl.cb = (int)std::min<int64_t>(pl.cb, round_up(C, MR));
    pl.kcb = gemm::balanced_kc(OC);
    pl.npc = (int)gemm::ceil_div(OC, pl.kcb);
    pl.vec = vector_taps(s);
  }
  if (dweight) {
    pl.small_k = K < NR;
    pl.npanels = (int)gemm::ceil_div(K, NR);
    pl.pruns.resize(pl.npanels);
    for (int tap = 0; tap < khw; ++tap)
      for (int c0 = 0; c0 < C;) {
        const int kp = tap * C + c0;
        const int len = std::min(C - c0, NR - kp % NR);
        pl.pruns[kp / NR].push_back({tap / s.KW, tap % s.KW, c0, len, kp % NR});
        c0 += len;
      }
  }
  // Static image ranges, one per thread: the weight gradient keeps a partial
  // sum per range, added in range order (fixed for a given thread count).
  const int parts = (int)std::min<int64_t>(num_threads(), s.N);
  const int64_t wsize = (int64_t)OC * K;
  ScratchBuffer pbuf(dweight ? (size_t)parts * wsize : 0);
  float* partial = pbuf.data();
  const int64_t chw = (int64_t)C * s.H * s.W;

  parallel_for(parts, 1, [&](int64_t p0, int64_t p1) {
    BwdScratch w;
    const int64_t gdout = (int64_t)pl.G * OC * s.P;
    ScratchBuffer dbuf(make_dout ? (size_t)gdout : 0);
    ScratchBuffer bbuf(dinp ? (size_t)pl.npc * gemm::ceil_div(pl.sub, NR) * KC * NR : 0);
    ScratchBuffer cbuf(dinp ? (size_t)pl.cb * khw * round_up(pl.sub, 16) + 32 : 0);
    ScratchBuffer tbuf(dweight ? (size_t)pl.G * chw : 0);
    ScratchBuffer abuf(dweight ? (size_t)round_up(OC, MR) * KC : 0);
    ScratchBuffer pnbuf(dweight ? (size_t)KC * NR : 0);
    ScratchBuffer colbuf(dweight && pl.small_k ? (size_t)K * round_up(s.P, 16) : 0);
    w.col = colbuf.data();
    w.Bp = bbuf.data();
    w.bblock = dinp ? gemm::ceil_div(pl.sub, NR) * KC * NR : 0;
    // dcol has a 16-float margin on both sides: gather loads may start a few
    // lanes before a row's first column or end after its last (masked off).
    w.dcol = cbuf.data() + 16;
    w.inpT = tbuf.data();
    w.Ap = abuf.data();
    w.Bpanel = pnbuf.data();
    w.pix.resize(KC);
    for (int64_t part = p0; part < p1; ++part) {
      const int n0 = (int)(s.N * part / parts), n1 = (int)(s.N * (part + 1) / parts);
      bool first = true;
      for (int g0 = n0; g0 < n1; g0 += pl.G) {
        const int g1 = std::min(n1, g0 + pl.G);
        const float* dg = dout + (int64_t)g0 * OC * s.P;
        if (make_dout) {
          (*make_dout)(dbuf.data(), g0, g1);
          dg = dbuf.data();
        }
        if (dinp) dinp_group(dinp, dg, g0, g1, pl, w);
        if (dweight && pl.small_k)
          dw_group_small(partial + part * wsize, first, dg, inp, g0, g1, pl, w);
        else if (dweight)
          dw_group(partial + part * wsize, first, dg, inp, g0, g1, pl, w);
      }
    }
  });
  if (!dweight) return;
  // Sum the partials in order and reorder k' = (kh, kw, c) to (c, kh, kw).
  parallel_for(OC, 1, [&](int64_t o0, int64_t o1) {
    for (int64_t oc = o0; oc < o1; ++oc)
      for (int c = 0; c < C; ++c)
        for (int tap = 0; tap < khw; ++tap) {
          float v = 0.0f;
          for (int part = 0; part < parts; ++part) v += partial[part * wsize + oc * K + tap * C + c];
          dweight[(oc * C + c) * khw + tap] = v;
        }
  });
}

}  // namespace nn

void conv2d_forward(float* out, const float* inp, const float* weight, const float* bias, int N, int C, int H,
                    int W, int OC, int KH, int KW, int stride, int pad) {
  nn::conv2d_forward_impl(out, inp, weight, bias, nn::make_conv_shape(N, C, H, W, OC, KH, KW, stride, pad), false,
                          nullptr, nullptr);
}

void conv2d_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int N, int C, int H, int W, int OC, int KH, int KW, int stride, int pad) {
  nn::conv2d_backward_impl(dinp, dweight, dbias, dout, inp, weight,
                           nn::make_conv_shape(N, C, H, W, OC, KH, KW, stride, pad));
}

}  // namespace encsec
