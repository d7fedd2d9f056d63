// The forward for heads too large for one SM: each head is split over PARTS
// CTAs (DHP / ROWS), each holding ROWS rows of every gate of R in shared
// memory. Per step a CTA computes its rows of R h (its warps may split K and
// sum through shared memory), runs the cell on them, writes its slice of h_t
// to a global exchange buffer, waits at a barrier of the head's CTAs, and
// reloads all of h_t from there (an L2 round trip). Same tensors as
// one_sm_forward.cuh, plus exchange [2, B, NH, DH] and arrival flags [tiles, NH, PARTS, 32] (zeroed).
#pragma once
#include "grid_barrier.cuh"
#include "elements.cuh"
#include "recurrent_product.cuh"
#include "resets.cuh"
#include "ring.cuh"

namespace fusedrnn {

template <class Cell, class T, int DHP, int ROWS, int KSPLIT, int NT, int DEPTH, int VEC, bool FAST, bool RESETS>
__global__ void __launch_bounds__(Layout<T, DHP, Cell::GR, NT, 1, ROWS, KSPLIT>::THREADS, 1)
    fused_split_forward_kernel(const T* __restrict__ x, const T* __restrict__ R, const T* __restrict__ bias,
                               const T* __restrict__ states, const long long* __restrict__ lengths,
                               const unsigned* __restrict__ resets, T* __restrict__ y,
                               T* __restrict__ final_states, float* __restrict__ saved,
                               T* __restrict__ exchange, unsigned* __restrict__ arrivals, int B, int steps, int NH,
                               int DH) {
  using L = Layout<T, DHP, Cell::GR, NT, 1, ROWS, KSPLIT>;
  if constexpr (!RESETS) resets = nullptr;  // folds every reset test away: the kernel of a call without resets
  constexpr int PARTS = DHP / ROWS;
  using XRing = StepRing<T, Cell::GX, ROWS, L::BT, DEPTH>;
  using HTile = StepRing<T, 1, DHP, L::BT, 1>;  // the whole h_{t-1}, [BT][LDH]
  extern __shared__ __align__(16) unsigned char smem[];
  T* Rs = reinterpret_cast<T*>(smem);
  const HTile ht{Rs + L::R_ELEMS};
  const XRing xr{ht.base + HTile::ELEMS};
  float* partial = reinterpret_cast<float*>(xr.base + XRing::ELEMS);  // [KSPLIT-1][ROW_BLOCKS][G][NT][4][32]

  const int n = blockIdx.x / PARTS, part = blockIdx.x % PARTS, row0 = part * ROWS, batch0 = blockIdx.y * L::BT;
  const ResetRing<L::BT, DEPTH> reset_ring{reinterpret_cast<unsigned*>(partial + L::PARTIAL_FLOATS), resets, batch0, B,
                                           steps};  // with RESETS only
  unsigned* flags = arrivals + (size_t(blockIdx.y) * NH + n) * PARTS * FLAG_STRIDE;  // this head's
  const L at;
  const bool owner = at.k_split == 0;  // the warps that run the cell on the CTA's rows
  const size_t head_stride = size_t(NH) * DH, state_stride = size_t(B) * head_stride;
  const int valid_sequences = min(L::BT, B - batch0);

  xr.zero(L::THREADS);
  ht.zero(L::THREADS);
  load_recurrent_weights<L>(Rs, R, n, NH, DH, row0);
  __syncthreads();
  const auto h_copier = make_copier<HTile, T, 1, DHP, L::BT, VEC, L::THREADS>(
      ht, [=](int c, int) { return exchange + (batch0 + c) * head_stride + n * DH; }, valid_sequences, DH,
      state_stride);
  const auto h0_copier = make_copier<HTile, T, 1, DHP, L::BT, VEC, L::THREADS>(
      ht, [=](int c, int) { return states + (batch0 + c) * head_stride + n * DH; }, valid_sequences, DH, 0);
  const auto x_copier = make_copier<XRing, T, Cell::GX, ROWS, L::BT, VEC, L::THREADS>(
      xr, [=](int c, int g) { return x + (size_t(batch0 + c) * steps * Cell::GX + g) * head_stride + n * DH + row0; },
      valid_sequences, min(ROWS, DH - row0), Cell::GX * head_stride);
  h0_copier.fill(0, 0);
  commit_copies();
  const auto fill_step = [&](int t) {
    x_copier.fill(t % DEPTH, t);
    if constexpr (RESETS) reset_ring.fill(t % DEPTH, t);
  };
  for (int s = 0; s < DEPTH - 1; ++s) {
    if (s < steps) fill_step(s);
    commit_copies();
  }
  const WeightFragments<L, T, false> weights(Rs, at);

  const ThreadElements<L> el(at, owner, batch0, row0, n, B, NH, DH, steps, lengths);
  const auto& inside = el.inside;
  const auto& valid_steps = el.valid_steps;
  const auto& offset = el.offset;
  float s[4][L::NT][4] = {}, b[4][2] = {};
  el.template load<Cell::S>(s, states, state_stride);
  float s0[4][L::NT][4] = {};  // the initial states, where resets start a sequence again
  if (resets) el.template load<Cell::S, T, true>(s0, states, state_stride);
  if (saved) el.template store<Cell::S, 1>(saved, s, state_stride);  // slot 0: the initial states 1..S-1
  load_biases<Cell::GB>(b, bias, at, row0, n, NH, DH);
  T* y_at[L::NT][4];  // this thread's elements of the current step in y
  output_pointers(y_at, y, at, batch0, row0, n, DH, steps, head_stride);
  wait_copies<DEPTH - 2>();
  __syncthreads();

  for (int t = 0; t < steps; ++t) {
    unsigned word[L::NT] = {};  // resets at step t + 1
    if constexpr (RESETS) reset_ring.column_words(word, t % DEPTH, at);
    float acc[4][L::NT][4] = {};
    recurrent_product<L>(acc, weights, ht.base, at);
    add_k_slices<Cell::GR>(acc, partial, at);  // the other K slices into the owners' accumulators
    T* h_out = exchange + (t % 2) * state_stride;
    if (owner)
#pragma unroll
      for (int j = 0; j < L::NT; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const bool valid = cell_step_at<Cell, FAST>(xr, acc, b, s, at, t, j, e, valid_steps[j][e]);
          if (inside[j][e]) {
            const T h = Storage<T>::store(s[0][j][e]);
            h_out[offset[j][e]] = h;
            *y_at[j][e] = valid ? h : Storage<T>::store(0.0f);
            if (saved)
#pragma unroll
              for (int k = 1; k < Cell::S; ++k)
                saved[(size_t(t + 1) * (Cell::S - 1) + k - 1) * state_stride + offset[j][e]] = s[k][j][e];
          }
          y_at[j][e] += head_stride;
        }
    if constexpr (RESETS)  // sequences starting afresh at t + 1 carry the initial states (and save them)
      for_each_restart<L>(word, inside, valid_steps, at, batch0, t + 1, [&](int j, int e) {  // owners only: inside
#pragma unroll
        for (int k = 0; k < Cell::S; ++k) s[k][j][e] = s0[k][j][e];
        h_out[offset[j][e]] = Storage<T>::store(s0[0][j][e]);
        if (saved)
#pragma unroll
          for (int k = 1; k < Cell::S; ++k)
            saved[(size_t(t + 1) * (Cell::S - 1) + k - 1) * state_stride + offset[j][e]] = s0[k][j][e];
      });
    grid_barrier<PARTS>(flags, part, unsigned(t + 1));
    h_copier.fill(0, t % 2);  // all of h_t, from every part
    commit_copies();
    if (t + DEPTH - 1 < steps) fill_step(t + DEPTH - 1);
    commit_copies();
    wait_copies<(DEPTH > 2 ? 1 : 0)>();  // h_t and the next step's x; a later step's x may still be on its way
    __syncthreads();
  }

  el.template store<Cell::S>(final_states, s, state_stride);
}

}  // namespace fusedrnn
