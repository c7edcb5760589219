// B-mode formation: axial FIR filtering, time-gain compensation, quadrature demodulation,
// envelope detection and log compression. The single source of this math for the CPU (OpenMP),
// CUDA and CuPy (NVRTC) backends.
//
// Layout: batches (frames F, rows R = depth samples, cols C = lines); element (f, r, c) at
// p[f*fs + r*rs + c]. Filters run along rows (depth) and treat samples outside [0, R) as zero.
#pragma once
#include "common.cuh"

namespace usfast {
namespace k {

// Taps k0..k1 of an FIR centred at sample n (delay d = (ntaps-1)/2) whose input sample
// n + d - k lies inside [0, R).
USFAST_HD void tap_range(int n, int ntaps, int R, int& k0, int& k1) {
  const int d = (ntaps - 1) / 2;
  k0 = n + d - (R - 1);
  if (k0 < 0) k0 = 0;
  k1 = n + d;
  if (k1 > ntaps - 1) k1 = ntaps - 1;
}

// One tap of a real FIR: acc += h * x.
USFAST_HD void fir_acc(float& acc, float h, float x) { acc += h * x; }

// One tap of the demodulator: acc += (h * x) * mixer, with mixer = 2 g[n] exp(-i 2 pi f0 n/fs)
// (TGC gain g folded in; the factor 2 restores the amplitude of the discarded negative band).
USFAST_HD void demod_acc(cf32& acc, float hx, cf32 mix) {
  acc.re += hx * mix.re;
  acc.im += hx * mix.im;
}

// Zero-phase FIR along depth at (r, c): y[r] = sum_k h[k] x[r + d - k], d = (ntaps - 1) / 2.
template <class T>
USFAST_HD float fir_axial_px(const T* x, usf_i64 rs, int R, int r, int c, const float* h, int ntaps) {
  int k0, k1;
  tap_range(r, ntaps, R, k0, k1);
  const int d = (ntaps - 1) / 2;
  float acc = 0.f;
  for (int k = k0; k <= k1; ++k) fir_acc(acc, h[k], to_float(x[(usf_i64)(r + d - k) * rs + c]));
  return acc;
}

// Quadrature demodulation with a linear-phase low-pass, evaluated only at the decimated
// output m (input sample n0 = m * dec): iq[m] = sum_k h[k] * mixer[n] * x[n], n = n0 + d - k.
template <class T>
USFAST_HD cf32 demod_px(const T* x, usf_i64 rs, int R, int m, int c, const float* h, int ntaps,
                        int dec, const cf32* mixg) {
  const int d = (ntaps - 1) / 2;
  const int n0 = m * dec;
  int k0, k1;
  tap_range(n0, ntaps, R, k0, k1);
  cf32 acc;
  acc.re = 0.f;
  acc.im = 0.f;
  for (int k = k0; k <= k1; ++k) {
    const int n = n0 + d - k;
    demod_acc(acc, h[k] * to_float(x[(usf_i64)n * rs + c]), mixg[n]);
  }
  return acc;
}

// Envelope of real RF through an FIR Hilbert transformer (type III: odd length, antisymmetric
// about the centre tap d = (ntaps-1)/2, h[d] = 0), delay compensated: env = sqrt(x^2 + H{x}^2).
// Antisymmetry halves the work: with g[j] = h[d + j],
//   H{x}[r] = sum_{j=1..d} g[j] (x[r - j] - x[r + j]),   samples outside [0, R) are zero.
USFAST_HD float analytic_power(float i, float q) { return i * i + q * q; }
USFAST_HD float analytic_mag(float i, float q) { return fsqrt(analytic_power(i, q)); }
// V = float, or on the host a vector of floats (the same expression, eight columns at a time).
template <class V>
USFAST_HD void hilbert_pair_acc(V& acc, float g, V xm, V xp) { acc += g * (xm - xp); }
template <class T>
USFAST_HD float hilbert_q_px(const T* x, usf_i64 rs, int R, int r, int c, const float* g, int d) {
  float acc = 0.f;
  for (int j = 1; j <= d; ++j) {
    const float xm = r - j >= 0 ? to_float(x[(usf_i64)(r - j) * rs + c]) : 0.f;
    const float xp = r + j < R ? to_float(x[(usf_i64)(r + j) * rs + c]) : 0.f;
    hilbert_pair_acc(acc, g[j], xm, xp);
  }
  return acc;
}
template <class T>
USFAST_HD float hilbert_env_px(const T* x, usf_i64 rs, int R, int r, int c, const float* h,
                               int ntaps) {
  const int d = (ntaps - 1) / 2;
  return analytic_mag(to_float(x[(usf_i64)r * rs + c]), hilbert_q_px(x, rs, R, r, c, h + d, d));
}

USFAST_HD float magnitude(float v) { return fabs_(v); }
USFAST_HD float magnitude(short v) { return fabs_(to_float(v)); }
USFAST_HD float magnitude(cf32 v) { return fsqrt(v.re * v.re + v.im * v.im); }

// Log compression to a display value in [0, 1]: 0 <-> -dr_db, 1 <-> 0 dB.
//   dB = 20 log10(env * inv_ref) + gain_db, clamped to [-dr_db, 0].
// env = 0 maps to 0: log10 gives -inf (GPU) or about -38 (host series), both clamped.
USFAST_HD float db_to_display(float db, float dr_db) {
  return (clampf(db, -dr_db, 0.f) + dr_db) / dr_db;
}
USFAST_HD float log_compress_px(float env, float inv_ref, float gain_db, float dr_db) {
  return db_to_display(20.f * flog10(env * inv_ref) + gain_db, dr_db);
}

// The same display value from the power p = env^2, without the square root:
//   dB = 10 log10(p) + offset_db, offset_db = 20 log10(inv_ref) + gain_db (one per frame).
USFAST_HD float log_offset_db(float inv_ref, float gain_db) {
  return 20.f * flog10(inv_ref) + gain_db;
}
USFAST_HD float log_compress_power_px(float p, float offset_db, float dr_db) {
  return db_to_display(10.f * flog10(p) + offset_db, dr_db);
}

// Store a display value in [0, 1] as float32 or as uint8 0..255 (rounded).
USFAST_HD void store_display(float* o, float v) { *o = v; }
USFAST_HD void store_display(unsigned char* o, float v) {
  *o = static_cast<unsigned char>(v * 255.f + 0.5f);
}

// Time-gain compensation: one gain per depth sample (row).
template <class T>
USFAST_HD float tgc_px(T v, float gain) { return to_float(v) * gain; }

// Recursive frame averaging (persistence) at one pixel: y[0] = x[0] (or the carried state),
// y[f] = alpha * y[f-1] + (1 - alpha) * x[f].
USFAST_HD float persistence_step(float prev, float x, float alpha) {
  return alpha * prev + (1.f - alpha) * x;
}

}  // namespace k
}  // namespace usfast

