// CPU launchers for B-mode formation: OpenMP over rows, omp-simd over columns, the per-pixel
// math from kernels/bmode.cuh.
#include "kernels/bmode.cuh"

#include "src/bmode_launch.hpp"
#include "src/cpu/parallel.hpp"

#include <cstring>
#include <vector>

namespace usfast {
namespace cpu {

namespace {
inline const k::cf32* as_k(const cfloat* p) { return reinterpret_cast<const k::cf32*>(p); }
inline k::cf32* as_k(cfloat* p) { return reinterpret_cast<k::cf32*>(p); }

// Per-thread scratch rows, grown once and reused: no allocation per frame.
inline float* scratch(int64_t n) {
  thread_local std::vector<float> buf;
  if ((int64_t)buf.size() < n) buf.resize(n);
  return buf.data();
}

// The FIR filters run taps-outside, columns-inside: each tap is one contiguous, vectorised
// pass over a row of the input, accumulating with the kernel's own per-tap functions.
template <class T>
void fir_row(const T* xf, int64_t rs, int R, int n, int C, const float* h, int ntaps, float* acc) {
  int k0, k1;
  k::tap_range(n, ntaps, R, k0, k1);
  const int d = (ntaps - 1) / 2;
  for (int c = 0; c < C; ++c) acc[c] = 0.f;
  for (int k = k0; k <= k1; ++k) {
    const float hk = h[k];
    if (hk == 0.f) continue;  // a zero tap adds nothing
    const T* xr = xf + (int64_t)(n + d - k) * rs;
#pragma omp simd
    for (int c = 0; c < C; ++c) k::fir_acc(acc[c], hk, k::to_float(xr[c]));
  }
}

template <class T>
void demod_row(const T* xf, int64_t rs, int R, int n0, int C, const float* h, int ntaps,
               const k::cf32* mix, float* re, float* im) {
  int k0, k1;
  k::tap_range(n0, ntaps, R, k0, k1);
  const int d = (ntaps - 1) / 2;
  for (int c = 0; c < C; ++c) re[c] = im[c] = 0.f;
  for (int k = k0; k <= k1; ++k) {
    const int n = n0 + d - k;
    const T* xr = xf + (int64_t)n * rs;
    const float hk = h[k];
    const k::cf32 m = mix[n];
#pragma omp simd
    for (int c = 0; c < C; ++c) {
      k::cf32 a{re[c], im[c]};
      k::demod_acc(a, hk * k::to_float(xr[c]), m);
      re[c] = a.re;
      im[c] = a.im;
    }
  }
}
}  // namespace

template <class T>
void fir_axial(Image<const T> x, Image<float> y, const float* h, int ntaps) {
  const int R = (int)x.rows, C = (int)x.cols;
  parallel_rows(y.frames, y.rows, y.cols, [&](int64_t f, int64_t r) {
    fir_row(x.data + f * x.frame_stride, x.row_stride, R, (int)r, C, h, ntaps, &y.at(f, r, 0));
  });
}

template <class T>
void tgc(Image<const T> x, Image<float> y, const float* gain) {
  const int64_t C = x.cols;
  parallel_rows(y.frames, y.rows, y.cols, [&](int64_t f, int64_t r) {
    const T* xr = &x.at(f, r, 0);
    float* yr = &y.at(f, r, 0);
    const float g = gain[r];
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) yr[c] = k::tgc_px(xr[c], g);
  });
}

template <class T>
void demodulate(Image<const T> rf, Image<cfloat> iq, const float* h, int ntaps, int dec,
                const cfloat* mixer) {
  const int R = (int)rf.rows, C = (int)rf.cols;
  parallel_rows(iq.frames, iq.rows, iq.cols * 8, [&](int64_t f, int64_t m) {
    float* re = scratch(2 * (int64_t)C);
    float* im = re + C;
    demod_row(rf.data + f * rf.frame_stride, rf.row_stride, R, (int)m * dec, C, h, ntaps,
              as_k(mixer), re, im);
    k::cf32* yr = as_k(&iq.at(f, m, 0));
    for (int c = 0; c < C; ++c) yr[c] = k::cf32{re[c], im[c]};
  });
}

template <class T, class O>
void bmode(Image<const T> rf, Image<O> out, const float* h, int ntaps, int dec,
           const cfloat* mixer, const float* inv_ref, float gain_db, float dr_db) {
  const int R = (int)rf.rows, C = (int)rf.cols;
  parallel_rows(out.frames, out.rows, out.cols * ntaps, [&](int64_t f, int64_t m) {
    float* re = scratch(2 * (int64_t)C);
    float* im = re + C;
    demod_row(rf.data + f * rf.frame_stride, rf.row_stride, R, (int)m * dec, C, h, ntaps,
              as_k(mixer), re, im);
    O* yr = &out.at(f, m, 0);
    const float ir = inv_ref[f];
#pragma omp simd
    for (int c = 0; c < C; ++c)
      k::store_display(&yr[c], k::log_compress_px(k::magnitude(k::cf32{re[c], im[c]}), ir,
                                                  gain_db, dr_db));
  });
}

// ---- Hilbert envelope rows -----------------------------------------------------------------
// Pairs of taps outside, columns inside. Interior rows (every tap inside [0, R)) run on blocks
// of 8 x kHV columns whose accumulators are GCC vectors held in registers across the taps; the
// edge rows and the last columns take the kernel's per-pixel form, which handles the borders.
typedef float v8f __attribute__((vector_size(32)));
typedef short v8s __attribute__((vector_size(16)));
inline v8f load8(const float* p) {
  v8f v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline v8f load8(const int16_t* p) {
  v8s v;
  std::memcpy(&v, p, sizeof v);
  return __builtin_convertvector(v, v8f);
}

// The nonzero taps g[j] = h[d + j], j = 1..d (a Hilbert transformer's even taps are zero).
struct HilbertPairs {
  std::vector<int> j;
  std::vector<float> g;
  int d;
  HilbertPairs(const float* h, int ntaps) : d((ntaps - 1) / 2) {
    for (int i = 1; i <= d; ++i)
      if (h[d + i] != 0.f) {
        j.push_back(i);
        g.push_back(h[d + i]);
      }
  }
};

template <int NV, class T>
inline void hilbert_q_block(const T* xf, int64_t rs, int r, int c0, const HilbertPairs& hp,
                            float* q) {
  v8f a[NV];
  for (int v = 0; v < NV; ++v) a[v] = v8f{};
  const int np = (int)hp.j.size();
  for (int p = 0; p < np; ++p) {
    const T* xm = xf + (int64_t)(r - hp.j[p]) * rs + c0;
    const T* xp = xf + (int64_t)(r + hp.j[p]) * rs + c0;
    const float g = hp.g[p];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) k::hilbert_pair_acc(a[v], g, load8(xm + 8 * v), load8(xp + 8 * v));
  }
  std::memcpy(q, a, sizeof a);
}

// Row r: q (the quadrature part) for every column, handed to `emit(c0, n, q)` in pieces.
constexpr int kHV = 8;
template <class T, class Emit>
inline void hilbert_row(const T* xf, int64_t rs, int R, int r, int C, const float* h,
                        const HilbertPairs& hp, const Emit& emit) {
  alignas(32) float q[8 * kHV];
  int c0 = 0;
  if (r - hp.d >= 0 && r + hp.d < R) {
    for (; c0 + 8 * kHV <= C; c0 += 8 * kHV) {
      hilbert_q_block<kHV>(xf, rs, r, c0, hp, q);
      emit(c0, 8 * kHV, q);
    }
    for (; c0 + 8 <= C; c0 += 8) {
      hilbert_q_block<1>(xf, rs, r, c0, hp, q);
      emit(c0, 8, q);
    }
  }
  for (; c0 < C; c0 += 8) {
    const int n = C - c0 < 8 ? C - c0 : 8;
    for (int c = 0; c < n; ++c) q[c] = k::hilbert_q_px(xf, rs, R, r, c0 + c, h + hp.d, hp.d);
    emit(c0, n, q);
  }
}

// Every row of every frame of rf: emit(f, r, xr, c0, n, q) with xr the input row and q the
// quadrature part of its columns [c0, c0 + n).
template <class T, class Emit>
void hilbert_rows(Image<const T> rf, const float* h, int ntaps, const Emit& emit) {
  const int R = (int)rf.rows, C = (int)rf.cols;
  const HilbertPairs hp(h, ntaps);
  parallel_rows(rf.frames, rf.rows, rf.cols * 8, [&](int64_t f, int64_t r) {
    const T* xf = rf.data + f * rf.frame_stride;
    const T* xr = xf + r * rf.row_stride;
    hilbert_row(xf, rf.row_stride, R, (int)r, C, h, hp,
                [&](int c0, int n, const float* q) { emit(f, r, xr, c0, n, q); });
  });
}

template <class T>
void envelope_rf(Image<const T> rf, Image<float> env, const float* h, int ntaps) {
  hilbert_rows(rf, h, ntaps, [&](int64_t f, int64_t r, const T* xr, int c0, int n, const float* q) {
    float* yr = &env.at(f, r, 0);
#pragma omp simd
    for (int c = 0; c < n; ++c) yr[c0 + c] = k::analytic_mag(k::to_float(xr[c0 + c]), q[c]);
  });
}

template <class T, class O>
void envelope_log(Image<const T> rf, Image<O> out, const float* h, int ntaps, const float* inv_ref,
                  float gain_db, float dr_db) {
  hilbert_rows(rf, h, ntaps, [&](int64_t f, int64_t r, const T* xr, int c0, int n, const float* q) {
    O* yr = &out.at(f, r, 0);
    const float off = k::log_offset_db(inv_ref[f], gain_db), dr = dr_db;
#pragma omp simd
    for (int c = 0; c < n; ++c)
      k::store_display(&yr[c0 + c], k::log_compress_power_px(
                                        k::analytic_power(k::to_float(xr[c0 + c]), q[c]), off, dr));
  });
}

void envelope_iq(Image<const cfloat> iq, Image<float> env) {
  const int64_t C = iq.cols;
  parallel_rows(env.frames, env.rows, env.cols, [&](int64_t f, int64_t r) {
    const k::cf32* xr = as_k(&iq.at(f, r, 0));
    float* yr = &env.at(f, r, 0);
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) yr[c] = k::magnitude(xr[c]);
  });
}

