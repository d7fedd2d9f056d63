// `resets` (null where the call has none): where sequence b's flag at step t is set, its step t
// starts from the initial states, not from what step t - 1 left (a new document packed into the
// row, a new episode of a rollout). The kernels read them as bits: word [b / 32][t] holds the
// flags of sequences 32 (b / 32) .. 32 (b / 32) + 31 at step t, bit b % 32 (launchers.reset_words
// packs them), so a warp, whose columns of 8 sequences lie in one word each, reads one word a
// column tile and a step, and tests them all at once. They apply where states pass from one
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
// The restart runs in a branch the warp takes only on steps where one of its sequences starts
// afresh (about one step in 16 for 16 sequences of ~256-step documents): the steps between run
// the instructions of a call without resets, plus a word's load and test. No memory access on the
// reset path but the words' (read a step's product ahead of their test): loads of the initial
// states there, or flags tested right after their load, made every step wait for an L2 round
// trip; per-element flags tested on every step cost 28 % of a latency-bound step (LSTM 64x12
// B=16 forward, H100, 2026-12-07: docs/perf-notes.md).
#pragma once
#include "storage.cuh"

namespace fusedrnn {

// the word of `batch`'s flags at step t. Indices clamped into the tensor (padding sequences, the
// step past the last): starts_afresh ignores what they read. Only kernels built with resets read
// them (RESETS; the launcher passes zeros for none): an unconditional load, which the compiler
// leaves in flight until the test a step later.
__device__ __forceinline__ unsigned reset_word(const unsigned* __restrict__ resets, int batch, int B, int t,
                                               int steps) {
  return resets[size_t(min(batch, B - 1) >> 5) * steps + min(t, steps - 1)];
}

// whether `batch` starts afresh at step t, given its word of step t: a reset inside its length
// (step 0 starts from the initial states anyway)
__device__ __forceinline__ bool starts_afresh(unsigned word, int batch, int t, int valid_steps) {
  return (word >> (batch & 31) & 1u) != 0u && t > 0 && t < valid_steps;
}

// whether any of `count` words has a flag set: the branch into the restart, the same for a whole
// warp where its words are (the mma layout's)
template <int N>
__device__ __forceinline__ bool any_reset(const unsigned (&word)[N]) {
  unsigned any = 0u;
#pragma unroll
  for (int j = 0; j < N; ++j) any |= word[j];
  return any != 0u;
}

// A thread's reset words for its NT column tiles of the mma layout (layout.cuh: a tile's 8 sequences
// share a word, and so do the warp's lanes), each read a whole step before its test: the constructor
// starts reading step t's, take() hands out the words read so far and starts reading step t_ahead's.
// Without RESETS, all 0 and nothing read.
template <bool RESETS, class L>
struct ResetWords {
  unsigned ahead[L::NT] = {};

  __device__ ResetWords(const unsigned* __restrict__ resets, const L& at, int batch0, int B, int t, int steps) {
    if constexpr (RESETS)
#pragma unroll
      for (int j = 0; j < L::NT; ++j) ahead[j] = reset_word(resets, batch0 + at.col(j, 0), B, t, steps);
  }

  __device__ void take(unsigned (&word)[L::NT], const unsigned* __restrict__ resets, const L& at, int batch0, int B,
                       int t_ahead, int steps) {
#pragma unroll
    for (int j = 0; j < L::NT; ++j) {
      word[j] = ahead[j];
      if constexpr (RESETS) ahead[j] = reset_word(resets, batch0 + at.col(j, 0), B, t_ahead, steps);
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

// fn(j, e) for each element (j, e) of the mma layout (layout.cuh) whose sequence starts afresh at
// step t (a real element, t inside its length): in a branch the warp takes only where one of its
// words has a bit set, so the steps between run none of it
template <class L, class F>
__device__ __forceinline__ void for_each_restart(const unsigned (&word)[L::NT], const bool (&inside)[L::NT][4],
                                                 const int (&valid_steps)[L::NT][4], const L& at, int batch0, int t,
                                                 F&& fn) {
  if (!any_reset(word)) return;
#pragma unroll
  for (int j = 0; j < L::NT; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e)
      if (inside[j][e] && starts_afresh(word[j], batch0 + at.col(j, e), t, valid_steps[j][e])) fn(j, e);
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
