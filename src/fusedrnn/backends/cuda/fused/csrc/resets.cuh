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
// the instructions of a call without resets, plus a word's read from shared memory and its test.
// No memory access on the reset path: the words arrive with the step's other inputs
// (ResetRing); loads of the initial states there, flags tested right after their global load, or
// a global load kept in flight for a step made every step wait for an L2 round trip; per-element
// flags tested on every step cost 28 % of a latency-bound step (LSTM 64x12 B=16 forward, H100,
// 2026-12-07: docs/perf-notes.md).
#pragma once
#include "storage.cuh"

namespace fusedrnn {

// A value of the initial states, loaded to be held in a register for the whole call: a volatile
// load, which ptxas may not repeat. From a plain __restrict__ load (ld.global.nc) it rebuilt the
// value on the reset path instead, loading it again there (the one-SM forward at LSTM 64x12:
// eight LDG a restart, an L2 round trip each time a warp's tile restarts).
template <class T>
__device__ __forceinline__ float load_held(const T* p) {
  static_assert(sizeof(T) == 2 || sizeof(T) == 4, "half, bfloat16 or float");
  T v;
  if constexpr (sizeof(T) == 2) {
    const unsigned short bits = *reinterpret_cast<const volatile unsigned short*>(p);
    memcpy(&v, &bits, sizeof(T));
  } else {
    const unsigned bits = *reinterpret_cast<const volatile unsigned*>(p);
    memcpy(&v, &bits, sizeof(T));
  }
  return Storage<T>::load(v);
}

// The reset words of a CTA's tile of BT sequences from batch0, staged into shared memory
// [DEPTH][WORDS] by cp.async with the step's other inputs (ring.cuh: in the same commit groups,
// so a step's words have landed where its inputs have): the slot of step t holds the words of
// step t + 1, whether the states step t hands on start afresh, which the forward tests after
// step t's cell and the backward at the top of step t. A plain load kept in flight for a step
// instead holds one of a warp's six scoreboards, and ptxas waited on it within the step
// anyway (sharing it with shared-memory loads, or at a branch): an L2 round trip a step, +60 %
// in the cluster backward at LSTM 64x12 B=16 (H100, 2026-12-07; docs/perf-notes.md).
// TILE_ALIGNED: batch0 is a multiple of BT (a tile of 8, 16 or 32 then lies in one word).
template <int BT, int DEPTH, bool TILE_ALIGNED = true>
struct ResetRing {
  static constexpr int WORDS = TILE_ALIGNED && 32 % BT == 0 ? 1
                               : TILE_ALIGNED && BT % 32 == 0 ? BT / 32
                                                              : (BT + 30) / 32 + 1;  // from any batch0
  static constexpr int ELEMS = WORDS * DEPTH;  // unsigned; the host's reset_ring_bytes
  unsigned* base;
  const unsigned* __restrict__ resets;
  int batch0, B, steps;

  // start copying the tile's words of step t + 1 (the step past the last clamped: never tested)
  // into ring slot `slot`; threads 0 .. WORDS - 1 copy a word each
  __device__ void fill(int slot, int t) const {
    if (threadIdx.x >= WORDS) return;
    // clamped: a word wholly past B holds none of the tile's real sequences, and the word B - 1
    // lies in is the tile's word that sequence lies in
    const int batch = min(batch0 + 32 * int(threadIdx.x), B - 1);
    const unsigned* from = resets + size_t(batch >> 5) * steps + min(t + 1, steps - 1);
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4;" ::"r"(shared_address(base + slot * WORDS + threadIdx.x)),
                 "l"(from));
  }
  // the word holding sequence `batch`'s flag (batch0 <= batch < batch0 + BT) in slot `slot`
  __device__ unsigned word(int slot, int batch) const {
    if constexpr (WORDS == 1)
      return base[slot];
    else
      return base[slot * WORDS + (batch >> 5) - (batch0 >> 5)];
  }
  // a thread's words for its NT column tiles of the mma layout (layout.cuh: a tile's 8 sequences,
  // from a multiple of 8, share one), from slot `slot`
  template <class L>
  __device__ void column_words(unsigned (&w)[L::NT], int slot, const L& at) const {
#pragma unroll
    for (int j = 0; j < L::NT; ++j) w[j] = word(slot, batch0 + at.col(j, 0));
  }
};

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
