// Bindings for B-mode formation (usfast/bmode.hpp). One line per function and type.
#include "usfast/bmode.hpp"

#include "bindings/common.hpp"

using namespace usfast;
using bind::cptr;
using bind::exec;
using u = std::uintptr_t;

template <class T>
static void def_rf_ops(py::module_& m, const char* sfx) {
  std::string s(sfx);
  m.def(("fir_axial_" + s).c_str(), [](Image<const T> x, Image<float> y, u h, int n, int d, u st) {
    fir_axial<T>(x, y, cptr<float>(h), n, exec(d, st)); }, USFAST_NOGIL);
  m.def(("tgc_" + s).c_str(), [](Image<const T> x, Image<float> y, u g, int d, u st) {
    tgc<T>(x, y, cptr<float>(g), exec(d, st)); }, USFAST_NOGIL);
  m.def(("demodulate_" + s).c_str(), [](Image<const T> x, Image<cfloat> y, u h, int n, int dec, u mix, int d, u st) {
    demodulate<T>(x, y, cptr<float>(h), n, dec, cptr<cfloat>(mix), exec(d, st)); }, USFAST_NOGIL);
  m.def(("envelope_rf_" + s).c_str(), [](Image<const T> x, Image<float> y, u h, int n, int d, u st) {
    envelope_rf<T>(x, y, cptr<float>(h), n, exec(d, st)); }, USFAST_NOGIL);
  m.def(("envelope_log_" + s + "_f32").c_str(), [](Image<const T> x, Image<float> y, u h, int n, u ir, float g, float dr, int d, u st) {
    envelope_log<T, float>(x, y, cptr<float>(h), n, cptr<float>(ir), g, dr, exec(d, st)); }, USFAST_NOGIL);
  m.def(("envelope_log_" + s + "_u8").c_str(), [](Image<const T> x, Image<uint8_t> y, u h, int n, u ir, float g, float dr, int d, u st) {
    envelope_log<T, uint8_t>(x, y, cptr<float>(h), n, cptr<float>(ir), g, dr, exec(d, st)); }, USFAST_NOGIL);
  m.def(("bmode_" + s + "_f32").c_str(), [](Image<const T> x, Image<float> y, u h, int n, int dec, u mix, u ir, float g, float dr, int d, u st) {
    bmode<T, float>(x, y, cptr<float>(h), n, dec, cptr<cfloat>(mix), cptr<float>(ir), g, dr, exec(d, st)); }, USFAST_NOGIL);
  m.def(("bmode_" + s + "_u8").c_str(), [](Image<const T> x, Image<uint8_t> y, u h, int n, int dec, u mix, u ir, float g, float dr, int d, u st) {
    bmode<T, uint8_t>(x, y, cptr<float>(h), n, dec, cptr<cfloat>(mix), cptr<float>(ir), g, dr, exec(d, st)); }, USFAST_NOGIL);
}

template <class T, class O>
static void def_log(py::module_& m, const char* name) {
  m.def(name, [](Image<const T> x, Image<O> y, u ir, float g, float dr, int d, u st) {
    log_compress<T, O>(x, y, cptr<float>(ir), g, dr, exec(d, st)); }, USFAST_NOGIL);
}

USFAST_BINDINGS(bmode) {
  def_rf_ops<float>(m, "f32");
  def_rf_ops<int16_t>(m, "i16");
  def_log<float, float>(m, "log_compress_f32_f32");
  def_log<float, uint8_t>(m, "log_compress_f32_u8");
  def_log<cfloat, float>(m, "log_compress_c64_f32");
  def_log<cfloat, uint8_t>(m, "log_compress_c64_u8");
  m.def("envelope_iq", [](Image<const cfloat> x, Image<float> y, int d, u st) {
    envelope_iq(x, y, exec(d, st)); }, USFAST_NOGIL);
  m.def("persistence", [](Image<const float> x, Image<float> y, u init, int64_t irs, float a, int d, u st) {
    persistence(x, y, cptr<float>(init), irs, a, exec(d, st)); }, USFAST_NOGIL);
}
