// Median filters over odd square windows, borders replicated (the edge pixel repeated, as
// cv2.medianBlur and numpy 'edge'). Single source for the CPU, CUDA and CuPy backends.
//
// 3x3 and 5x5: branch-free min/max networks that vectorise over columns. Every column of the
// window is sorted first (a column is shared by the w pixels of a row that see it, so the CPU
// sorts it once), then a selection network on the sorted columns returns the median:
//  - 3x3: med3(max of the column minima, med3 of the middles, min of the maxima): with rows
//    and columns sorted, the median is the median of the anti-diagonal.
//  - 5x5: Batcher's odd-even merge of the five sorted columns ((c0 c1), (c2 c3), then c4 with
//    (c0 c1), then the two halves), pruned backwards to the comparisons the 13th element depends on, less those that
//    the sorted columns make redundant: 74 compare steps (124 min/max), checked exhaustively on
//    every 0-1 input with sorted columns (0-1 principle) and against numpy on random data.
// Larger windows: Huang's sliding histogram (Huang, Yang & Tang 1979) of the values quantised
// to 256 levels between the smallest and largest value in reach, which finds the bin holding
// the median in O(w) per pixel. The exact value is then recovered inside that bin: its few
// values gathered and selected, or, when the bin is crowded, a radix selection over the window
// on order-preserving 32-bit keys. So every size returns the exact median, bit for bit.
#pragma once
#include "bilateral.cuh"

