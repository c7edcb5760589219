#include <cstdio>

#include <usfast/usfast.hpp>

int main() {
  float env[2] = {1.f, 0.f}, out[2] = {-1.f, -1.f}, inv_ref = 1.f;
  usfast::Image<const float> in{env, 1, 1, 2, 2, 2};
  usfast::Image<float> o{out, 1, 1, 2, 2, 2};
  usfast::log_compress<float, float>(in, o, &inv_ref, 0.f, 60.f, usfast::Exec::cpu());
  std::printf("%g %g\n", out[0], out[1]);
  return (out[0] == 1.f && out[1] == 0.f) ? 0 : 1;
}
