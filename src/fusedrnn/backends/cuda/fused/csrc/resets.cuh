// `resets` [B, T] uint8 (null where the call has none): where resets[b, t] is set, sequence b's
// step t starts from the initial states, not from what step t - 1 left (a new document packed
// into the row, a new episode of a rollout). The kernels apply it where states pass from one
// step to the next, and nowhere else, so that a call without resets runs as before:
//   forward:  after step t - 1's cell, the states carried into step t (h too, the next
//             product's input, and the saved states the backward reads) are the initial ones,
//             which the thread holds in registers from the start; y of step t - 1 keeps the h
//             the step computed.
//   backward: the gradient of the states entering step t, which would flow on to step t - 1,
//             is summed in registers instead and added to the initial states' gradient (which
//             step 0 gives as always) at the end: each thread owns its elements for the whole
//             call, so the sum runs in step order (deterministic). h entering each step comes
//             from `h_entering` [B, T, NH, DH] (y shifted, the initial h at step 0 and at each
//             reset) rather than from y.
// No memory access on the reset path but the flags' (read a step's product ahead of their
// test): loads of the initial states there, or of a gradient buffer, were issued by ptxas
// before the product, predicated on the flags, and every step waited for the flags' load
// (LSTM 64x12 forward 1.6x slower with resets, H100, 2026-12-07).
#pragma once
#include "storage.cuh"

namespace fusedrnn {

// resets[batch][t], read a step ahead of its use and tested there (starts_afresh): read into a
// bool at once, the compiler waited for the load on the spot and hoisted the initial states'
// loads before the product (LSTM 64x12 forward 1.6x slower). Indices clamped into the tensor
// (padding sequences, the step past the last): starts_afresh ignores what they read. Only
// kernels built with resets read them (RESETS; the launcher passes zeros for none): an
// unconditional load, which the compiler leaves in flight until the test.
__device__ __forceinline__ unsigned reset_flag(const unsigned char* __restrict__ resets, int batch, int B, int t,
                                               int steps) {
  return resets[size_t(min(batch, B - 1)) * steps + min(t, steps - 1)];
}

// whether a sequence whose flag at step t is `flag` starts afresh there: a reset inside its
// length (step 0 starts from the initial states anyway)
__device__ __forceinline__ bool starts_afresh(unsigned flag, int t, int valid_steps) {
  return flag != 0u && t > 0 && t < valid_steps;
}

// A thread's reset flags for its NT x 4 elements of the mma layout (layout.cuh), each read a
// whole step before its test: the constructor starts reading step t's, take() hands out the
// flags read so far and starts reading step t_ahead's. Without RESETS, all 0 and nothing read.
template <bool RESETS, class L>
struct ElementFlags {
  unsigned ahead[L::NT][4] = {};

  __device__ ElementFlags(const unsigned char* __restrict__ resets, const L& at, int batch0, int B, int t,
                          int steps) {
    if constexpr (RESETS)
#pragma unroll
      for (int j = 0; j < L::NT; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) ahead[j][e] = reset_flag(resets, batch0 + at.col(j, e), B, t, steps);
  }

  __device__ void take(unsigned (&flag)[L::NT][4], const unsigned char* __restrict__ resets, const L& at, int batch0,
                       int B, int t_ahead, int steps) {
#pragma unroll
    for (int j = 0; j < L::NT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        flag[j][e] = ahead[j][e];
        if constexpr (RESETS) ahead[j][e] = reset_flag(resets, batch0 + at.col(j, e), B, t_ahead, steps);
      }
  }
};

// element (j, e)'s states entering a step that started afresh were the initial ones: their gradient
// goes to the initial states' (d_init), none on to the step before
template <int S, class L>
__device__ __forceinline__ void hand_to_initial(float (&d_state)[4][L::NT][4], float (&d_init)[4][L::NT][4], int j,
                                                int e) {
#pragma unroll
  for (int k = 0; k < S; ++k) {
    d_init[k][j][e] += d_state[k][j][e];
    d_state[k][j][e] = 0.0f;
  }
}

// the gradients of the states entering the steps resets started, summed by the thread, added to
// its gradient of the initial states (step 0's) before the store
template <int S, class L>
__device__ __forceinline__ void add_restart_gradients(float (&d_state)[4][L::NT][4], const float (&d_init)[4][L::NT][4]) {
#pragma unroll
  for (int k = 0; k < S; ++k)
#pragma unroll
    for (int j = 0; j < L::NT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) d_state[k][j][e] += d_init[k][j][e];
}

}  // namespace fusedrnn
