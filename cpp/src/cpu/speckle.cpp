// CPU launchers for speckle reduction: OpenMP over strips of rows, omp-simd over columns, the
// per-pixel math from kernels/localstats.cuh and kernels/diffusion.cuh.
//
// Window sums: a strip keeps the column sums of its current row in double (slid down one row at
// a time, vectorised over columns); each row then gets a prefix sum along the columns, from
// which every window sum is one difference (O(1) per pixel whatever the window).
#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "kernels/diffusion.cuh"
#include "src/cpu/parallel.hpp"
#include "src/speckle_launch.hpp"

#ifdef USFAST_WITH_OPENMP
#include <omp.h>
#endif

namespace usfast {
namespace cpu {
namespace {

int max_threads() {
#ifdef USFAST_WITH_OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

// A strip of rows [r0, r1) of frame f: one work item.
struct Strip {
  int f, r0, r1;
};

// About kStripsPerThread strips per thread (at least kMinStripRows rows each), handed out
// dynamically: a thread that the OS preempts (other work on a small machine) holds up the
// others for one short strip instead of half the image.
constexpr int64_t kStripsPerThread = 4, kMinStripRows = 16;
std::vector<Strip> make_strips(int64_t F, int64_t R) {
  const int64_t want = (kStripsPerThread * max_threads() + F - 1) / F;
  const int64_t per_frame = std::max<int64_t>(1, std::min(want, R / kMinStripRows));
  std::vector<Strip> s;
  s.reserve(size_t(F * per_frame));
  for (int64_t f = 0; f < F; ++f)
    for (int64_t i = 0; i < per_frame; ++i)
      s.push_back({int(f), int(R * i / per_frame), int(R * (i + 1) / per_frame)});
  return s;
}

// Runs body(item, buffers) over the items in parallel; `make` builds one set of buffers per thread.
template <class Make, class Body>
void for_items(int64_t n, const Make& make, const Body& body) {
#pragma omp parallel if (n > 1)
  {
    auto buf = make();
#pragma omp for schedule(dynamic, 1)
    for (int64_t i = 0; i < n; ++i) body(i, buf);
  }
}

// Scratch when the caller gave none: a per-thread buffer that grows and is kept, so that
// repeated calls (one per frame) allocate nothing after the first.
struct HostScratch {
  detail::SpeckleScratch s;
  HostScratch(SpeckleOp op, int64_t F, int64_t R, int64_t C, void* ws) {
    char* base = static_cast<char*>(ws);
    if (!base) {
      thread_local std::unique_ptr<char[]> cache;
      thread_local size_t capacity = 0;
      const size_t need = detail::carve_scratch(op, F, R, C, false, nullptr, nullptr) + 256;
      if (need > capacity) {
        cache.reset(new char[need]);
        capacity = need;
      }
      base = cache.get() + ((256 - reinterpret_cast<uintptr_t>(cache.get()) % 256) % 256);
    }
    detail::carve_scratch(op, F, R, C, false, base, &s);
  }
};

// ---- window sums -----------------------------------------------------------------------------
struct BoxBuf {
  std::vector<double> V, E, inv_nc;
  int C = 0, h = 0, EW = 0;
  BoxBuf(int K, int C_, int h_) : C(C_), h(h_), EW(C_ + 2 * h_ + 1) {
    V.resize(size_t(K) * C);
    E.resize(size_t(K) * EW);
    inv_nc.resize(C);
    for (int c = 0; c < C; ++c) inv_nc[c] = 1.0 / k::clipped_count(c, h, C);
  }
};

// Rows [r0, r1) of frame f: for each row, emit(r, E, EW) gets K extended prefix rows E_k
// (E_k[j + 2h + 1] - E_k[j] = window sum of channel k at column j).
// V_k[c] += sign * channel k of row r (K channels from src).
template <int K, class Src>
void box_add(const Src src, int f, int r, int C, double sign, double* V) {
#pragma omp simd
  for (int c = 0; c < C; ++c)
    for (int k = 0; k < K; ++k) V[k * C + c] += sign * src.ch(f, r, c, k);
}

// Inclusive prefix sums of K rows of C doubles (V[k * C + c] -> P[k * PW + c]) and their totals.
// A sequential sum waits on the adder's latency at every column: four segments summed side by
// side (4 K independent chains), then shifted by the totals before them, run ~4x faster.
template <int K>
void prefix_row(const double* V, int C, double* P, int PW, double* total) {
  constexpr int S = 4;
  if (C < 16 * S) {
    for (int k = 0; k < K; ++k) {
      double a = 0.0;
      for (int c = 0; c < C; ++c) P[k * PW + c] = (a += V[k * C + c]);
      total[k] = a;
    }
    return;
  }
  const int seg = (C + S - 1) / S, last = C - (S - 1) * seg;  // 0 < last <= seg
  double acc[K][S] = {};
  for (int i = 0; i < seg; ++i)
    for (int s = 0; s < S; ++s)
      if (s < S - 1 || i < last)
        for (int k = 0; k < K; ++k) P[k * PW + s * seg + i] = (acc[k][s] += V[k * C + s * seg + i]);
  for (int k = 0; k < K; ++k) {
    double off = 0.0;
    for (int s = 1; s < S; ++s) {
      off += acc[k][s - 1];
      double* q = P + k * PW + s * seg;
      const int n = s < S - 1 ? seg : last;
#pragma omp simd
      for (int i = 0; i < n; ++i) q[i] += off;
    }
    total[k] = off + acc[k][S - 1];
  }
}

template <int K, class Src, class Emit>
void box_strip(const Src& src, int f, int R, int C, int h, int r0, int r1, BoxBuf& b,
               const Emit& emit) {
  double* V = b.V.data();
  double* E = b.E.data();
  const int EW = b.EW;
  std::fill(V, V + size_t(K) * C, 0.0);
  auto add = [&](int r, double sign) { box_add<K>(src, f, r, C, sign, V); };
  for (int r = std::max(0, r0 - h); r <= std::min(R - 1, r0 + h); ++r) add(r, 1.0);
  for (int r = r0; r < r1; ++r) {
    double p[K];
    for (int k = 0; k < K; ++k) std::fill(E + k * EW, E + k * EW + h + 1, 0.0);
    prefix_row<K>(V, C, E + h + 1, EW, p);
    for (int k = 0; k < K; ++k) std::fill(E + k * EW + C + h + 1, E + (k + 1) * EW, p[k]);
    emit(r, E, EW);
    if (r + h + 1 < R) add(r + h + 1, 1.0);
    if (r - h >= 0) add(r - h, -1.0);
  }
}

template <class Emit>
void run_box2(const k::src_sq& src, Image<const float> x, int h, const Emit& emit) {
  const int R = int(x.rows), C = int(x.cols);
  const auto items = make_strips(x.frames, x.rows);
  for_items(int64_t(items.size()), [&] { return BoxBuf(2, C, h); },
            [&](int64_t i, BoxBuf& b) {
              const Strip s = items[size_t(i)];
              box_strip<2>(src, s.f, R, C, h, s.r0, s.r1, b,
                           [&](int r, const double* E, int EW) { emit(s.f, r, E, EW, b); });
            });
}

// ---- Lee and Kuan ----------------------------------------------------------------------------
template <bool Kuan>
void lee_kuan(Image<const float> x, Image<float> y, int h, float cu2) {
  const int R = int(x.rows), C = int(x.cols), w = 2 * h + 1;
  run_box2(k::src_sq{x.data, x.frame_stride, x.row_stride}, x, h,
           [&](int f, int r, const double* E, int EW, const BoxBuf& b) {
             const float* xr = &x.at(f, r, 0);
             float* yr = &y.at(f, r, 0);
             const double inr = 1.0 / k::clipped_count(r, h, R);
             const double* E0 = E;
             const double* E1 = E + EW;
             const double* inc = b.inv_nc.data();
#pragma omp simd
             for (int c = 0; c < C; ++c) {
               const double s0 = E0[c + w] - E0[c], s1 = E1[c + w] - E1[c];
               const double in = inr * inc[c];
               const float m = k::box_mean(s0, in), v = k::box_var(s1, s0, in);
               yr[c] = Kuan ? k::kuan_px(xr[c], m, v, cu2) : k::lee_px(xr[c], m, v, cu2);
             }
           });
}

// ---- Frost -----------------------------------------------------------------------------------
// Columns whose window lies inside the image: the weighted sums run vectorised over copies of the
// window's rows (zero-padded so that every column can be computed alike); the h columns at each
// side are then redone with the clipped window by k::frost_px, the GPU's per-pixel function.
void frost(Image<const float> x, Image<float> y, int h, float k_over_cu2) {
  const int R = int(x.rows), C = int(x.cols), w = 2 * h + 1, PW = C + 2 * h;
  const auto items = make_strips(x.frames, x.rows);
  struct Buf {
    BoxBuf box;
    // pad: w zero-padded rows of PW; pw: (h + 1) x C powers of beta
    std::vector<float> pad, pw, colw, acc, tmp, rows;
    Buf(int C, int h, int PW, int w)
        : box(2, C, h), pad(size_t(w) * PW, 0.f), pw(size_t(h + 1) * C), colw(C), acc(C), tmp(C),
          rows(C) {}
  };
  for_items(int64_t(items.size()), [&] { return Buf(C, h, PW, w); }, [&](int64_t i, Buf& b) {
    const Strip s = items[size_t(i)];
    const int f = s.f;
    // padded row r lives in slot r mod w
    auto load = [&](int r) {
      float* d = b.pad.data() + size_t(((r % w) + w) % w) * PW + h;
      std::memcpy(d, &x.at(f, r, 0), sizeof(float) * C);
    };
    for (int r = std::max(0, s.r0 - h); r < std::min(R, s.r0 + h); ++r) load(r);
    box_strip<2>(k::src_sq{x.data, x.frame_stride, x.row_stride}, f, R, C, h, s.r0, s.r1, b.box,
                 [&](int r, const double* E, int EW) {
                   if (r + h < R) load(r + h);
                   const double inr = 1.0 / k::clipped_count(r, h, R);
                   const double* inc = b.box.inv_nc.data();
                   float* P = b.pw.data();
#pragma omp simd
                   for (int c = 0; c < C; ++c) {
                     const double s0 = E[c + w] - E[c], s1 = E[EW + c + w] - E[EW + c];
                     const double in = inr * inc[c];
                     P[c] = 1.f;
                     P[C + c] = k::frost_beta(k::box_mean(s0, in), k::box_var(s1, s0, in),
                                              k_over_cu2);
                   }
                   for (int p = 2; p <= h; ++p) {
                     const float* a = P + size_t(p - 1) * C;
                     const float* be = P + C;
                     float* o = P + size_t(p) * C;
#pragma omp simd
                     for (int c = 0; c < C; ++c) o[c] = a[c] * be[c];
                   }
                   // normaliser: (sum of row weights inside) x (sum of the column weights)
                   float* colw = b.colw.data();
                   float* acc = b.acc.data();
#pragma omp simd
                   for (int c = 0; c < C; ++c) { colw[c] = 1.f; acc[c] = 0.f; }
                   for (int j = 1; j <= h; ++j) {
                     const float* pj = P + size_t(j) * C;
#pragma omp simd
                     for (int c = 0; c < C; ++c) colw[c] += 2.f * pj[c];
                   }
                   const int i0 = std::max(-h, -r), i1 = std::min(h, R - 1 - r);
                   float* t = b.tmp.data();
                   float* rows = b.rows.data();
#pragma omp simd
                   for (int c = 0; c < C; ++c) rows[c] = 0.f;
                   for (int di = i0; di <= i1; ++di) {
                     // t = sum_dj beta^|dj| x(r + di, c + dj), symmetric pairs share a weight
                     const float* xp = b.pad.data() + size_t((((r + di) % w) + w) % w) * PW + h;
                     const float* pi = P + size_t(di < 0 ? -di : di) * C;
#pragma omp simd
                     for (int c = 0; c < C; ++c) t[c] = xp[c];
                     for (int dj = 1; dj <= h; ++dj) {
                       const float* pj = P + size_t(dj) * C;
#pragma omp simd
                       for (int c = 0; c < C; ++c) t[c] += pj[c] * (xp[c + dj] + xp[c - dj]);
                     }
#pragma omp simd
                     for (int c = 0; c < C; ++c) {
                       acc[c] += pi[c] * t[c];
                       rows[c] += pi[c];
                     }
                   }
                   float* yr = &y.at(f, r, 0);
#pragma omp simd
                   for (int c = 0; c < C; ++c) yr[c] = acc[c] / (rows[c] * colw[c]);
                   const float* xr = &x.at(f, r, 0);
                   for (int c = 0; c < C; c = (c == h - 1 && C - h > h) ? C - h : c + 1)
                     if (c < h || c >= C - h)
                       yr[c] = k::frost_px(xr + c, x.row_stride, i0, i1, std::max(-h, -c),
                                           std::min(h, C - 1 - c), P[C + c]);
                 });
  });
}

}  // namespace

void local_filter(LocalFilter op, Image<const float> x, Image<float> y, int h, float cu2,
                  float damping_over_cu2, void*, size_t) {
  switch (op) {
    case LocalFilter::Lee: lee_kuan<false>(x, y, h, cu2); break;
    case LocalFilter::Kuan: lee_kuan<true>(x, y, h, cu2); break;
    case LocalFilter::Frost: frost(x, y, h, damping_over_cu2); break;
  }
}

// ---- guided filter ---------------------------------------------------------------------------
namespace {
template <int K, class Src>
void guided_ab_pass(const Src& src, int64_t F, int R, int C, int h, float eps, float* ab) {
  const int w = 2 * h + 1;
  const auto items = make_strips(F, R);
  const size_t plane = size_t(F) * R * C;
  for_items(int64_t(items.size()), [&] { return BoxBuf(K, C, h); }, [&](int64_t i, BoxBuf& b) {
    const Strip s = items[size_t(i)];
    box_strip<K>(src, s.f, R, C, h, s.r0, s.r1, b, [&](int r, const double* E, int EW) {
      const double inr = 1.0 / k::clipped_count(r, h, R);
      const double* inc = b.inv_nc.data();
      float* ar = ab + (size_t(s.f) * R + r) * C;
      float* br = ar + plane;
#pragma omp simd
      for (int c = 0; c < C; ++c) {
        double sv[K];
        for (int q = 0; q < K; ++q) sv[q] = E[q * EW + c + w] - E[q * EW + c];
        const double in = inr * inc[c];
        const float mi = k::box_mean(sv[0], in);
        const float mp = K == 2 ? mi : k::box_mean(sv[1], in);
        const float vi = k::box_var(sv[K == 2 ? 1 : 2], sv[0], in);
        const float cv = K == 2 ? vi : k::box_cov(sv[K - 1], sv[0], sv[K == 2 ? 0 : 1], in);
        const float a = k::guided_a(vi, cv, eps);
        ar[c] = a;
        br[c] = k::guided_b(mi, mp, a);
      }
    });
  });
}
}  // namespace

void guided(Image<const float> x, Image<const float> g, Image<float> y, int h, float eps, void* ws,
            size_t) {
  const bool self = g.data == nullptr;
  if (self) g = x;
  const int64_t F = x.frames;
  const int R = int(x.rows), C = int(x.cols), w = 2 * h + 1;
  HostScratch hs(self ? SpeckleOp::Guided : SpeckleOp::GuidedWithGuide, F, R, C, ws);
  float* ab = hs.s.ab;
  if (self)
    guided_ab_pass<2>(k::src_sq{x.data, x.frame_stride, x.row_stride}, F, R, C, h, eps, ab);
  else
    guided_ab_pass<4>(k::src_guide{g.data, x.data, g.frame_stride, g.row_stride, x.frame_stride,
                                   x.row_stride},
                      F, R, C, h, eps, ab);
  const usf_i64 plane = usf_i64(F) * R * C;
  const k::src_pair src{ab, ab + plane, usf_i64(R) * C, C, usf_i64(R) * C, C};
  const auto items = make_strips(F, R);
  for_items(int64_t(items.size()), [&] { return BoxBuf(2, C, h); }, [&](int64_t i, BoxBuf& b) {
    const Strip s = items[size_t(i)];
    box_strip<2>(src, s.f, R, C, h, s.r0, s.r1, b, [&](int r, const double* E, int EW) {
      const double inr = 1.0 / k::clipped_count(r, h, R);
      const double* inc = b.inv_nc.data();
      const float* gr = &g.at(s.f, r, 0);
      float* yr = &y.at(s.f, r, 0);
#pragma omp simd
      for (int c = 0; c < C; ++c) {
        const double in = inr * inc[c];
        yr[c] = k::guided_out_px(gr[c], k::box_mean(E[c + w] - E[c], in),
                                 k::box_mean(E[EW + c + w] - E[EW + c], in));
      }
    });
  });
}

// ---- diffusion (SRAD, DPAD) ------------------------------------------------------------------
namespace {

// Replicate-padded copy of a row (one extra value each side: Neumann west/east neighbours).
inline void pad_row(const float* src, int C, float* d) {
  d[0] = src[0];
  std::memcpy(d + 1, src, sizeof(float) * C);
  d[C + 1] = src[C - 1];
}

int thread_id() {
#ifdef USFAST_WITH_OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

// One iteration of the conservative scheme over frame-strips: coef(f, i, P, n, s, out) fills
// the diffusion coefficients of row i of frame f (P = padded row i, n/s = rows above/below),
// out padded with one copy of its last value; post(f, r, row) sees each result row once written.
template <class Coef, class Post>
void diffusion_pass(Image<const float> src, Image<float> dst, float dt, const Coef& coef,
                    const Post& post) {
  const int R = int(src.rows), C = int(src.cols);
  const auto items = make_strips(src.frames, src.rows);
  struct Buf {
    std::vector<float> p0, p1, c0, c1;
    explicit Buf(int C) : p0(C + 2), p1(C + 2), c0(C + 1), c1(C + 1) {}
  };
  for_items(int64_t(items.size()), [&] { return Buf(C); }, [&](int64_t it, Buf& b) {
    const Strip s = items[size_t(it)];
    const int f = s.f;
    auto row = [&](int r) { return &src.at(f, std::min(std::max(r, 0), R - 1), 0); };
    float *pa = b.p0.data(), *pb = b.p1.data(), *ca = b.c0.data(), *cb = b.c1.data();
    pad_row(row(s.r0), C, pa);
    coef(f, s.r0, pa, row(s.r0 - 1), row(s.r0 + 1), ca);
    for (int r = s.r0; r < s.r1; ++r) {
      const int rn = std::min(r + 1, R - 1);
      pad_row(row(rn), C, pb);
      coef(f, rn, pb, row(rn - 1), row(rn + 1), cb);
      const float* n = row(r - 1);
      const float* so = row(r + 1);
      float* o = &dst.at(f, r, 0);
#pragma omp simd
      for (int c = 0; c < C; ++c)
        o[c] = k::diffusion_step(pa[c + 1], n[c], so[c], pa[c], pa[c + 2], ca[c], cb[c], ca[c + 1],
                                 dt);
      post(f, r, o);
      std::swap(pa, pb);
      std::swap(ca, cb);
    }
  });
}

// The diffusions' iterations (see detail::ping_pong); 0 iterations copy x.
template <class Step>
void iterate(Image<const float> x, Image<float> y, float* tmp, int iterations, const Step& step) {
  detail::ping_pong(x, y, tmp, iterations,
                    [](Image<const float> a, Image<float> b) {
                      for (int64_t f = 0; f < a.frames; ++f)
                        for (int64_t r = 0; r < a.rows; ++r)
                          std::memcpy(&b.at(f, r, 0), &a.at(f, r, 0), sizeof(float) * a.cols);
                    },
                    step);
}

// SRAD's scale from sums of x and x^2 over the T x T tiles of a region (the whole frame, or the
// caller's region pooled): per frame, tile-major, (sum, sum of squares) pairs.
struct TileGrid {
  int64_t r0 = 0, c0 = 0, RR = 0, CC = 0;
  int T = 32, ntr = 0, ntc = 0;
  bool pooled = false;
  TileGrid(Image<const float> x, const SradParams& p) {
    pooled = p.q0_mode == SradQ0::Roi;
    r0 = pooled ? p.roi_row0 : 0;
    c0 = pooled ? p.roi_col0 : 0;
    RR = pooled ? p.roi_rows : x.rows;
    CC = pooled ? p.roi_cols : x.cols;
    T = k::q0_tile_size(int(RR), int(CC));
    ntr = int((RR + T - 1) / T);
    ntc = int((CC + T - 1) / T);
  }
  int64_t tiles() const { return int64_t(ntr) * ntc; }

  // Per-column sums of up to 32 rows (a band inside one row of tiles, T being a multiple of
  // 32), added row by row in float (vectorised, no horizontal reduction per row) and folded into
  // the tiles' double sums when the band changes. 32 float terms keep the sums to ~1e-6.
  struct Band {
    std::vector<float> s1, s2;
    int64_t f = -1, band = -1;
  };
  void add_row(Band& b, int64_t f, int64_t r, const float* row, double* sums) const {
    if (r < r0 || r >= r0 + RR) return;
    const int64_t band = (r - r0) / 32;
    if (band != b.band || f != b.f) {
      flush(b, sums);
      b.f = f;
      b.band = band;
    }
    float* s1 = b.s1.data();
    float* s2 = b.s2.data();
    const float* v = row + c0;
#pragma omp simd
    for (int64_t c = 0; c < CC; ++c) {
      s1[c] += v[c];
      s2[c] += v[c] * v[c];
    }
  }
  // Folds a band's column sums into its tiles (sums: per frame, tile-major (s1, s2) pairs).
  void flush(Band& b, double* sums) const {
    if (b.band < 0) {
      b.s1.assign(size_t(CC), 0.f);
      b.s2.assign(size_t(CC), 0.f);
      return;
    }
    double* t = sums + 2 * (b.f * tiles() + (b.band * 32 / T) * ntc);
    for (int64_t c = 0; c < CC; ++c) {
      t[2 * (c / T)] += b.s1[size_t(c)];
      t[2 * (c / T) + 1] += b.s2[size_t(c)];
      b.s1[size_t(c)] = b.s2[size_t(c)] = 0.f;
    }
    b.band = -1;
  }

  // q0^2 of one frame from its tile sums.
  float q0sq(const double* s, std::vector<float>& vals) const {
    const int64_t nt = tiles();
    if (pooled) {
      double a = 0.0, b = 0.0;
      for (int64_t t = 0; t < nt; ++t) { a += s[2 * t]; b += s[2 * t + 1]; }
      return k::sums_cv2(a, b, double(RR) * double(CC));
    }
    vals.resize(size_t(nt));
    for (int64_t t = 0; t < nt; ++t) {
      const int64_t th = std::min<int64_t>(T, RR - (t / ntc) * T);
      const int64_t tw = std::min<int64_t>(T, CC - (t % ntc) * T);
      vals[size_t(t)] = k::sums_cv2(s[2 * t], s[2 * t + 1], double(th) * double(tw));
    }
    auto mid = vals.begin() + (nt - 1) / 2;
    std::nth_element(vals.begin(), mid, vals.end());
    return *mid;
  }
};

}  // namespace

void srad(Image<const float> x, Image<float> y, const SradParams& p, void* ws, size_t) {
  HostScratch hs(SpeckleOp::Srad, x.frames, x.rows, x.cols, ws);
  const int64_t F = x.frames;
  const int C = int(x.cols);
  const bool given = p.q0_mode == SradQ0::Given;
  const TileGrid grid(x, p);
  const int64_t nt = grid.tiles();
  const int nthreads = max_threads();
  // per-thread tile sums of the image each pass writes: the next iteration's scale, with no
  // extra pass over the image
  std::vector<double> part(given ? 0 : size_t(nthreads) * F * nt * 2);
  std::vector<double> sums(given ? 0 : size_t(F) * nt * 2);
  std::vector<TileGrid::Band> bands(size_t(given ? 0 : nthreads));
  std::vector<float> q0sq(static_cast<size_t>(F)), vals;
  bool have_sums = false;
  iterate(x, y, hs.s.tmp, p.iterations, [&](int it, Image<const float> cur, Image<float> dst) {
    if (given) {
      const float q = p.q0 * std::exp(-p.q0_decay * p.dt * float(it));
      std::fill(q0sq.begin(), q0sq.end(), q * q);
    } else {
      if (!have_sums) {  // the first iteration: the input's tiles
        std::fill(sums.begin(), sums.end(), 0.0);
        TileGrid::Band b;
        grid.flush(b, sums.data());
        for (int64_t f = 0; f < F; ++f)
          for (int64_t r = grid.r0; r < grid.r0 + grid.RR; ++r)
            grid.add_row(b, f, r, &cur.at(f, r, 0), sums.data());
        grid.flush(b, sums.data());
      }
      for (int64_t f = 0; f < F; ++f) q0sq[size_t(f)] = grid.q0sq(sums.data() + 2 * f * nt, vals);
    }
    const bool gather = !given && it + 1 < p.iterations;
    if (gather) {
      std::fill(part.begin(), part.end(), 0.0);
      for (auto& b : bands) grid.flush(b, nullptr);
    }
    diffusion_pass(
        cur, dst, p.dt,
        [&](int f, int, const float* P, const float* n, const float* s, float* out) {
          const float a = k::srad_coef_a(q0sq[size_t(f)]);
          const float b = k::srad_coef_b(q0sq[size_t(f)]);
#pragma omp simd
          for (int c = 0; c < C; ++c)
            out[c] = k::srad_coef_px(P[c + 1], n[c], s[c], P[c], P[c + 2], a, b);
          out[C] = out[C - 1];
        },
        [&](int f, int r, const float* row) {
          if (gather) {
            const int t = thread_id();
            grid.add_row(bands[size_t(t)], f, r, row, part.data() + size_t(t) * F * nt * 2);
          }
        });
    if (gather) {
      for (int t = 0; t < nthreads; ++t)
        grid.flush(bands[size_t(t)], part.data() + size_t(t) * F * nt * 2);
      std::fill(sums.begin(), sums.end(), 0.0);
      for (int t = 0; t < nthreads; ++t)
        for (size_t i = 0; i < sums.size(); ++i) sums[i] += part[size_t(t) * sums.size() + i];
      have_sums = true;
    }
  });
}

void dpad(Image<const float> x, Image<float> y, int iterations, float dt, int h, void* ws, size_t) {
  HostScratch hs(SpeckleOp::Dpad, x.frames, x.rows, x.cols, ws);
  const int64_t F = x.frames;
  const int R = int(x.rows), C = int(x.cols), w = 2 * h + 1;
  float* ci2 = hs.s.ci2;
  const int nthreads = max_threads();
  std::vector<unsigned> hist(size_t(nthreads) * F * detail::kCvBins);
  std::vector<float> cn2(static_cast<size_t>(F));
  iterate(x, y, hs.s.tmp, iterations, [&](int, Image<const float> cur, Image<float> dst) {
    std::fill(hist.begin(), hist.end(), 0u);
    const auto items = make_strips(F, R);
    for_items(int64_t(items.size()), [&] { return BoxBuf(2, C, h); }, [&](int64_t i, BoxBuf& b) {
      const Strip s = items[size_t(i)];
#ifdef USFAST_WITH_OPENMP
      const int tid = omp_get_thread_num();
#else
      const int tid = 0;
#endif
      unsigned* hf = hist.data() + (size_t(tid) * F + s.f) * detail::kCvBins;
      box_strip<2>(k::src_sq{cur.data, cur.frame_stride, cur.row_stride}, s.f, R, C, h, s.r0, s.r1,
                   b, [&](int r, const double* E, int EW) {
                     const double inr = 1.0 / k::clipped_count(r, h, R);
                     const double* inc = b.inv_nc.data();
                     float* o = ci2 + (size_t(s.f) * R + r) * C;
#pragma omp simd
                     for (int c = 0; c < C; ++c) {
                       const double s0 = E[c + w] - E[c], s1 = E[EW + c + w] - E[EW + c];
                       const double in = inr * inc[c];
                       o[c] = k::local_cv2(k::box_mean(s0, in), k::box_var(s1, s0, in));
                     }
                     for (int c = 0; c < C; ++c) ++hf[k::cv2_bin(o[c])];
                   });
    });
    for (int64_t f = 0; f < F; ++f) {
      unsigned* h0 = hist.data() + size_t(f) * detail::kCvBins;
      for (int t = 1; t < nthreads; ++t) {
        const unsigned* ht = hist.data() + (size_t(t) * F + f) * detail::kCvBins;
        for (int b = 0; b < detail::kCvBins; ++b) h0[b] += ht[b];
      }
      cn2[size_t(f)] = k::cv2_hist_median(h0, double(R) * double(C));
    }
    diffusion_pass(cur, dst, dt,
                   [&](int f, int r, const float*, const float*, const float*, float* out) {
                     const float* g = ci2 + (size_t(f) * R + r) * C;
                     const float n2 = cn2[size_t(f)];
#pragma omp simd
                     for (int c = 0; c < C; ++c) out[c] = k::dpad_coef(g[c], n2);
                     out[C] = out[C - 1];
                   },
                   [](int, int, const float*) {});
  });
}

}  // namespace cpu
}  // namespace usfast