#if defined(__CUDACC__)
// ---- CUDA kernels, one extern "C" name per type combination -----------------------------------
#define USFAST_BMODE_FIR(NAME, T)                                                                \
  extern "C" __global__ void NAME(const T* x, usf_i64 xfs, usf_i64 xrs, float* y, usf_i64 yfs,  \
                                  usf_i64 yrs, int R, int C, const float* h, int ntaps) {        \
    USFAST_PIXEL_INDEX(f, r, c, R, C);                                                           \
    y[f * yfs + r * yrs + c] = usfast::k::fir_axial_px(x + f * xfs, xrs, R, r, c, h, ntaps);    \
  }
USFAST_BMODE_FIR(usfast_fir_axial_f32, float)
USFAST_BMODE_FIR(usfast_fir_axial_i16, short)

#define USFAST_BMODE_TGC(NAME, T)                                                                \
  extern "C" __global__ void NAME(const T* x, usf_i64 xfs, usf_i64 xrs, float* y, usf_i64 yfs,  \
                                  usf_i64 yrs, int R, int C, const float* gain) {                \
    USFAST_PIXEL_INDEX(f, r, c, R, C);                                                           \
    y[f * yfs + r * yrs + c] = usfast::k::tgc_px(x[f * xfs + r * xrs + c], gain[r]);            \
  }
USFAST_BMODE_TGC(usfast_tgc_f32, float)
USFAST_BMODE_TGC(usfast_tgc_i16, short)

// Demodulation to IQ (complex64 out, M = decimated rows).
#define USFAST_BMODE_DEMOD(NAME, T)                                                              \
  extern "C" __global__ void NAME(const T* x, usf_i64 xfs, usf_i64 xrs, int R,                  \
                                  usfast::k::cf32* y, usf_i64 yfs, usf_i64 yrs, int M, int C,    \
                                  const float* h, int ntaps, int dec,                            \
                                  const usfast::k::cf32* mixg) {                                 \
    USFAST_PIXEL_INDEX(f, m, c, M, C);                                                           \
    y[f * yfs + m * yrs + c] = usfast::k::demod_px(x + f * xfs, xrs, R, m, c, h, ntaps, dec, mixg); \
  }
USFAST_BMODE_DEMOD(usfast_demod_f32, float)
USFAST_BMODE_DEMOD(usfast_demod_i16, short)

// Fused B-mode: demodulate + envelope + log compression in one pass (display out).
#define USFAST_BMODE_FUSED(NAME, T, O)                                                           \
  extern "C" __global__ void NAME(const T* x, usf_i64 xfs, usf_i64 xrs, int R, O* y,            \
                                  usf_i64 yfs, usf_i64 yrs, int M, int C, const float* h,        \
                                  int ntaps, int dec, const usfast::k::cf32* mixg,               \
                                  const float* inv_ref, float gain_db, float dr_db) {            \
    USFAST_PIXEL_INDEX(f, m, c, M, C);                                                           \
    const float env = usfast::k::magnitude(                                                     \
        usfast::k::demod_px(x + f * xfs, xrs, R, m, c, h, ntaps, dec, mixg));                   \
    usfast::k::store_display(&y[f * yfs + m * yrs + c],                                         \
                             usfast::k::log_compress_px(env, inv_ref[f], gain_db, dr_db));      \
  }
