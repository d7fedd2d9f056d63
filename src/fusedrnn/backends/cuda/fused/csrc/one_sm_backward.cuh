// The persistent backward kernel: the forward's CTA layout walking time in
// reverse with R in shared memory. Per step t it recomputes R h_{t-1} from y
// (h exactly as the forward's product saw it), runs the cell's gradient, writes
// dx and drec, sums db, and sends R^T drec back into dh: the only product on
// the sequential chain. Everything a step reads from memory (x, dy, the saved
// states, h_{t-1}) arrives DEPTH - 1 steps ahead by cp.async; one
// __syncthreads a step. dR is one large GEMM of drec with h over all steps,
// on the host side.
//
// Adds to the forward's arguments: y, saved (states 1..S-1 entering every step),
// dy [B, T, NH, DH], dfinal [S, B, NH, DH]; writes dx [B, T, GX, NH, DH], drec [NH, B * T, GR * DH]
// in T (only where the cell's gates are not sums; else drec is dx and the pointer is null),
// db_partial [tiles, GB, NH, DH] fp32, dstates [S, B, NH, DH]; with resets (null where none),
// h_entering as resets.cuh says.
#pragma once
#include "elements.cuh"
#include "recurrent_product.cuh"
#include "resets.cuh"
#include "backward_inputs.cuh"

