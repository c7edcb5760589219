// Launchers behind the public B-mode API: usfast::cpu (OpenMP) and usfast::cuda_launch (CUDA),
// both over the per-pixel functions of kernels/bmode.cuh.
#pragma once
#include "usfast/bmode.hpp"

namespace usfast {
#define USFAST_BMODE_LAUNCHERS(...)                                                        \
  template <class T>                                                                              \
  void fir_axial(Image<const T> x, Image<float> y, const float* taps, int ntaps __VA_ARGS__);      \
  template <class T>                                                                              \
  void tgc(Image<const T> x, Image<float> y, const float* gain __VA_ARGS__);                      \
  template <class T>                                                                              \
  void demodulate(Image<const T> rf, Image<cfloat> iq, const float* taps, int ntaps, int dec,    \
                  const cfloat* mixer __VA_ARGS__);                                                \
  template <class T, class O>                                                                     \
  void bmode(Image<const T> rf, Image<O> out, const float* taps, int ntaps, int dec,             \
             const cfloat* mixer, const float* inv_ref, float gain_db, float dr_db __VA_ARGS__);  \
  template <class T>                                                                              \
  void envelope_rf(Image<const T> rf, Image<float> env, const float* taps, int ntaps __VA_ARGS__); \
  template <class T, class O>                                                                     \
  void envelope_log(Image<const T> rf, Image<O> out, const float* taps, int ntaps,               \
                    const float* inv_ref, float gain_db, float dr_db __VA_ARGS__);                \
  void envelope_iq(Image<const cfloat> iq, Image<float> env __VA_ARGS__);                         \
  template <class T, class O>                                                                     \
  void log_compress(Image<const T> x, Image<O> out, const float* inv_ref, float gain_db,         \
                    float dr_db __VA_ARGS__);                                                      \
  void persistence(Image<const float> x, Image<float> y, const float* init, int64_t irs,         \
                   float alpha __VA_ARGS__);

namespace cpu {
USFAST_BMODE_LAUNCHERS()
}
namespace cuda_launch {
USFAST_BMODE_LAUNCHERS(, void* stream)
}
#undef USFAST_BMODE_LAUNCHERS
}  // namespace usfast
