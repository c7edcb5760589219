// Scan conversion: beam space (samples x lines) to a Cartesian image through a precomputed map.
#pragma once
#include "usfast/core.hpp"

namespace usfast {

// dst[f, r, c] = bilinear(src[f], map[r * dst.cols + c]) where map holds (row, col) pairs of
// fractional source coordinates as 2 floats per output pixel; a pair outside the source (use
// row = -1) gives 0. T = float or uint8_t (rounded). `map` lives where the call runs.
template <class T>
void remap_bilinear(Image<const T> src, Image<T> dst, const float* map, const Exec& ex);

}  // namespace usfast