namespace fusedrnn {

template <class Cell, class T, int DHP, int NT, int WN, int DEPTH, int VEC, bool FAST, bool RESETS>
__global__ void __launch_bounds__(Layout<T, DHP, Cell::GR, NT, WN>::THREADS, 1)
    fused_backward_kernel(const T* __restrict__ x, const T* __restrict__ R, const T* __restrict__ bias,
                          const T* __restrict__ states, const long long* __restrict__ lengths,
                          const unsigned* __restrict__ resets, const T* __restrict__ y,
                          const T* __restrict__ h_entering, const float* __restrict__ saved,
                          const T* __restrict__ dy, const T* __restrict__ dfinal, T* __restrict__ dx,
                          T* __restrict__ drec, float* __restrict__ db_partial, T* __restrict__ dstates, int B,
                          int steps, int NH, int DH) {
  using L = Layout<T, DHP, Cell::GR, NT, WN>;
  if constexpr (!RESETS) resets = nullptr, h_entering = nullptr;  // folds every reset test away (no resets)
  constexpr int SAVED = Cell::S > 1 ? Cell::S - 1 : 1;
  using XRing = StepRing<T, Cell::GX, DHP, L::BT, DEPTH>;
  using HRing = StepRing<T, 1, DHP, L::BT, DEPTH>;  // h_{t-1}: the [BT][LDH] tile ldmatrix reads
  using SavedRing = StepRing<float, SAVED, DHP, L::BT, DEPTH>;
  extern __shared__ __align__(16) unsigned char smem[];
  T* Rs = reinterpret_cast<T*>(smem);
  T* ds = Rs + L::R_ELEMS;  // [2][BT][LDD]: drec of the step, double-buffered
  const XRing xr{ds + 2 * L::D_ELEMS};
  const HRing hr{xr.base + XRing::ELEMS}, dyr{hr.base + HRing::ELEMS};
  const SavedRing sr{reinterpret_cast<float*>(dyr.base + HRing::ELEMS)};
  __shared__ float db_sum[L::WN][4][L::DHP];
  const int n = blockIdx.x, batch0 = blockIdx.y * L::BT;
  const ResetRing<L::BT, DEPTH> reset_ring{reinterpret_cast<unsigned*>(sr.base + SavedRing::ELEMS), resets, batch0,
                                           B, steps};  // with RESETS only
  const L at;
  const size_t head_stride = size_t(NH) * DH;
  const size_t state_stride = size_t(B) * head_stride;
  xr.zero(L::THREADS);
  hr.zero(L::THREADS);
  dyr.zero(L::THREADS);
  sr.zero(L::THREADS);
  load_recurrent_weights<L>(Rs, R, n, NH, DH);
  __syncthreads();  // the zeros land before any copy into the rings
  // everything step t reads, into ring slot (steps - 1 - t) % DEPTH
  const int valid_sequences = min(L::BT, B - batch0);
  const BackwardInputs<Cell, VEC, L::THREADS, XRing, HRing, HRing, SavedRing> inputs(
      xr, dyr, hr, sr, x, y, h_entering, dy, states, saved, batch0, n, 0, DH, 0, DH, valid_sequences, steps, B, NH,
      DH);
  const auto fill_step = [&](int t) {
    inputs.fill(t);
    if constexpr (RESETS) reset_ring.fill((steps - 1 - t) % DEPTH, t);
  };
  for (int o = 0; o < DEPTH - 1; ++o) {
    if (o < steps) fill_step(steps - 1 - o);
    commit_copies();
  }
  const WeightFragments<L, T, false> weights(Rs, at);

  const ThreadElements<L> el(at, true, batch0, 0, n, B, NH, DH, steps, lengths);
  const auto& inside = el.inside;
  const auto& valid_steps = el.valid_steps;
  float d_state[4][L::NT][4] = {}, b[4][2] = {}, db[4][2] = {};
  float d_init[4][L::NT][4] = {};  // the gradient of the states entering the steps resets start
  el.template load<Cell::S>(d_state, dfinal, state_stride);
  load_biases<Cell::GB>(b, bias, at, 0, n, NH, DH);
  // where this thread's elements of the current step (from the last) go in dx and drec
  T* dx_at[L::NT][4];
  T* drec_at[L::NT][4];  // unused where Cell::SUMS
#pragma unroll
  for (int j = 0; j < L::NT; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const size_t batch = size_t(batch0 + at.col(j, e));
      dx_at[j][e] = dx + (batch * steps + steps - 1) * Cell::GX * head_stride + n * DH + at.row(e);
      if constexpr (!Cell::SUMS)
        drec_at[j][e] = drec + ((size_t(n) * B + batch) * steps + steps - 1) * Cell::GR * DH + at.row(e);
    }
  wait_copies<DEPTH - 2>();
  __syncthreads();

  // R h_{t-1} does not depend on the gradient chain: each step computes the next
  // step's while its R^T drec product runs, two independent sets of mma in flight
  float acc_next[4][L::NT][4] = {};
  recurrent_product<L>(acc_next, weights, hr.slot(0), at);
  for (int t = steps - 1; t >= 0; --t) {
    const int order = steps - 1 - t;
    if (t - (DEPTH - 1) >= 0) fill_step(t - (DEPTH - 1));
    commit_copies();
    T* d_tile = ds + (order % 2) * L::D_ELEMS;
    if constexpr (RESETS) {  // the states entering step t + 1 of sequences it started afresh were the initial ones
      unsigned word[L::NT];
      reset_ring.column_words(word, order % DEPTH, at);
      for_each_restart<L>(word, inside, valid_steps, at, batch0, t + 1,
                          [&](int j, int e) { hand_to_initial<Cell::S, L>(d_state, d_init, j, e); });
    }

    float acc[4][L::NT][4];
#pragma unroll
    for (int g = 0; g < 4; ++g)
#pragma unroll
      for (int j = 0; j < L::NT; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[g][j][e] = acc_next[g][j][e], acc_next[g][j][e] = 0.0f;
    float q[4][L::NT][4] = {};  // d(loss)/d(states entering step t), but for R^T drec
#pragma unroll
    for (int j = 0; j < L::NT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int c = at.col(j, e), i = at.row(e);
        const bool valid = t < valid_steps[j][e];
        Gates xg = {}, rg, bg, sg = {}, dg, gx = {}, gr = {}, gb = {}, dprev = {};
#pragma unroll
        for (int g = 0; g < Cell::GX; ++g) xg[g] = xr.at(order, c, g, i);
#pragma unroll
        for (int k = 1; k < Cell::S; ++k) sg[k] = sr.at(order, c, k - 1, i);
        sg[0] = hr.at(order, c, 0, i);
        if (valid) d_state[0][j][e] += dyr.at(order, c, 0, i);
#pragma unroll
        for (int g = 0; g < 4; ++g) {
          rg[g] = acc[g][j][e];
          bg[g] = b[g][e / 2];
          dg[g] = valid ? d_state[g][j][e] : 0.0f;
        }
        Cell::template backward<FAST>(xg, rg, bg, sg, dg, gx, gr, gb, dprev);
        zero_past_length<Cell>(valid, gx, gr, gb);  // select: x past a length may be NaN
        if (inside[j][e]) {
#pragma unroll
          for (int g = 0; g < Cell::GX; ++g) dx_at[j][e][g * head_stride] = Storage<T>::store(gx[g]);
          if constexpr (!Cell::SUMS)
#pragma unroll
            for (int g = 0; g < Cell::GR; ++g) drec_at[j][e][g * DH] = Storage<T>::store(gr[g]);
        }
        dx_at[j][e] -= Cell::GX * head_stride;
        if constexpr (!Cell::SUMS) drec_at[j][e] -= Cell::GR * DH;
#pragma unroll
        for (int g = 0; g < Cell::GR; ++g)
          d_tile[c * L::LDD + g * L::DHP + i] = Storage<T>::store(inside[j][e] ? gr[g] : 0.0f);
#pragma unroll
        for (int g = 0; g < Cell::GB; ++g) db[g][e / 2] += gb[g];
#pragma unroll
        for (int k = 0; k < Cell::S; ++k) q[k][j][e] = valid ? dprev[k] : d_state[k][j][e];
      }
    wait_copies<DEPTH - 2>();  // the next step's inputs (this thread's share)
    __syncthreads();
    float dh[L::NT][4] = {};
    transposed_product<L>(dh, Rs, d_tile, at, at.row_block);
    if (t > 0) recurrent_product<L>(acc_next, weights, hr.slot(order + 1), at);
#pragma unroll
    for (int j = 0; j < L::NT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
#pragma unroll
        for (int k = 0; k < Cell::S; ++k) d_state[k][j][e] = q[k][j][e];
        if (t < valid_steps[j][e]) d_state[0][j][e] += dh[j][e];
      }
  }

  if (resets) add_restart_gradients<Cell::S, L>(d_state, d_init);
  el.template store<Cell::S>(dstates, d_state, state_stride);

  // db: over this thread's columns (done), the 4 lanes sharing a row, then the
  // warps side by side, in a fixed order so two runs give the same bits
  const int wn = at.col0 / (8 * L::NT);
#pragma unroll
  for (int g = 0; g < Cell::GB; ++g)
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      float v = db[g][half];
      v += __shfl_xor_sync(0xffffffffu, v, 1);
      v += __shfl_xor_sync(0xffffffffu, v, 2);
      if (at.lane % 4 == 0) db_sum[wn][g][at.row(2 * half)] = v;
    }
  __syncthreads();
  for (int idx = threadIdx.x; idx < Cell::GB * DH; idx += L::THREADS) {
    const int g = idx / DH, i = idx % DH;
    float v = 0.0f;
    for (int w = 0; w < L::WN; ++w) v += db_sum[w][g][i];
    db_partial[((size_t(blockIdx.y) * Cell::GB + g) * NH + n) * DH + i] = v;
  }
}

}  // namespace fusedrnn
