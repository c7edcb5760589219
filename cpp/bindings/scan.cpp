// Bindings for scan conversion (usfast/scan.hpp).
#include "usfast/scan.hpp"

#include "bindings/common.hpp"

using namespace usfast;
using u = std::uintptr_t;

USFAST_BINDINGS(scan) {
  m.def("remap_f32", [](Image<const float> s, Image<float> o, u map, int d, u st) {
    remap_bilinear<float>(s, o, bind::cptr<float>(map), bind::exec(d, st)); }, USFAST_NOGIL);
  m.def("remap_u8", [](Image<const uint8_t> s, Image<uint8_t> o, u map, int d, u st) {
    remap_bilinear<uint8_t>(s, o, bind::cptr<float>(map), bind::exec(d, st)); }, USFAST_NOGIL);
}
