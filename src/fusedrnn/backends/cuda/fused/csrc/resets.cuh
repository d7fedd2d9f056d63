// `resets` [B, T] uint8 (null where the call has none): where resets[b, t] is set, sequence b's
// step t starts from the initial states, not from what step t - 1 left (a new document packed
// into the row, a new episode of a rollout). The kernels apply it where states pass from one
// step to the next, and nowhere else, so that a call without resets runs as before:
//   forward:  after step t - 1's cell, the states carried into step t (h too, the next
//             product's input, and the saved states the backward reads) are the initial ones;
//             y of step t - 1 keeps the h the step computed.
//   backward: the gradient of the states entering step t, which would flow on to step t - 1,
//             goes into `dinit` instead ([S, B, NH, DH] fp32, zeroed; the launcher adds it to
//             the initial states' gradient, which step 0 gives as always). h entering each step
//             comes from `h_entering` [B, T, NH, DH] (y shifted, the initial h at step 0 and at
//             each reset) rather than from y.
// A thread owns its elements for the whole call, so each dinit element is summed by one thread
// in step order: deterministic.
#pragma once
#include "storage.cuh"

namespace fusedrnn {

// whether sequence `batch` starts afresh at step t: a reset inside its length (step 0 starts from
// the initial states anyway)
__device__ __forceinline__ bool starts_afresh(const unsigned char* __restrict__ resets, size_t batch, int t,
                                              int steps, int valid_steps) {
  return resets != nullptr && t > 0 && t < valid_steps && resets[batch * steps + t] != 0;
}

// state k of the element at `offset` of the initial states [S, B, NH, DH]
template <class T>
__device__ __forceinline__ float initial_state(const T* __restrict__ states, int k, size_t state_stride,
                                               size_t offset) {
  return Storage<T>::load(states[k * state_stride + offset]);
}

}  // namespace fusedrnn
