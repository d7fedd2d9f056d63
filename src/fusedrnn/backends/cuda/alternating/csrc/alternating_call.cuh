// The cuda_alternating backend's view of one call: the caller's tensors, which
// change every call, reach the kernels through this struct in device memory
// instead of as kernel arguments, so one captured CUDA graph serves every call
// of its shape (a graph bakes its kernel arguments). Only the chunk staging
// kernels read through these pointers, once per chunk of steps; the per-step
// kernels only store through them (stores add no latency to a step), but for
// the forward's read of the initial states at a reset, off the common path.
//
// The host mirrors this layout as 12 int64 (workspace.py, CALL_FIELDS).
#pragma once
#include "storage.cuh"

namespace fusedrnn {

struct AlternatingCall {
  const void* x;                // [B, T, GX, NH, DH]
  const void* initial;          // [S, B, NH, DH]: the call's states, h first (step 0's and each reset's)
  const unsigned char* resets;  // [B, T]: step t of sequence b starts from `initial`; null: no resets
  const void* y_in;             // [B, T, NH, DH]: the forward's y (backward)
  const void* dy;               // [B, T, NH, DH] (backward)
  const float* saved_in;        // [T + 1, S - 1, B, NH, DH] fp32, or null (backward)
  void* y;                      // [B, T, NH, DH] (forward)
  float* saved;                 // [T + 1, S - 1, B, NH, DH] fp32, or null (forward)
  void* dx;                     // [B, T, GX, NH, DH] (backward)
  void* drec;                   // [NH, B * T, GR * DH] in T, null where the cell's gates are sums (backward)
  long long steps;              // T
  long long done;               // steps the earlier chunks ran; each chunk adds its size at its end
};

// Runs as one thread: a kernel (not a host copy) so that it can be captured too.
__global__ void alternating_set_call(AlternatingCall* call, const void* x, const void* initial,
                                     const unsigned char* resets, const void* y_in, const void* dy,
                                     const float* saved_in, void* y, float* saved, void* dx, void* drec, int steps) {
  *call = AlternatingCall{x, initial, resets, y_in, dy, saved_in, y, saved, dx, drec, steps, 0};
}

// The time step that position k of the current chunk runs: forward counts up
// from 0, backward down from T - 1.
template <bool BACKWARD>
__device__ __forceinline__ long long chunk_step(const AlternatingCall* call, int k) {
  const long long position = call->done + k;
  return BACKWARD ? call->steps - 1 - position : position;
}

}  // namespace fusedrnn
