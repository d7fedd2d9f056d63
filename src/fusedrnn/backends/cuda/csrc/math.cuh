// Scalar math shared by every cell: fp32 in, fp32 out.
#pragma once

namespace fusedrnn {

// MUFU tanh (one instruction, ~2^-11 relative error): used where the storage
// type rounds harder than that anyway (bfloat16), exact tanhf otherwise.
template <bool FAST>
__device__ __forceinline__ float tanh_(float v) {
  if constexpr (FAST) {
    float out;
    asm("tanh.approx.f32 %0, %1;" : "=f"(out) : "f"(v));
    return out;
  } else {
    return tanhf(v);
  }
}

template <bool FAST>
__device__ __forceinline__ float sigmoid_(float v) {
  if constexpr (FAST) {
    return 0.5f + 0.5f * tanh_<true>(0.5f * v);
  } else {
    return 1.0f / (1.0f + __expf(-v));
  }
}

// log(sigmoid(v)) without overflow for large |v|
__device__ __forceinline__ float log_sigmoid_(float v) {
  return fminf(v, 0.0f) - log1pf(__expf(-fabsf(v)));
}

}  // namespace fusedrnn
