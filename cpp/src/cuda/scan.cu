// CUDA launcher for scan conversion (kernels/scan.cuh).
#include "kernels/scan.cuh"

#include "src/cuda/check.cuh"
#include "src/scan_launch.hpp"

namespace usfast {
namespace cuda_launch {
namespace {
inline auto remap_kernel(const float*) { return usfast_remap_f32; }
inline auto remap_kernel(const uint8_t*) { return usfast_remap_u8; }
}  // namespace

template <class T>
void remap_bilinear(Image<const T> src, Image<T> dst, const float* map, void* s) {
  remap_kernel(src.data)<<<cuda_detail::grid2d(dst.rows, dst.cols, dst.frames),
                           cuda_detail::block2d(), 0, static_cast<cudaStream_t>(s)>>>(
      src.data, src.frame_stride, src.row_stride, (int)src.rows, (int)src.cols, dst.data,
      dst.frame_stride, dst.row_stride, (int)dst.rows, (int)dst.cols,
      reinterpret_cast<const k::map2*>(map));
  USFAST_CUDA_LAUNCHED();
}

template void remap_bilinear<float>(Image<const float>, Image<float>, const float*, void*);
template void remap_bilinear<uint8_t>(Image<const uint8_t>, Image<uint8_t>, const float*, void*);

}  // namespace cuda_launch
}  // namespace usfast
