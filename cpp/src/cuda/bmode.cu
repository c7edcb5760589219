// CUDA launchers for B-mode formation: the extern "C" kernels of kernels/bmode.cuh on the
// caller's stream.
#include "kernels/bmode.cuh"

#include "src/bmode_launch.hpp"
#include "src/cuda/check.cuh"

namespace usfast {
namespace cuda_launch {
using cuda_detail::block2d;
using cuda_detail::grid2d;

namespace {
inline const k::cf32* as_k(const cfloat* p) { return reinterpret_cast<const k::cf32*>(p); }
inline k::cf32* as_k(cfloat* p) { return reinterpret_cast<k::cf32*>(p); }
inline cudaStream_t S(void* s) { return static_cast<cudaStream_t>(s); }

// Type -> kernel tables (NVRTC needs unmangled names, so each type has its own kernel).
inline auto fir_kernel(const float*) { return usfast_fir_axial_f32; }
inline auto fir_kernel(const int16_t*) { return usfast_fir_axial_i16; }
inline auto tgc_kernel(const float*) { return usfast_tgc_f32; }
inline auto tgc_kernel(const int16_t*) { return usfast_tgc_i16; }
inline auto demod_kernel(const float*) { return usfast_demod_f32; }
inline auto demod_kernel(const int16_t*) { return usfast_demod_i16; }
inline auto hilbert_kernel(const float*) { return usfast_envelope_rf_f32; }
inline auto hilbert_kernel(const int16_t*) { return usfast_envelope_rf_i16; }
inline auto bmode_kernel(const float*, float*) { return usfast_bmode_f32_f32; }
inline auto bmode_kernel(const float*, uint8_t*) { return usfast_bmode_f32_u8; }
inline auto bmode_kernel(const int16_t*, float*) { return usfast_bmode_i16_f32; }
inline auto bmode_kernel(const int16_t*, uint8_t*) { return usfast_bmode_i16_u8; }
inline auto envlog_kernel(const float*, float*) { return usfast_envelope_log_f32_f32; }
inline auto envlog_kernel(const float*, uint8_t*) { return usfast_envelope_log_f32_u8; }
inline auto envlog_kernel(const int16_t*, float*) { return usfast_envelope_log_i16_f32; }
inline auto envlog_kernel(const int16_t*, uint8_t*) { return usfast_envelope_log_i16_u8; }
inline auto log_kernel(const float*, float*) { return usfast_log_compress_f32_f32; }
inline auto log_kernel(const float*, uint8_t*) { return usfast_log_compress_f32_u8; }
inline auto log_kernel(const cfloat*, float*) { return usfast_log_compress_c64_f32; }
inline auto log_kernel(const cfloat*, uint8_t*) { return usfast_log_compress_c64_u8; }
template <class T> struct kt { using type = T; };
template <> struct kt<cfloat> { using type = k::cf32; };
}  // namespace

template <class T>
void fir_axial(Image<const T> x, Image<float> y, const float* h, int ntaps, void* s) {
  fir_kernel(x.data)<<<grid2d(y.rows, y.cols, y.frames), block2d(), 0, S(s)>>>(
      x.data, x.frame_stride, x.row_stride, y.data, y.frame_stride, y.row_stride, (int)x.rows,
      (int)x.cols, h, ntaps);
  USFAST_CUDA_LAUNCHED();
}

template <class T>
void tgc(Image<const T> x, Image<float> y, const float* gain, void* s) {
  tgc_kernel(x.data)<<<grid2d(y.rows, y.cols, y.frames), block2d(), 0, S(s)>>>(
      x.data, x.frame_stride, x.row_stride, y.data, y.frame_stride, y.row_stride, (int)x.rows,
      (int)x.cols, gain);
  USFAST_CUDA_LAUNCHED();
}

template <class T>
void demodulate(Image<const T> rf, Image<cfloat> iq, const float* h, int ntaps, int dec,
                const cfloat* mixer, void* s) {
  demod_kernel(rf.data)<<<grid2d(iq.rows, iq.cols, iq.frames), block2d(), 0, S(s)>>>(
      rf.data, rf.frame_stride, rf.row_stride, (int)rf.rows, as_k(iq.data), iq.frame_stride,
      iq.row_stride, (int)iq.rows, (int)iq.cols, h, ntaps, dec, as_k(mixer));
  USFAST_CUDA_LAUNCHED();
}

template <class T, class O>
void bmode(Image<const T> rf, Image<O> out, const float* h, int ntaps, int dec, const cfloat* mixer,
           const float* inv_ref, float gain_db, float dr_db, void* s) {
  bmode_kernel(rf.data, out.data)<<<grid2d(out.rows, out.cols, out.frames), block2d(), 0, S(s)>>>(
      rf.data, rf.frame_stride, rf.row_stride, (int)rf.rows, out.data, out.frame_stride,
      out.row_stride, (int)out.rows, (int)out.cols, h, ntaps, dec, as_k(mixer), inv_ref, gain_db,
      dr_db);
  USFAST_CUDA_LAUNCHED();
}

template <class T>
void envelope_rf(Image<const T> rf, Image<float> env, const float* h, int ntaps, void* s) {
  hilbert_kernel(rf.data)<<<grid2d(env.rows, env.cols, env.frames), block2d(), 0, S(s)>>>(
      rf.data, rf.frame_stride, rf.row_stride, env.data, env.frame_stride, env.row_stride,
      (int)rf.rows, (int)rf.cols, h, ntaps);
  USFAST_CUDA_LAUNCHED();
}

template <class T, class O>
void envelope_log(Image<const T> rf, Image<O> out, const float* h, int ntaps, const float* inv_ref,
                  float gain_db, float dr_db, void* s) {
  envlog_kernel(rf.data, out.data)<<<grid2d(out.rows, out.cols, out.frames), block2d(), 0, S(s)>>>(
      rf.data, rf.frame_stride, rf.row_stride, out.data, out.frame_stride, out.row_stride,
      (int)rf.rows, (int)rf.cols, h, ntaps, inv_ref, gain_db, dr_db);
  USFAST_CUDA_LAUNCHED();
}

void envelope_iq(Image<const cfloat> iq, Image<float> env, void* s) {
  usfast_envelope_iq<<<grid2d(env.rows, env.cols, env.frames), block2d(), 0, S(s)>>>(
      as_k(iq.data), iq.frame_stride, iq.row_stride, env.data, env.frame_stride, env.row_stride,
      (int)iq.rows, (int)iq.cols);
  USFAST_CUDA_LAUNCHED();
}

template <class T, class O>
void log_compress(Image<const T> x, Image<O> out, const float* inv_ref, float gain_db, float dr_db,
                  void* s) {
  log_kernel(x.data, out.data)<<<grid2d(out.rows, out.cols, out.frames), block2d(), 0, S(s)>>>(
      reinterpret_cast<const typename kt<T>::type*>(x.data), x.frame_stride, x.row_stride,
      out.data, out.frame_stride, out.row_stride, (int)x.rows, (int)x.cols, inv_ref, gain_db,
      dr_db);
  USFAST_CUDA_LAUNCHED();
}

void persistence(Image<const float> x, Image<float> y, const float* init, int64_t irs, float alpha,
                 void* s) {
  usfast_persistence<<<grid2d(x.rows, x.cols, 1), block2d(), 0, S(s)>>>(
      x.data, x.frame_stride, x.row_stride, y.data, y.frame_stride, y.row_stride, (int)x.frames,
      (int)x.rows, (int)x.cols, init, irs, alpha);
  USFAST_CUDA_LAUNCHED();
}

#define USFAST_INST_T(T)                                                                         \
  template void fir_axial<T>(Image<const T>, Image<float>, const float*, int, void*);            \
  template void tgc<T>(Image<const T>, Image<float>, const float*, void*);                       \
  template void demodulate<T>(Image<const T>, Image<cfloat>, const float*, int, int,             \
                              const cfloat*, void*);                                              \
  template void envelope_rf<T>(Image<const T>, Image<float>, const float*, int, void*);          \
  template void envelope_log<T, float>(Image<const T>, Image<float>, const float*, int,          \
                                       const float*, float, float, void*);                        \
  template void envelope_log<T, uint8_t>(Image<const T>, Image<uint8_t>, const float*, int,      \
                                         const float*, float, float, void*);                      \
  template void bmode<T, float>(Image<const T>, Image<float>, const float*, int, int,            \
                                const cfloat*, const float*, float, float, void*);               \
  template void bmode<T, uint8_t>(Image<const T>, Image<uint8_t>, const float*, int, int,        \
                                  const cfloat*, const float*, float, float, void*);
USFAST_INST_T(float)
USFAST_INST_T(int16_t)
#undef USFAST_INST_T
template void log_compress<float, float>(Image<const float>, Image<float>, const float*, float, float, void*);
template void log_compress<float, uint8_t>(Image<const float>, Image<uint8_t>, const float*, float, float, void*);
template void log_compress<cfloat, float>(Image<const cfloat>, Image<float>, const float*, float, float, void*);
template void log_compress<cfloat, uint8_t>(Image<const cfloat>, Image<uint8_t>, const float*, float, float, void*);

}  // namespace cuda_launch
}  // namespace usfast
