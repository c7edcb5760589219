// Public scan-conversion API: validation, then dispatch.
#include "usfast/scan.hpp"

#include <cstdint>

#include "src/dispatch.hpp"
#include "src/scan_launch.hpp"

namespace usfast {

template <class T>
void remap_bilinear(Image<const T> src, Image<T> dst, const float* map, const Exec& ex) {
  const char* fn = "scan_convert";
  detail::check_image(fn, "data", src);
  detail::check_image(fn, "out", dst);
  require(dst.frames == src.frames, fn, "out", "as many frames as the input");
  detail::check_ptr(fn, "map", map);
  USFAST_DISPATCH(fn, ex, cpu::remap_bilinear(src, dst, map),
                  cuda_launch::remap_bilinear(src, dst, map, ex.stream));
}

template void remap_bilinear<float>(Image<const float>, Image<float>, const float*, const Exec&);
template void remap_bilinear<uint8_t>(Image<const uint8_t>, Image<uint8_t>, const float*, const Exec&);

}  // namespace usfast