USFAST_BMODE_FUSED(usfast_bmode_f32_f32, float, float)
USFAST_BMODE_FUSED(usfast_bmode_f32_u8, float, unsigned char)
USFAST_BMODE_FUSED(usfast_bmode_i16_f32, short, float)
USFAST_BMODE_FUSED(usfast_bmode_i16_u8, short, unsigned char)

// Envelope of RF by FIR Hilbert transformer (float out).
#define USFAST_BMODE_HILBERT(NAME, T)                                                            \
  extern "C" __global__ void NAME(const T* x, usf_i64 xfs, usf_i64 xrs, float* y, usf_i64 yfs,  \
                                  usf_i64 yrs, int R, int C, const float* h, int ntaps) {        \
    USFAST_PIXEL_INDEX(f, r, c, R, C);                                                           \
    y[f * yfs + r * yrs + c] = usfast::k::hilbert_env_px(x + f * xfs, xrs, R, r, c, h, ntaps);  \
  }
USFAST_BMODE_HILBERT(usfast_envelope_rf_f32, float)
USFAST_BMODE_HILBERT(usfast_envelope_rf_i16, short)

// Envelope and log compression in one pass (display out): 10 log10(x^2 + H{x}^2).
#define USFAST_BMODE_ENVLOG(NAME, T, O)                                                          \
  extern "C" __global__ void NAME(const T* x, usf_i64 xfs, usf_i64 xrs, O* y, usf_i64 yfs,      \
                                  usf_i64 yrs, int R, int C, const float* h, int ntaps,          \
                                  const float* inv_ref, float gain_db, float dr_db) {            \
    USFAST_PIXEL_INDEX(f, r, c, R, C);                                                           \
    const T* xf = x + f * xfs;                                                                   \
    const int d = (ntaps - 1) / 2;                                                               \
    const float q = usfast::k::hilbert_q_px(xf, xrs, R, r, c, h + d, d);                        \
    const float p = usfast::k::analytic_power(usfast::k::to_float(xf[(usf_i64)r * xrs + c]), q); \
    usfast::k::store_display(&y[f * yfs + r * yrs + c],                                         \
                             usfast::k::log_compress_power_px(                                  \
                                 p, usfast::k::log_offset_db(inv_ref[f], gain_db), dr_db));     \
  }
USFAST_BMODE_ENVLOG(usfast_envelope_log_f32_f32, float, float)
USFAST_BMODE_ENVLOG(usfast_envelope_log_f32_u8, float, unsigned char)
USFAST_BMODE_ENVLOG(usfast_envelope_log_i16_f32, short, float)
USFAST_BMODE_ENVLOG(usfast_envelope_log_i16_u8, short, unsigned char)

// Envelope of IQ: |iq|.
extern "C" __global__ void usfast_envelope_iq(const usfast::k::cf32* x, usf_i64 xfs, usf_i64 xrs,
                                              float* y, usf_i64 yfs, usf_i64 yrs, int R, int C) {
  USFAST_PIXEL_INDEX(f, r, c, R, C);
  y[f * yfs + r * yrs + c] = usfast::k::magnitude(x[f * xfs + r * xrs + c]);
}

// Log compression of an envelope (float) or of IQ (complex64, magnitude fused).
#define USFAST_BMODE_LOG(NAME, T, O)                                                             \
  extern "C" __global__ void NAME(const T* x, usf_i64 xfs, usf_i64 xrs, O* y, usf_i64 yfs,      \
                                  usf_i64 yrs, int R, int C, const float* inv_ref,               \
                                  float gain_db, float dr_db) {                                  \
    USFAST_PIXEL_INDEX(f, r, c, R, C);                                                           \
    usfast::k::store_display(                                                                    \
        &y[f * yfs + r * yrs + c],                                                              \
        usfast::k::log_compress_px(usfast::k::magnitude(x[f * xfs + r * xrs + c]), inv_ref[f],  \
                                   gain_db, dr_db));                                             \
  }
USFAST_BMODE_LOG(usfast_log_compress_f32_f32, float, float)
USFAST_BMODE_LOG(usfast_log_compress_f32_u8, float, unsigned char)
USFAST_BMODE_LOG(usfast_log_compress_c64_f32, usfast::k::cf32, float)
USFAST_BMODE_LOG(usfast_log_compress_c64_u8, usfast::k::cf32, unsigned char)

// Persistence over a batch: one thread per pixel walks the frames.
extern "C" __global__ void usfast_persistence(const float* x, usf_i64 xfs, usf_i64 xrs, float* y,
                                              usf_i64 yfs, usf_i64 yrs, int F, int R, int C,
                                              const float* init, usf_i64 irs, float alpha) {
  USFAST_PIXEL_INDEX(f0, r, c, R, C);
  (void)f0;
  float s = init ? init[r * irs + c] : x[r * xrs + c];
  for (int f = 0; f < F; ++f) {
    s = usfast::k::persistence_step(s, x[f * xfs + r * xrs + c], alpha);
    y[f * yfs + r * yrs + c] = s;
  }
}
#endif  // __CUDACC__
