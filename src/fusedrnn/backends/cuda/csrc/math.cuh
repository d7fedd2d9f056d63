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

// exp and log as a generated cell (backends/cuda/cell_codegen.py) prints them: the MUFU
// approximations (a few ulp more, growing with |v| for exp) where the storage rounds harder
// (bfloat16), the accurate functions otherwise
template <bool FAST>
__device__ __forceinline__ float exp_(float v) {
  if constexpr (FAST) {
    return __expf(v);
  } else {
    return expf(v);
  }
}

template <bool FAST>
__device__ __forceinline__ float log_(float v) {
  if constexpr (FAST) {
    return __logf(v);
  } else {
    return logf(v);
  }
}

// -1, 0 or 1 as torch.sign (NaN and -0 pass through): the derivative of abs
__device__ __forceinline__ float sign_(float v) { return v > 0.0f ? 1.0f : (v < 0.0f ? -1.0f : v); }

// v to a whole power N >= 0 by repeated squaring (z**n of a generated cell, n an integer)
template <int N>
__device__ __forceinline__ float power_(float v) {
  if constexpr (N == 0) {
    return 1.0f;
  } else if constexpr (N == 1) {
    return v;
  } else {
    const float half = power_<N / 2>(v);
    return N % 2 ? half * half * v : half * half;
  }
}

}  // namespace fusedrnn
