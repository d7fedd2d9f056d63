// Storage types: how a tensor element converts to and from fp32, and the
// tensor-core instruction that multiplies it.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace fusedrnn {

template <class T>
struct Storage;

template <>
struct Storage<float> {
  static constexpr bool tensor_cores = false;  // fp32 must match torch's fp32: no tf32
  __device__ static float load(float v) { return v; }
  __device__ static float store(float v) { return v; }
};

template <>
struct Storage<__half> {
  static constexpr bool tensor_cores = true;
  __device__ static float load(__half v) { return __half2float(v); }
  __device__ static __half store(float v) { return __float2half_rn(v); }
  __device__ static void mma(float (&d)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
    asm(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
};

template <>
struct Storage<__nv_bfloat16> {
  static constexpr bool tensor_cores = true;
  __device__ static float load(__nv_bfloat16 v) { return __bfloat162float(v); }
  __device__ static __nv_bfloat16 store(float v) { return __float2bfloat16_rn(v); }
  __device__ static void mma(float (&d)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
    asm(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
};

__device__ __forceinline__ unsigned shared_address(const void* p) {
  return static_cast<unsigned>(__cvta_generic_to_shared(p));
}

// A global pointer stepped in a loop, hidden from the optimiser at each step so that it stays one
// register bumped by its stride: NVVM otherwise may rebuild it as base + t * stride at every use
// (the one-SM forward with resets: a 64-bit multiply chain of ~14 instructions an element a step,
// +24 % at LSTM 64x12 B=16, H100, 2026-12-07; docs/perf-notes.md). Through the global window, so
// the stores through it stay st.global (an opaque generic pointer makes them generic stores).
template <class P>
__device__ __forceinline__ void keep_stepped(P*& pointer) {
  size_t global = __cvta_generic_to_global(pointer);
  asm volatile("" : "+l"(global));
  pointer = static_cast<P*>(__cvta_global_to_generic(global));
}

// Four 8x8 b16 matrices from shared memory; lane l gives the row address of
// matrix l / 8. With TRANSPOSE each matrix arrives transposed.
template <bool TRANSPOSE>
__device__ __forceinline__ void load_matrix_x4(unsigned (&r)[4], const void* row) {
  if constexpr (TRANSPOSE) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(shared_address(row)));
  } else {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(shared_address(row)));
  }
}

__device__ __forceinline__ void load_matrix_x2(unsigned& r0, unsigned& r1, const void* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];"
               : "=r"(r0), "=r"(r1) : "r"(shared_address(row)));
}

// The same at shared address `base` + OFFSET bytes, the offset an immediate of the instruction: a
// product that reads many fragments at fixed distances from one per-lane address keeps that one
// address in a register, whatever the compiler's loop-invariant hoisting does (NVRTC 13.0's ptxas
// kept one register an address where they were computed as separate pointers: 76 at LSTM 768x1).
template <int OFFSET, bool TRANSPOSE = false>
__device__ __forceinline__ void load_matrix_x4_at(unsigned (&r)[4], unsigned base) {
  if constexpr (TRANSPOSE) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4+%5];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(base), "n"(OFFSET));
  } else {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4+%5];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(base), "n"(OFFSET));
  }
}

template <int OFFSET>
__device__ __forceinline__ void load_matrix_x2_at(unsigned& r0, unsigned& r1, unsigned base) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2+%3];"
               : "=r"(r0), "=r"(r1) : "r"(base), "n"(OFFSET));
}

}  // namespace fusedrnn
