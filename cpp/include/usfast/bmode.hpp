// B-mode formation: RF or IQ lines (samples x lines) to a display image.
//
// All functions take batches (frames, samples, lines) as strided views; one frame is a batch of
// one. Filter taps and tables (`taps`, `gain`, `mixer`, `inv_ref`) live where the call runs:
// host memory for Exec::cpu(), device memory for Exec::cuda(stream). Calls on the GPU are
// asynchronous on the stream. User errors throw usfast::InputError; nothing aborts.
#pragma once
#include <cstdint>

#include "usfast/core.hpp"

namespace usfast {

// Zero-phase FIR along depth: y[r] = sum_k taps[k] x[r + (ntaps-1)/2 - k], zero outside the
// record. ntaps must be odd. T = float or int16_t.
template <class T>
void fir_axial(Image<const T> x, Image<float> y, const float* taps, int ntaps, const Exec& ex);

// Time-gain compensation: y[f, r, c] = x[f, r, c] * gain[r] (linear gain per depth sample).
template <class T>
void tgc(Image<const T> x, Image<float> y, const float* gain, const Exec& ex);

// Quadrature demodulation with linear-phase low-pass and decimation (see kernels/bmode.cuh):
// iq[m] = sum_k taps[k] * mixer[n] * rf[n], n = m*decimation + (ntaps-1)/2 - k, where
// mixer[n] = 2 g[n] exp(-i 2 pi f0 n / fs) (g: TGC gain, 1 without TGC), length = rf.rows.
// iq.rows must be ceil(rf.rows / decimation).
template <class T>
void demodulate(Image<const T> rf, Image<cfloat> iq, const float* taps, int ntaps, int decimation,
                const cfloat* mixer, const Exec& ex);

// Fused B-mode: demodulate as above, |IQ|, log compression to a display image in [0, 1]
// (O = float) or 0..255 (O = uint8_t). inv_ref[f] = 1 / reference amplitude of frame f.
template <class T, class O>
void bmode(Image<const T> rf, Image<O> out, const float* taps, int ntaps, int decimation,
           const cfloat* mixer, const float* inv_ref, float gain_db, float dynamic_range_db,
           const Exec& ex);

// Envelope of real RF through an FIR Hilbert transformer (odd, antisymmetric taps).
template <class T>
void envelope_rf(Image<const T> rf, Image<float> env, const float* hilbert_taps, int ntaps,
                 const Exec& ex);

// Envelope and log compression in one pass over memory: the display value of the Hilbert
// envelope, dB = 20 log10(env * inv_ref[f]) + gain_db (computed as 10 log10 of the power, no
// square root), clamped and mapped as in log_compress.
template <class T, class O>
void envelope_log(Image<const T> rf, Image<O> out, const float* hilbert_taps, int ntaps,
                  const float* inv_ref, float gain_db, float dynamic_range_db, const Exec& ex);

// Envelope of IQ: |iq|.
void envelope_iq(Image<const cfloat> iq, Image<float> env, const Exec& ex);

// Log compression of an envelope (T = float) or IQ (T = cfloat, magnitude fused):
// dB = 20 log10(|x| * inv_ref[f]) + gain_db clamped to [-dynamic_range_db, 0], mapped to [0, 1]
// (O = float) or 0..255 (O = uint8_t).
template <class T, class O>
void log_compress(Image<const T> x, Image<O> out, const float* inv_ref, float gain_db,
                  float dynamic_range_db, const Exec& ex);

// Persistence (recursive frame averaging) over a batch: y[f] = alpha y[f-1] + (1-alpha) x[f],
// starting from `init` (rows x cols, row stride init_row_stride) or from x[0] when null.
void persistence(Image<const float> x, Image<float> y, const float* init, int64_t init_row_stride,
                 float alpha, const Exec& ex);

}  // namespace usfast