template <class T>
struct kernel_type { using type = T; };
template <>
struct kernel_type<cfloat> { using type = k::cf32; };

template <class T, class O>
void log_compress(Image<const T> x, Image<O> out, const float* inv_ref, float gain_db, float dr_db) {
  using KT = typename kernel_type<T>::type;
  const int64_t C = x.cols;
  parallel_rows(out.frames, out.rows, out.cols, [&](int64_t f, int64_t r) {
    const KT* xr = reinterpret_cast<const KT*>(&x.at(f, r, 0));
    O* yr = &out.at(f, r, 0);
    const float ir = inv_ref[f], g = gain_db, dr = dr_db;  // locals: no aliasing with yr
#pragma omp simd
    for (int64_t c = 0; c < C; ++c)
      k::store_display(&yr[c], k::log_compress_px(k::magnitude(xr[c]), ir, g, dr));
  });
}

void persistence(Image<const float> x, Image<float> y, const float* init, int64_t irs, float alpha) {
  const int64_t C = x.cols;
  parallel_rows(1, x.rows, x.cols * x.frames, [&](int64_t, int64_t r) {
    for (int64_t f = 0; f < x.frames; ++f) {
      const float* xr = &x.at(f, r, 0);
      const float* pr = f > 0 ? &y.at(f - 1, r, 0) : (init ? init + r * irs : xr);
      float* yr = &y.at(f, r, 0);
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) yr[c] = k::persistence_step(pr[c], xr[c], alpha);
    }
  });
}

