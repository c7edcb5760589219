// Launchers behind the public scan-conversion API.
#pragma once
#include "usfast/scan.hpp"

namespace usfast {
namespace cpu {
template <class T>
void remap_bilinear(Image<const T> src, Image<T> dst, const float* map);
}
namespace cuda_launch {
template <class T>
void remap_bilinear(Image<const T> src, Image<T> dst, const float* map, void* stream);
}
}  // namespace usfast
