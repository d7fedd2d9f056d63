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

// log(sigmoid(v)) without overflow for large |v|; with FAST (bfloat16) the MUFU log of 1 + e
// (absolute error ~1e-7, far under bf16's rounding) instead of log1pf's ~20-instruction chain,
// which sat on sLSTM's critical path every step
template <bool FAST>
__device__ __forceinline__ float log_sigmoid_(float v) {
  if constexpr (FAST) {
    return fminf(v, 0.0f) - __logf(1.0f + __expf(-fabsf(v)));
  } else {
    return fminf(v, 0.0f) - log1pf(__expf(-fabsf(v)));
  }
}

// a / b: with FAST (bfloat16) the 2-ulp MUFU reciprocal (|b| under 2^126), not IEEE division's
// reciprocal and Newton steps (sLSTM divides by its normaliser every step)
template <bool FAST>
__device__ __forceinline__ float div_(float a, float b) {
  if constexpr (FAST) {
    return __fdividef(a, b);
  } else {
    return a / b;
  }
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