#define USFAST_INST_T(T)                                                                       \
  template void fir_axial<T>(Image<const T>, Image<float>, const float*, int);                 \
  template void tgc<T>(Image<const T>, Image<float>, const float*);                            \
  template void demodulate<T>(Image<const T>, Image<cfloat>, const float*, int, int, const cfloat*); \
  template void envelope_rf<T>(Image<const T>, Image<float>, const float*, int);               \
  template void envelope_log<T, float>(Image<const T>, Image<float>, const float*, int,        \
                                       const float*, float, float);                            \
  template void envelope_log<T, uint8_t>(Image<const T>, Image<uint8_t>, const float*, int,    \
                                         const float*, float, float);                          \
  template void bmode<T, float>(Image<const T>, Image<float>, const float*, int, int,          \
                                const cfloat*, const float*, float, float);                    \
  template void bmode<T, uint8_t>(Image<const T>, Image<uint8_t>, const float*, int, int,      \
                                  const cfloat*, const float*, float, float);
USFAST_INST_T(float)
USFAST_INST_T(int16_t)
#undef USFAST_INST_T
template void log_compress<float, float>(Image<const float>, Image<float>, const float*, float, float);
template void log_compress<float, uint8_t>(Image<const float>, Image<uint8_t>, const float*, float, float);
template void log_compress<cfloat, float>(Image<const cfloat>, Image<float>, const float*, float, float);
template void log_compress<cfloat, uint8_t>(Image<const cfloat>, Image<uint8_t>, const float*, float, float);

}  // namespace cpu
}  // namespace usfast