namespace usfast {
namespace k {

// ---- sorting networks ---------------------------------------------------------------------------
// Compare-exchange: a <- min(a, b), b <- max(a, b).
USFAST_HD_FLAT void cmpx(float& a, float& b) {
  const float t = fmin_(a, b);
  b = fmax_(a, b);
  a = t;
}
USFAST_HD_FLAT float med3(float a, float b, float c) { return fmax_(fmin_(a, b), fmin_(fmax_(a, b), c)); }

// Sort 3 (resp. 5) values ascending in place: one column of the window.
USFAST_HD_FLAT void sort3(float& v0, float& v1, float& v2) {
  cmpx(v0, v1);
  cmpx(v1, v2);
  cmpx(v0, v1);
}
USFAST_HD_FLAT void sort5(float& v0, float& v1, float& v2, float& v3, float& v4) {
  cmpx(v0, v1); cmpx(v3, v4); cmpx(v2, v4); cmpx(v2, v3); cmpx(v0, v3);
  cmpx(v0, v2); cmpx(v1, v4); cmpx(v1, v3); cmpx(v1, v2);
}

// Median of a 3x3 window from its sorted columns: s_i[j] = i-th smallest of column j.
USFAST_HD_FLAT float median9_cols(const float* s0, const float* s1, const float* s2) {
  const float lo = fmax_(fmax_(s0[0], s0[1]), s0[2]);
  const float mid = med3(s1[0], s1[1], s1[2]);
  const float hi = fmin_(fmin_(s2[0], s2[1]), s2[2]);
  return med3(lo, mid, hi);
}

// Median of a 5x5 window from its sorted columns (see the header comment); vJI = s_I[J].
USFAST_HD_FLAT float median25_cols(const float* s0, const float* s1, const float* s2, const float* s3,
                              const float* s4) {
  float v00 = s0[0], v01 = s1[0], v02 = s2[0], v03 = s3[0], v04 = s4[0];
  float v10 = s0[1], v11 = s1[1], v12 = s2[1], v13 = s3[1], v14 = s4[1];
  float v20 = s0[2], v21 = s1[2], v22 = s2[2], v23 = s3[2], v24 = s4[2];
  float v30 = s0[3], v31 = s1[3], v32 = s2[3], v33 = s3[3], v34 = s4[3];
  float v40 = s0[4], v41 = s1[4], v42 = s2[4], v43 = s3[4], v44 = s4[4];
  cmpx(v00, v10); cmpx(v04, v14); cmpx(v04, v10); cmpx(v02, v12); cmpx(v02, v04); cmpx(v12, v10);
  cmpx(v01, v11); cmpx(v03, v13); cmpx(v03, v11); cmpx(v01, v02); cmpx(v03, v04); cmpx(v11, v12);
  cmpx(v13, v10); cmpx(v20, v30); cmpx(v24, v34); cmpx(v24, v30); cmpx(v22, v32); cmpx(v22, v24);
  cmpx(v32, v30); cmpx(v21, v31); cmpx(v23, v33); cmpx(v23, v31); cmpx(v21, v22); cmpx(v23, v24);
  cmpx(v31, v32); cmpx(v33, v30); cmpx(v40, v00); cmpx(v10, v00); cmpx(v44, v04); cmpx(v44, v10);
  cmpx(v04, v00); cmpx(v42, v02); cmpx(v12, v02); cmpx(v42, v44); cmpx(v12, v10); cmpx(v02, v04);
  cmpx(v41, v01); cmpx(v14, v01); cmpx(v11, v14); cmpx(v43, v03); cmpx(v13, v03); cmpx(v43, v11);
  cmpx(v13, v14); cmpx(v03, v01); cmpx(v41, v42); cmpx(v43, v44); cmpx(v11, v12); cmpx(v13, v10);
  cmpx(v14, v02); cmpx(v03, v04); v01 = fmin_(v01, v00); v40 = fmax_(v20, v40);
  v30 = fmin_(v30, v10); v40 = fmax_(v30, v40); v44 = fmax_(v24, v44); v04 = fmin_(v04, v44);
  v04 = fmin_(v04, v40); v42 = fmax_(v22, v42); v02 = fmin_(v02, v42); v32 = fmin_(v32, v12);
  v02 = fmax_(v32, v02); v04 = fmax_(v02, v04); v41 = fmax_(v21, v41); v34 = fmin_(v34, v14);
  v41 = fmax_(v34, v41); v11 = fmax_(v31, v11); v01 = fmin_(v01, v11); v01 = fmin_(v01, v41);
  v43 = fmax_(v23, v43); v03 = fmin_(v03, v43); v33 = fmin_(v33, v13); v03 = fmax_(v33, v03);
  v03 = fmin_(v03, v01); v04 = fmax_(v03, v04);
  return v04;
}

// ---- sliding histogram + exact selection (windows of 7 and more) --------------------------------
constexpr int kRankBins = 256;
constexpr int kRankMaxSize = 255;  // w^2 counts fit the 16-bit histogram

// Scale that maps [lo, hi] onto bins 0..255 (0 when the data are constant).
USFAST_HD float rank_scale(float lo, float hi) {
  const float span = hi - lo;
  return span > 0.f && span < 3e38f ? (float)kRankBins / span : 0.f;
}
// Bin of a value: non-decreasing in v, so each bin holds a contiguous range of values.
USFAST_HD int rank_bin(float v, float lo, float scale) {
  const float t = (v - lo) * scale;
  return t >= 1.f ? (t < (float)(kRankBins - 1) ? (int)t : kRankBins - 1) : 0;  // NaN -> 0
}

// Histogram counts live at hist[bin * hs]. `bin` tracks the median's bin and `below` the number
// of window values in lower bins (Huang's bookkeeping).
USFAST_HD void hist_add(unsigned short* hist, int hs, int key, int delta, int bin, int& below) {
  hist[key * hs] = (unsigned short)(hist[key * hs] + delta);
  if (key < bin) below += delta;
}
// Move `bin` until below <= k < below + hist[bin]: the k-th smallest value (0-based) is in it.
USFAST_HD void hist_seek(const unsigned short* hist, int hs, int k, int& bin, int& below) {
  while (below > k) {
    --bin;
    below -= hist[bin * hs];
  }
  while (below + hist[bin * hs] <= k) {
    below += hist[bin * hs];
    ++bin;
  }
}

// Order-preserving 32-bit keys of floats: a < b  <=>  order_key(a) < order_key(b).
USFAST_HD unsigned order_key(float v) {
  const unsigned u = float_to_bits(v);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
USFAST_HD float from_order_key(unsigned u) {
  return bits_to_float((u & 0x80000000u) ? (u & 0x7fffffffu) : ~u);
}
USFAST_HD int bit_length(unsigned u) {  // u > 0
#if defined(__CUDA_ARCH__)
  return 32 - __clz((int)u);
#else
  return 32 - __builtin_clz(u);
#endif
}

// The j-th smallest (0-based) of n values (n small), by selection: buf is reordered.
USFAST_HD float select_small(float* buf, int n, int j) {
  for (int i = 0; i <= j; ++i) {
    int m = i;
    for (int t = i + 1; t < n; ++t) m = buf[t] < buf[m] ? t : m;
    const float v = buf[m];
    buf[m] = buf[i];
    buf[i] = v;
  }
  return buf[j];
}

// The j-th smallest (0-based) of the window values whose order keys lie in [a, b]: the interval
// is cut into 16 sub-ranges per pass, keeping the one that holds the j-th, until one key
// remains. Each pass shrinks the interval at least 8-fold, so there are at most 11.
template <class Window>
USFAST_HD float select_in_range(const Window& win, int w, unsigned a, unsigned b, int j) {
  while (a < b) {
    const int len = bit_length(b - a);
    const int shift = len > 4 ? len - 4 : 0;
    unsigned cnt[16], mn[16], mx[16];
    for (int t = 0; t < 16; ++t) {
      cnt[t] = 0u;
      mn[t] = 0xffffffffu;
      mx[t] = 0u;
    }
    for (int i = 0; i < w; ++i)
      for (int k = 0; k < w; ++k) {
        const unsigned u = order_key(win.value(i, k));
        if (u >= a && u <= b) {
          const int t = (int)((u - a) >> shift);
          ++cnt[t];
          mn[t] = u < mn[t] ? u : mn[t];
          mx[t] = u > mx[t] ? u : mx[t];
        }
      }
    int t = 0;
    while (t < 15 && j >= (int)cnt[t]) {
      j -= (int)cnt[t];
      ++t;
    }
    a = mn[t];
    b = mx[t];
  }
  return from_order_key(a);
}

// The j-th smallest (0-based) of the n window values in histogram bin `bin`: gathered and
// selected directly when few (the usual case), else by select_in_range on their key interval.
constexpr int kRankGather = 16;
template <class Window>
USFAST_HD float select_in_bin(const Window& win, int w, int bin, int n, int j) {
  if (n <= kRankGather) {
    float buf[kRankGather];
    int m = 0;
    for (int i = 0; i < w; ++i)
      for (int k = 0; k < w; ++k)
        if (win.bin(i, k) == bin && m < kRankGather) buf[m++] = win.value(i, k);
    return select_small(buf, m, j < m ? j : m - 1);
  }
  unsigned a = 0xffffffffu, b = 0u;
  for (int i = 0; i < w; ++i)
    for (int k = 0; k < w; ++k)
      if (win.bin(i, k) == bin) {
        const unsigned u = order_key(win.value(i, k));
        a = u < a ? u : a;
        b = u > b ? u : b;
      }
  return select_in_range(win, w, a, b, j);
}

// Window readers: value(i, k) and bin(i, k) for 0 <= i, k < w. From arrays already extended
// across the border (CPU: values and their bins), or from the image itself with replicated
// borders applied per read (GPU).
struct PaddedWindow {
  const float* v;           // top-left of the window
  const unsigned char* key;  // the bins, same layout
  usf_i64 rs;
  USFAST_HD float value(int i, int k) const { return v[i * rs + k]; }
  USFAST_HD int bin(int i, int k) const { return key[i * rs + k]; }
};
struct ReplicatedWindow {
  const float* img;
  usf_i64 rs;
  int R, C, r0, c0;  // top-left of the window, may lie outside the image
  float lo, scale;
  USFAST_HD float value(int i, int k) const {
    return img[(usf_i64)replicate(r0 + i, R) * rs + replicate(c0 + k, C)];
  }
  USFAST_HD int bin(int i, int k) const { return rank_bin(value(i, k), lo, scale); }
};

}  // namespace k
}  // namespace usfast

#if defined(__CUDACC__)
// 3x3 / 5x5: one block = a 32 x 8 output tile. The tile plus halo is staged with replicated
// borders, each thread sorts one or two of its columns (8 rows x (32 + 2h) columns, rank planes
// in shared memory), then each pixel runs the selection network on its W sorted columns.
namespace usfast {
namespace k {
template <int W>
__device__ __forceinline__ void median_small_tile(const float* x, usf_i64 xfs, usf_i64 xrs,
                                                  float* y, usf_i64 yfs, usf_i64 yrs, int R,
                                                  int C) {
  constexpr int H = W / 2, TW = 32 + 2 * H, TH = 8 + 2 * H;
  __shared__ float tile[TH][TW];
  __shared__ float ranks[W][8][TW];
  const int f = blockIdx.z, tx = threadIdx.x, ty = threadIdx.y;
  const int r0 = blockIdx.y * 8, c0 = blockIdx.x * 32;
  const float* xf = x + f * xfs;
  for (int i = ty; i < TH; i += 8) {
    const usf_i64 sr = (usf_i64)replicate(r0 - H + i, R) * xrs;
    for (int j = tx; j < TW; j += 32) tile[i][j] = xf[sr + replicate(c0 - H + j, C)];
  }
  __syncthreads();
  for (int j = tx; j < TW; j += 32) {
    float v[W];
    for (int i = 0; i < W; ++i) v[i] = tile[ty + i][j];
    if constexpr (W == 3) {
      sort3(v[0], v[1], v[2]);
    } else {
      sort5(v[0], v[1], v[2], v[3], v[4]);
    }
    for (int i = 0; i < W; ++i) ranks[i][ty][j] = v[i];
  }
  __syncthreads();
  const int r = r0 + ty, c = c0 + tx;
  if (r >= R || c >= C) return;
  float m;
  if constexpr (W == 3) {
    m = median9_cols(&ranks[0][ty][tx], &ranks[1][ty][tx], &ranks[2][ty][tx]);
  } else {
    m = median25_cols(&ranks[0][ty][tx], &ranks[1][ty][tx], &ranks[2][ty][tx], &ranks[3][ty][tx],
                      &ranks[4][ty][tx]);
  }
  y[f * yfs + r * yrs + c] = m;
}
}  // namespace k
}  // namespace usfast

extern "C" __global__ void usfast_median3_f32(const float* x, usf_i64 xfs, usf_i64 xrs, float* y,
                                              usf_i64 yfs, usf_i64 yrs, int R, int C) {
  usfast::k::median_small_tile<3>(x, xfs, xrs, y, yfs, yrs, R, C);
}
extern "C" __global__ void usfast_median5_f32(const float* x, usf_i64 xfs, usf_i64 xrs, float* y,
                                              usf_i64 yfs, usf_i64 yrs, int R, int C) {
  usfast::k::median_small_tile<5>(x, xfs, xrs, y, yfs, yrs, R, C);
}

// Windows of 7 and more: one block of 64 threads = 64 columns x 32 rows. The block quantises
// over the range of the pixels it reads, then each thread slides its own histogram (shared
// memory, 256 x 16 bit, interleaved by thread) down its column. Launch with
// grid ((C + 63) / 64, (R + 31) / 32, frames) and block (64, 1, 1).
#define USFAST_MEDIAN_HIST_THREADS 64
#define USFAST_MEDIAN_HIST_ROWS 32
extern "C" __global__ void usfast_median_hist_f32(const float* x, usf_i64 xfs, usf_i64 xrs,
                                                  float* y, usf_i64 yfs, usf_i64 yrs, int R,
                                                  int C, int size) {
  constexpr int NT = USFAST_MEDIAN_HIST_THREADS, TR = USFAST_MEDIAN_HIST_ROWS;
  __shared__ unsigned short hist[usfast::k::kRankBins * NT];
  __shared__ float red_lo[NT], red_hi[NT];
  const int f = blockIdx.z, t = threadIdx.x, h = size / 2;
  const int r0 = blockIdx.y * TR, c0 = blockIdx.x * NT;
  const float* xf = x + f * xfs;
  // range of the pixels this block reads
  const int ra = max(r0 - h, 0), rb = min(r0 + TR + h, R);
  const int ca = max(c0 - h, 0), cb = min(c0 + NT + h, C);
  float lo = 3.4e38f, hi = -3.4e38f;
  for (int r = ra; r < rb; ++r)
    for (int c = ca + t; c < cb; c += NT) {
      const float v = xf[(usf_i64)r * xrs + c];
      lo = fminf(lo, v);
      hi = fmaxf(hi, v);
    }
  red_lo[t] = lo;
  red_hi[t] = hi;
  __syncthreads();
  for (int s = NT / 2; s > 0; s >>= 1) {
    if (t < s) {
      red_lo[t] = fminf(red_lo[t], red_lo[t + s]);
      red_hi[t] = fmaxf(red_hi[t], red_hi[t + s]);
    }
    __syncthreads();
  }
  lo = red_lo[0];
  const float scale = usfast::k::rank_scale(lo, red_hi[0]);
  const int c = c0 + t;
  if (c >= C) return;
  unsigned short* hc = hist + t;
  for (int b = 0; b < usfast::k::kRankBins; ++b) hc[b * NT] = 0;
  const int k = size * size / 2;
  int bin = 0, below = 0;
  const int rend = min(r0 + TR, R);
  for (int r = r0; r < rend; ++r) {
    if (r == r0) {
      for (int i = -h; i <= h; ++i) {
        const float* row = xf + (usf_i64)usfast::k::replicate(r + i, R) * xrs;
        for (int j = -h; j <= h; ++j)
          usfast::k::hist_add(hc, NT, usfast::k::rank_bin(row[usfast::k::replicate(c + j, C)], lo, scale), 1, bin, below);
      }
    } else {
      const float* out_row = xf + (usf_i64)usfast::k::replicate(r - 1 - h, R) * xrs;
      const float* in_row = xf + (usf_i64)usfast::k::replicate(r + h, R) * xrs;
      for (int j = -h; j <= h; ++j) {
        const int cc = usfast::k::replicate(c + j, C);
        usfast::k::hist_add(hc, NT, usfast::k::rank_bin(out_row[cc], lo, scale), -1, bin, below);
        usfast::k::hist_add(hc, NT, usfast::k::rank_bin(in_row[cc], lo, scale), 1, bin, below);
      }
    }
    usfast::k::hist_seek(hc, NT, k, bin, below);
    const usfast::k::ReplicatedWindow win{xf, xrs, R, C, r - h, c - h, lo, scale};
    y[f * yfs + (usf_i64)r * yrs + c] =
        usfast::k::select_in_bin(win, size, bin, hc[bin * NT], k - below);
  }
}
#endif
