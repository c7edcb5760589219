// CPU launcher for scan conversion (kernels/scan.cuh).
#include "kernels/scan.cuh"

#include "src/cpu/parallel.hpp"
#include "src/scan_launch.hpp"

namespace usfast {
namespace cpu {

template <class T>
void remap_bilinear(Image<const T> src, Image<T> dst, const float* map) {
  const int SR = (int)src.rows, SC = (int)src.cols;
  const int64_t C = dst.cols;
  const k::map2* m = reinterpret_cast<const k::map2*>(map);
  parallel_rows(dst.frames, dst.rows, dst.cols, [&](int64_t f, int64_t r) {
    const T* sf = src.data + f * src.frame_stride;
    T* dr = &dst.at(f, r, 0);
    const k::map2* mr = m + r * C;
#pragma omp simd
    for (int64_t c = 0; c < C; ++c)
      k::store_sample(&dr[c], k::bilinear_px(sf, src.row_stride, SR, SC, mr[c]));
  });
}

template void remap_bilinear<float>(Image<const float>, Image<float>, const float*);
template void remap_bilinear<uint8_t>(Image<const uint8_t>, Image<uint8_t>, const float*);

}  // namespace cpu
}  // namespace usfast
