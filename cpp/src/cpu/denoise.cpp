// CPU launchers for the denoising filters: OpenMP over rows (or bands of rows) and contiguous,
// vectorised loops over columns that call the per-pixel functions of kernels/nlm.cuh, rank.cuh
// and bilateral.cuh. Frames are first copied into a border-extended buffer so that the inner
// loops need no index rules (the 3x3/5x5 median reads the image directly: its rows are picked
// with the border rule and its sorted columns extended). Scratch buffers are per thread and
// reused across calls.
//
// The hot loops (a band of NLM, a row of the 3x3/5x5 median, a row of the bilateral filter) are
// written once as inline bodies and compiled twice on x86-64 with GCC or Clang: for the build's
// baseline and for x86-64-v4 (AVX-512: twice the lanes, and 32 vector registers, which the 5x5
// median network needs to run without spills). The v4 copy runs where the CPU has it.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "kernels/nlm.cuh"
#include "kernels/rank.cuh"
#include "src/denoise_launch.hpp"

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && !defined(USFAST_NO_V4)
#define USFAST_V4_DISPATCH 1
#define USFAST_TARGET_V4 __attribute__((target("arch=x86-64-v4")))
#define USFAST_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define USFAST_V4_DISPATCH 0
#define USFAST_ALWAYS_INLINE inline
#endif

// Defines NAME (baseline) and NAME##_v4 (x86-64-v4) calling BODY with the same arguments, and
// NAME##_best, which picks one at run time. TPL/TARGS: a template head and its arguments, or
// nothing.
#if USFAST_V4_DISPATCH
#define USFAST_TWO_ISAS(TPL, TARGS, NAME, BODY, PARAMS, ARGS) \
  TPL void NAME PARAMS { BODY TARGS ARGS; }                   \
  TPL USFAST_TARGET_V4 void NAME##_v4 PARAMS { BODY TARGS ARGS; } \
  TPL void NAME##_best PARAMS {                               \
    if (has_v4())                                             \
      NAME##_v4 TARGS ARGS;                                   \
    else                                                      \
      NAME TARGS ARGS;                                        \
  }
#else
#define USFAST_TWO_ISAS(TPL, TARGS, NAME, BODY, PARAMS, ARGS) \
  TPL void NAME##_best PARAMS { BODY TARGS ARGS; }
#endif

