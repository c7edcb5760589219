// Public B-mode API: validation, then dispatch to the CPU or CUDA launchers.
#include "usfast/bmode.hpp"

#include <cstdint>

#include "src/bmode_launch.hpp"
#include "src/dispatch.hpp"

namespace usfast {
using detail::check_image;
using detail::check_ptr;

template <class T>
void fir_axial(Image<const T> x, Image<float> y, const float* taps, int ntaps, const Exec& ex) {
  const char* fn = "fir_axial";
  check_image(fn, "x", x);
  check_image(fn, "y", y);
  require(y.same_shape(x), fn, "y", "the shape of x");
  require(ntaps >= 1 && ntaps % 2 == 1, fn, "ntaps", "an odd tap count >= 1");
  check_ptr(fn, "taps", taps);
  USFAST_DISPATCH(fn, ex, cpu::fir_axial(x, y, taps, ntaps),
                  cuda_launch::fir_axial(x, y, taps, ntaps, ex.stream));
}

template <class T>
void tgc(Image<const T> x, Image<float> y, const float* gain, const Exec& ex) {
  const char* fn = "tgc";
  check_image(fn, "x", x);
  check_image(fn, "y", y);
  require(y.same_shape(x), fn, "y", "the shape of x");
  check_ptr(fn, "gain", gain);
  USFAST_DISPATCH(fn, ex, cpu::tgc(x, y, gain), cuda_launch::tgc(x, y, gain, ex.stream));
}

static void check_demod(const char* fn, int64_t rows_in, int64_t rows_out, int ntaps, int dec,
                        const float* taps, const cfloat* mixer) {
  require(dec >= 1, fn, "decimation", "an integer >= 1");
  require(rows_out == (rows_in + dec - 1) / dec, fn, "out", "ceil(samples / decimation) rows");
  require(ntaps >= 1 && ntaps % 2 == 1, fn, "ntaps", "an odd tap count >= 1");
  check_ptr(fn, "taps", taps);
  check_ptr(fn, "mixer", mixer);
}

template <class T>
void demodulate(Image<const T> rf, Image<cfloat> iq, const float* taps, int ntaps, int decimation,
                const cfloat* mixer, const Exec& ex) {
  const char* fn = "demodulate";
  check_image(fn, "rf", rf);
  check_image(fn, "iq", iq);
  require(iq.frames == rf.frames && iq.cols == rf.cols, fn, "iq", "the frames and lines of rf");
  check_demod(fn, rf.rows, iq.rows, ntaps, decimation, taps, mixer);
  USFAST_DISPATCH(fn, ex, cpu::demodulate(rf, iq, taps, ntaps, decimation, mixer),
                  cuda_launch::demodulate(rf, iq, taps, ntaps, decimation, mixer, ex.stream));
}

static void check_log(const char* fn, const float* inv_ref, float dr_db, float gain_db) {
  check_ptr(fn, "inv_ref", inv_ref);
  require(dr_db > 0.f && dr_db < 1e6f, fn, "dynamic_range_db", "a positive dynamic range in dB");
  require(gain_db > -1e6f && gain_db < 1e6f, fn, "gain_db", "a finite gain in dB");
}

template <class T, class O>
void bmode(Image<const T> rf, Image<O> out, const float* taps, int ntaps, int decimation,
           const cfloat* mixer, const float* inv_ref, float gain_db, float dynamic_range_db,
           const Exec& ex) {
  const char* fn = "bmode";
  check_image(fn, "rf", rf);
  check_image(fn, "out", out);
  require(out.frames == rf.frames && out.cols == rf.cols, fn, "out", "the frames and lines of rf");
  check_demod(fn, rf.rows, out.rows, ntaps, decimation, taps, mixer);
  check_log(fn, inv_ref, dynamic_range_db, gain_db);
  USFAST_DISPATCH(fn, ex,
                  cpu::bmode(rf, out, taps, ntaps, decimation, mixer, inv_ref, gain_db,
                             dynamic_range_db),
                  cuda_launch::bmode(rf, out, taps, ntaps, decimation, mixer, inv_ref, gain_db,
                                     dynamic_range_db, ex.stream));
}

// Input, output and taps of a Hilbert envelope (envelope_rf, envelope_log): one shape in and out.
template <class T, class O>
static void check_hilbert(const char* fn, const Image<const T>& rf, const Image<O>& out,
                          const float* taps, int ntaps) {
  check_image(fn, "rf", rf);
  check_image(fn, "out", out);
  require(out.same_shape(rf), fn, "out", "the shape of rf");
  require(ntaps >= 3 && ntaps % 2 == 1, fn, "ntaps", "an odd Hilbert length >= 3");
  check_ptr(fn, "taps", taps);
}

template <class T>
void envelope_rf(Image<const T> rf, Image<float> env, const float* taps, int ntaps,
                 const Exec& ex) {
  const char* fn = "envelope";
  check_hilbert(fn, rf, env, taps, ntaps);
  USFAST_DISPATCH(fn, ex, cpu::envelope_rf(rf, env, taps, ntaps),
                  cuda_launch::envelope_rf(rf, env, taps, ntaps, ex.stream));
}

template <class T, class O>
void envelope_log(Image<const T> rf, Image<O> out, const float* taps, int ntaps,
                  const float* inv_ref, float gain_db, float dynamic_range_db, const Exec& ex) {
  const char* fn = "envelope_log";
  check_hilbert(fn, rf, out, taps, ntaps);
  check_log(fn, inv_ref, dynamic_range_db, gain_db);
  USFAST_DISPATCH(fn, ex,
                  cpu::envelope_log(rf, out, taps, ntaps, inv_ref, gain_db, dynamic_range_db),
                  cuda_launch::envelope_log(rf, out, taps, ntaps, inv_ref, gain_db,
                                            dynamic_range_db, ex.stream));
}

void envelope_iq(Image<const cfloat> iq, Image<float> env, const Exec& ex) {
  const char* fn = "envelope";
  check_image(fn, "iq", iq);
  check_image(fn, "out", env);
  require(env.same_shape(iq), fn, "out", "the shape of iq");
  USFAST_DISPATCH(fn, ex, cpu::envelope_iq(iq, env), cuda_launch::envelope_iq(iq, env, ex.stream));
}

template <class T, class O>
void log_compress(Image<const T> x, Image<O> out, const float* inv_ref, float gain_db,
                  float dynamic_range_db, const Exec& ex) {
  const char* fn = "log_compress";
  check_image(fn, "env", x);
  check_image(fn, "out", out);
  require(out.same_shape(x), fn, "out", "the shape of env");
  check_log(fn, inv_ref, dynamic_range_db, gain_db);
  USFAST_DISPATCH(fn, ex, cpu::log_compress(x, out, inv_ref, gain_db, dynamic_range_db),
                  cuda_launch::log_compress(x, out, inv_ref, gain_db, dynamic_range_db, ex.stream));
}

void persistence(Image<const float> x, Image<float> y, const float* init, int64_t irs, float alpha,
                 const Exec& ex) {
  const char* fn = "persistence";
  check_image(fn, "frames", x);
  check_image(fn, "out", y);
  require(y.same_shape(x), fn, "out", "the shape of frames");
  require(alpha >= 0.f && alpha < 1.f, fn, "alpha", "a weight in [0, 1)");
  require(init == nullptr || irs >= x.cols, fn, "init", "a row stride >= cols");
  USFAST_DISPATCH(fn, ex, cpu::persistence(x, y, init, irs, alpha),
                  cuda_launch::persistence(x, y, init, irs, alpha, ex.stream));
}

// ---- explicit instantiations: the types the API supports ----------------------------------
#define USFAST_INST_T(T)                                                                     \
  template void fir_axial<T>(Image<const T>, Image<float>, const float*, int, const Exec&); \
  template void tgc<T>(Image<const T>, Image<float>, const float*, const Exec&);            \
  template void demodulate<T>(Image<const T>, Image<cfloat>, const float*, int, int,        \
                              const cfloat*, const Exec&);                                   \
  template void envelope_rf<T>(Image<const T>, Image<float>, const float*, int, const Exec&); \
  template void envelope_log<T, float>(Image<const T>, Image<float>, const float*, int,     \
                                       const float*, float, float, const Exec&);             \
  template void envelope_log<T, uint8_t>(Image<const T>, Image<uint8_t>, const float*, int, \
                                         const float*, float, float, const Exec&);           \
  template void bmode<T, float>(Image<const T>, Image<float>, const float*, int, int,       \
                                const cfloat*, const float*, float, float, const Exec&);     \
  template void bmode<T, uint8_t>(Image<const T>, Image<uint8_t>, const float*, int, int,   \
                                  const cfloat*, const float*, float, float, const Exec&);
USFAST_INST_T(float)
USFAST_INST_T(int16_t)
#undef USFAST_INST_T
template void log_compress<float, float>(Image<const float>, Image<float>, const float*, float, float, const Exec&);
template void log_compress<float, uint8_t>(Image<const float>, Image<uint8_t>, const float*, float, float, const Exec&);
template void log_compress<cfloat, float>(Image<const cfloat>, Image<float>, const float*, float, float, const Exec&);
template void log_compress<cfloat, uint8_t>(Image<const cfloat>, Image<uint8_t>, const float*, float, float, const Exec&);

}  // namespace usfast