namespace usfast {
namespace cpu {

namespace {

#if USFAST_V4_DISPATCH
// USFAST_CPU_BASELINE=1 in the environment keeps the baseline copies (to test them).
bool has_v4() {
  static const bool v4 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                         __builtin_cpu_supports("avx512cd") && !std::getenv("USFAST_CPU_BASELINE");
  return v4;
}
#endif

// OpenMP loop with dynamic chunks: a core that is busy elsewhere then costs only its share
// (a static split makes the whole call wait for the descheduled thread's half).
template <class Body>
void dyn_for(int64_t n, int chunk, const Body& body) {
#pragma omp parallel for schedule(dynamic, chunk) if (n > 1)
  for (int64_t i = 0; i < n; ++i) body(i);
}

template <class T>
T* grow(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

// Frame f of x extended by `pad` pixels on every side with the border rule (reflect-101 or
// replicate) into dst, row stride C + 2 pad.
void extend_frame(const Image<const float>& x, int64_t f, int pad, bool reflect, float* dst) {
  const int R = (int)x.rows, C = (int)x.cols;
  const int64_t ps = C + 2 * pad;
  auto rule = [reflect](int i, int n) { return reflect ? k::reflect101(i, n) : k::replicate(i, n); };
  dyn_for(R + 2 * pad, 16, [&](int64_t i) {
    const float* s = &x.at(f, rule((int)i - pad, R), 0);
    float* d = dst + i * ps;
    for (int j = 0; j < pad; ++j) d[j] = s[rule(j - pad, C)];
#pragma omp simd
    for (int j = 0; j < C; ++j) d[pad + j] = s[j];
    for (int j = C + pad; j < C + 2 * pad; ++j) d[j] = s[rule(j - pad, C)];
  });
}

thread_local std::vector<float> t_frame;  // the extended frame, owned by the calling thread

}  // namespace

// ---- non-local means ---------------------------------------------------------------------------
// Offset-outer with the symmetry w(p, d) = w(p + d, -d): only half the offsets are visited
// (dy > 0, or dy = 0 and dx > 0), and each weight is added at p (neighbour p + d) and at p + d
// (neighbour p). So p also runs over the pixels just outside the image whose neighbour p + d is
// inside. Rows of p are cut into bands of at least d rows; a band sums into its own block of
// accumulators (its rows, the d rows below, and d columns either side), so bands run in any
// order with no barrier, and a last pass adds each block's d overflow rows to the next band's.
// Within a band, for each offset, the patch-height column sums V are running sums down the rows
// (restarted at each band, which bounds the rounding drift) and the patch sums are P
// consecutive V. PW = the patch width when known at compile time (the column loop then
// vectorises with the P sums unrolled), 0 for any width.
namespace {

struct NlmFrame {
  const float* pad;  // input extended by reach = o + d, row stride ps
  int64_t ps;
  int64_t as;        // row stride of the accumulator blocks (C + 2d: columns -d .. C+d-1)
  int R, C, o, d;
  float inv_p2, two_sigma2, inv_h2;
};

template <int PW>
USFAST_ALWAYS_INLINE void nlm_band_body(const NlmFrame& F, int r0, int r1, float* num, float* den,
                                        float* V, float* H) {
  const int o = F.o, d = F.d, P = PW > 0 ? PW : 2 * o + 1, reach = o + d;
  const int64_t ps = F.ps, as = F.as;
  for (int dy = 0; dy <= d; ++dy) {
    for (int dx = dy == 0 ? 1 : -d; dx <= d; ++dx) {
      const int64_t sh = dy * ps + dx;
      const int clo = dx > 0 ? -dx : 0, W = F.C + (dx > 0 ? dx : -dx);  // p: clo .. clo+W-1
      const int VW = W + 2 * o;
      for (int r = r0; r < r1; ++r) {
        // V[j] <-> column clo - o + j, summed over the patch rows r - o .. r + o
        if (r == r0) {
          const float* a = F.pad + (int64_t)(r - o + reach) * ps + (clo - o + reach);
#pragma omp simd
          for (int j = 0; j < VW; ++j) V[j] = k::sqdiff(a[j], a[j + sh]);
          for (int i = 1; i < P; ++i) {
            a += ps;
#pragma omp simd
            for (int j = 0; j < VW; ++j) V[j] += k::sqdiff(a[j], a[j + sh]);
          }
        } else {
          const float* an = F.pad + (int64_t)(r + o + reach) * ps + (clo - o + reach);
          const float* ao = an - (int64_t)P * ps;
#pragma omp simd
          for (int j = 0; j < VW; ++j)
            V[j] += k::sqdiff(an[j], an[j + sh]) - k::sqdiff(ao[j], ao[j + sh]);
        }
        if constexpr (PW == 0) {
#pragma omp simd
          for (int c = 0; c < W; ++c) H[c] = V[c];
          for (int m = 1; m < P; ++m) {
#pragma omp simd
            for (int c = 0; c < W; ++c) H[c] += V[c + m];
          }
        }
        const float* up = F.pad + (int64_t)(r + reach) * ps + (clo + reach);  // x[p]
        const float* uq = up + sh;                                            // x[p + d]
        float* np_ = num + (int64_t)(r - r0) * as + (clo + d);
        float* dp = den + (int64_t)(r - r0) * as + (clo + d);
        float* nq = np_ + dy * as + dx;
        float* dq = dp + dy * as + dx;
        auto weight = [&](int c) {
          float ssd;
          if constexpr (PW > 0) {
            ssd = V[c];
            for (int m = 1; m < PW; ++m) ssd += V[c + m];
          } else {
            ssd = H[c];
          }
          return k::nlm_weight(ssd, F.inv_p2, F.two_sigma2, F.inv_h2);
        };
        if (dy > 0) {  // p's row and p + d's row are different rows of the block
#pragma omp simd
          for (int c = 0; c < W; ++c) {
            const float w = weight(c);
            np_[c] += w * uq[c];
            dp[c] += w;
            nq[c] += w * up[c];
            dq[c] += w;
          }
        } else {  // same row, dx apart: two passes, so no lane writes what another reads
#pragma omp simd
          for (int c = 0; c < W; ++c) {
            const float w = weight(c);
            H[c] = w;
            np_[c] += w * uq[c];
            dp[c] += w;
          }
#pragma omp simd
          for (int c = 0; c < W; ++c) {
            nq[c] += H[c] * up[c];
            dq[c] += H[c];
          }
        }
      }
    }
  }
}

#define USFAST_NLM_PARAMS \
  (const NlmFrame& F, int r0, int r1, float* num, float* den, float* V, float* H)
USFAST_TWO_ISAS(template <int PW>, <PW>, nlm_band, nlm_band_body, USFAST_NLM_PARAMS,
                (F, r0, r1, num, den, V, H))

void nlm_band_any USFAST_NLM_PARAMS {
  switch (2 * F.o + 1) {
    case 3: nlm_band_best<3>(F, r0, r1, num, den, V, H); break;
    case 5: nlm_band_best<5>(F, r0, r1, num, den, V, H); break;
    case 7: nlm_band_best<7>(F, r0, r1, num, den, V, H); break;
    case 9: nlm_band_best<9>(F, r0, r1, num, den, V, H); break;
    case 11: nlm_band_best<11>(F, r0, r1, num, den, V, H); break;
    default: nlm_band_best<0>(F, r0, r1, num, den, V, H);
  }
}
#undef USFAST_NLM_PARAMS

thread_local std::vector<float> t_acc;
constexpr int kNlmBand = 32;  // rows; 16..48 measured within 5 % at 512 x 512

}  // namespace

void nlm(Image<const float> x, Image<float> y, int o, int d, float inv_p2, float two_sigma2,
         float inv_h2) {
  const int R = (int)x.rows, C = (int)x.cols, reach = o + d;
  const int band = std::max(kNlmBand, d);
  const int nbands = (R + d + band - 1) / band;  // p rows -d .. R-1
  NlmFrame F{nullptr, C + 2 * reach, C + 2 * d, R, C, o, d, inv_p2, two_sigma2, inv_h2};
  const int64_t blk = (int64_t)(band + d) * F.as;  // one band's num (then den) block
  const int64_t vlen = C + 2 * d + 2 * o;
  float* pad = grow(t_frame, (size_t)(R + 2 * reach) * F.ps);
  float* acc = grow(t_acc, (size_t)2 * blk * nbands);
  F.pad = pad;
  for (int64_t f = 0; f < x.frames; ++f) {
    extend_frame(x, f, reach, true, pad);
#pragma omp parallel if (nbands > 1)
    {
      static thread_local std::vector<float> scratch;
      float* V = grow(scratch, (size_t)2 * vlen);
#pragma omp for schedule(dynamic, 1)
      for (int b = 0; b < nbands; ++b) {
        const int r0 = -d + b * band, r1 = std::min(R, r0 + band);
        float* num = acc + 2 * blk * b;
        std::fill(num, num + 2 * blk, 0.f);
        nlm_band_any(F, r0, r1, num, num + blk, V, V + vlen);
      }
    }
    dyn_for(R, 16, [&](int64_t r) {
      // block b holds p rows r0 .. r0 + band + d - 1, r0 = -d + b band
      const int b = (int)((r + d) / band), lr = (int)(r + d) - b * band;
      const float* nr = acc + 2 * blk * b + lr * F.as + d;
      const float* dr = nr + blk;
      const bool carry = lr < d && b > 0;  // rows the previous band also reached
      const float* np_ = carry ? nr - 2 * blk + band * F.as : nr;
      const float* dp = np_ + blk;
      const float k = carry ? 1.f : 0.f;
      const float* u = pad + (r + reach) * F.ps + reach;
      float* yr = &y.at(f, r, 0);
#pragma omp simd
      for (int c = 0; c < C; ++c)  // + the offset 0, weight 1
        yr[c] = (nr[c] + k * np_[c] + u[c]) / (dr[c] + k * dp[c] + 1.f);
    });
  }
}

// ---- median ------------------------------------------------------------------------------------
namespace {

// 3x3 / 5x5, no border copy: per output row, every column of the window is sorted once from the
// W input rows p[0..W) (edge rows repeated) into rank rows s_i (stride C + W - 1), whose ends
// repeat the edge columns' sorted values; then the selection network per pixel on W
// consecutive sorted columns.
template <int W>
USFAST_ALWAYS_INLINE void median_row_body(const float* const* p, float* s, int C, float* yr) {
  constexpr int H = W / 2;
  const int64_t SW = C + 2 * H;
  if constexpr (W == 3) {
    float *s0 = s + H, *s1 = s0 + SW, *s2 = s1 + SW;
    const float *p0 = p[0], *p1 = p[1], *p2 = p[2];
#pragma omp simd
    for (int j = 0; j < C; ++j) {
      float a = p0[j], b = p1[j], c = p2[j];
      k::sort3(a, b, c);
      s0[j] = a;
      s1[j] = b;
      s2[j] = c;
    }
    for (int t = 0; t < W; ++t) {
      float* st = s + t * SW;
      st[0] = st[1];
      st[C + 1] = st[C];
    }
#pragma omp simd
    for (int c = 0; c < C; ++c) yr[c] = k::median9_cols(s + c, s + SW + c, s + 2 * SW + c);
  } else {
    float *s0 = s + H, *s1 = s0 + SW, *s2 = s1 + SW, *s3 = s2 + SW, *s4 = s3 + SW;
    const float *p0 = p[0], *p1 = p[1], *p2 = p[2], *p3 = p[3], *p4 = p[4];
#pragma omp simd
    for (int j = 0; j < C; ++j) {
      float a = p0[j], b = p1[j], c = p2[j], d = p3[j], e = p4[j];
      k::sort5(a, b, c, d, e);
      s0[j] = a;
      s1[j] = b;
      s2[j] = c;
      s3[j] = d;
      s4[j] = e;
    }
    for (int t = 0; t < W; ++t) {
      float* st = s + t * SW;
      st[0] = st[1] = st[2];
      st[C + 3] = st[C + 2] = st[C + 1];
    }
#pragma omp simd
    for (int c = 0; c < C; ++c)
      yr[c] = k::median25_cols(s + c, s + SW + c, s + 2 * SW + c, s + 3 * SW + c, s + 4 * SW + c);
  }
}
USFAST_TWO_ISAS(template <int W>, <W>, median_row, median_row_body,
                (const float* const* p, float* s, int C, float* yr), (p, s, C, yr))

template <int W>
void median_small(const Image<const float>& x, const Image<float>& y) {
  constexpr int H = W / 2;
  const int R = (int)x.rows, C = (int)x.cols;
  const int64_t n = x.frames * R;
#pragma omp parallel if (n * C > 32768)
  {
    static thread_local std::vector<float> rank_rows;
    float* s = grow(rank_rows, (size_t)W * (C + 2 * H));
#pragma omp for schedule(dynamic, 16)
    for (int64_t i = 0; i < n; ++i) {
      const int64_t f = i / R;
      const int r = (int)(i % R);
      const float* p[W];
      for (int t = 0; t < W; ++t) p[t] = &x.at(f, k::replicate(r - H + t, R), 0);
      median_row_best<W>(p, s, C, &y.at(f, r, 0));
    }
  }
}

thread_local std::vector<unsigned char> t_keys;

// Bit 8t+7 set where byte t of w equals b (no carries cross bytes: each byte's low 7 bits + 0x7f
// stays below 0x100).
inline uint64_t bytes_equal(uint64_t w, unsigned b) {
  const uint64_t v = w ^ (0x0101010101010101ull * b);
  return ~(((v & 0x7f7f7f7f7f7f7f7full) + 0x7f7f7f7f7f7f7f7full) | v) & 0x8080808080808080ull;
}

// Larger windows: Huang's histogram slid along each row over the extended frame's bins; the
// exact value by gathering the few values of the median's bin (8 bins compared per step), or by
// select_in_bin when the bin is crowded.
void median_hist(const Image<const float>& x, const Image<float>& y, int64_t f, int size,
                 const float* pad) {
  const int h = size / 2, R = (int)x.rows, C = (int)x.cols;
  const int64_t ps = C + 2 * h, n = (int64_t)(R + 2 * h) * ps;
  // quantisation range: the frame's extremes (the extended frame holds no other values)
  float lo = pad[0], hi = pad[0];
#pragma omp parallel for schedule(dynamic, 16384) reduction(min : lo) reduction(max : hi) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    lo = k::fmin_(lo, pad[i]);
    hi = k::fmax_(hi, pad[i]);
  }
  const float scale = k::rank_scale(lo, hi);
  unsigned char* keys = grow(t_keys, (size_t)n + 8);  // + 8: whole-word reads past the end
  dyn_for(R + 2 * h, 16, [&](int64_t i) {
    for (int64_t j = 0; j < ps; ++j) keys[i * ps + j] = (unsigned char)k::rank_bin(pad[i * ps + j], lo, scale);
  });
  const int kth = size * size / 2;
  const uint64_t tail = size % 8 ? (1ull << (8 * (size % 8))) - 1 : ~0ull;  // last word's bytes
  dyn_for(R, 4, [&](int64_t r) {
    unsigned short hist[k::kRankBins] = {};
    int bin = 0, below = 0;
    const unsigned char* kr = keys + r * ps;
    const float* vr = pad + r * ps;
    for (int i = 0; i < size; ++i)
      for (int j = 0; j < size; ++j) k::hist_add(hist, 1, kr[i * ps + j], 1, bin, below);
    float* yr = &y.at(f, r, 0);
    for (int c = 0; c < C; ++c) {
      if (c > 0) {
        for (int i = 0; i < size; ++i) {
          k::hist_add(hist, 1, kr[i * ps + c - 1], -1, bin, below);
          k::hist_add(hist, 1, kr[i * ps + c - 1 + size], 1, bin, below);
        }
      }
      k::hist_seek(hist, 1, kth, bin, below);
      const int nb = hist[bin], j = kth - below;
      if (nb > k::kRankGather) {
        yr[c] = k::select_in_bin(k::PaddedWindow{vr + c, kr + c, ps}, size, bin, nb, j);
        continue;
      }
      float buf[k::kRankGather];
      int m = 0;
      for (int i = 0; i < size && m < nb; ++i) {
        const unsigned char* kk = kr + i * ps + c;
        const float* vv = vr + i * ps + c;
        for (int w0 = 0; w0 < size; w0 += 8) {
          uint64_t word;
          __builtin_memcpy(&word, kk + w0, 8);
          uint64_t hit = bytes_equal(word, (unsigned)bin) & (w0 + 8 <= size ? ~0ull : tail);
          while (hit) {
            buf[m++] = vv[w0 + (__builtin_ctzll(hit) >> 3)];
            hit &= hit - 1;
          }
        }
      }
      yr[c] = k::select_small(buf, m, j);
    }
  });
}

}  // namespace

void median(Image<const float> x, Image<float> y, int size) {
  if (size == 3) return median_small<3>(x, y);
  if (size == 5) return median_small<5>(x, y);
  const int h = size / 2;
  float* pad = grow(t_frame, (size_t)(x.rows + 2 * h) * (x.cols + 2 * h));
  for (int64_t f = 0; f < x.frames; ++f) {
    extend_frame(x, f, h, false, pad);
    median_hist(x, y, f, size, pad);
  }
}

// ---- bilateral ---------------------------------------------------------------------------------
// Per row, taps outer and columns inner (a contiguous vector loop per tap), accumulating in the
// same tap order as bilateral_px. rows[t], t = 0 .. 2 radius: the input rows r - radius + t,
// extended across the border, each pointing at column 0.
namespace {
USFAST_ALWAYS_INLINE void bilateral_row_body(const float* const* rows, int C, int radius,
                                             float color_coef, float space_coef, float* num,
                                             float* yr) {
  float* den = num + C;
  const float* p = rows[radius];
  for (int c = 0; c < 2 * C; ++c) num[c] = 0.f;
  for (int dy = -radius; dy <= radius; ++dy) {
    const int hw = k::circle_half_width(dy, radius);
    for (int dx = -hw; dx <= hw; ++dx) {
      const float* q = rows[dy + radius] + dx;
      const float e = space_coef * (float)(dy * dy + dx * dx);
#pragma omp simd
      for (int c = 0; c < C; ++c) {
        const float v = q[c];
        const float w = k::bilateral_weight(v, p[c], color_coef, e);
        num[c] += w * v;
        den[c] += w;
      }
    }
  }
#pragma omp simd
  for (int c = 0; c < C; ++c) yr[c] = num[c] / den[c];
}
USFAST_TWO_ISAS(, , bilateral_row, bilateral_row_body,
                (const float* const* rows, int C, int radius, float cc, float cs, float* num,
                 float* yr),
                (rows, C, radius, cc, cs, num, yr))

// Row i of the image (any index: reflect-101) extended by `pad` on both sides into d.
void extend_row(const float* s, int C, int pad, float* d) {
  for (int j = 0; j < pad; ++j) d[j] = s[k::reflect101(j - pad, C)];
#pragma omp simd
  for (int j = 0; j < C; ++j) d[pad + j] = s[j];
  for (int j = C + pad; j < C + 2 * pad; ++j) d[j] = s[k::reflect101(j - pad, C)];
}
}  // namespace

void bilateral(Image<const float> x, Image<float> y, int radius, float color_coef,
               float space_coef) {
  const int R = (int)x.rows, C = (int)x.cols, n = 2 * radius + 1;
  const int64_t bs = C + 2 * radius, rows = x.frames * R;
  // No frame copy: each thread keeps a ring of the n extended input rows around its current
  // output row (a few KiB, in cache); moving down one row extends one new input row.
#pragma omp parallel if (rows * C > 16384)
  {
    static thread_local std::vector<float> scratch;
    float* ring = grow(scratch, (size_t)n * bs + 2 * C);
    float* num = ring + (size_t)n * bs;
    const float* ptr[63];  // n = 2 radius + 1 <= 63, the diameter limit
    int64_t last = -2;  // the output row whose window the ring holds
#pragma omp for schedule(dynamic, 8)
    for (int64_t i = 0; i < rows; ++i) {
      const int64_t f = i / R;
      const int r = (int)(i % R);
      auto input = [&](int t) { return &x.at(f, k::reflect101(r - radius + t, R), 0); };
      if (i == last + 1 && r > 0) {  // slide: input row r + radius enters slot (r + 2 radius) % n
        extend_row(input(n - 1), C, radius, ring + ((r + n - 1) % n) * bs);
      } else {
        for (int t = 0; t < n; ++t) extend_row(input(t), C, radius, ring + ((r + t) % n) * bs);
      }
      last = i;
      for (int t = 0; t < n; ++t) ptr[t] = ring + ((r + t) % n) * bs + radius;
      bilateral_row_best(ptr, C, radius, color_coef, space_coef, num, &y.at(f, r, 0));
    }
  }
}

}  // namespace cpu
}  // namespace usfast
