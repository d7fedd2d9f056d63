// The backward for heads split over the PARTS = DHP / ROWS CTAs of one thread-block cluster
// (sm_90, half types). CTA `rank` owns units row0 = rank * ROWS .. + ROWS. The recurrent
// pre-activations R h_{t-1} of every step are one GEMM before the kernel (`rh`, fp32; with
// X_IN_RH, for a cell whose gates are sums, x + R h_{t-1}, and the kernel stages no x: sLSTM
// 768x1 fits one SM a CTA only so), so the only product on the sequential chain is dh_{t-1} = sum_g R[g]^T drec_t[g]. Per step t, in
// reverse, a CTA:
//   1. waits for the partial sums of dh_t that the cluster's CTAs sent it (step 3 of step t + 1)
//      and adds them, in rank order (deterministic);
//   2. runs the cell's gradient on its units (a pair of sequences a thread), writing dx and
//      drec to global memory and drec, rounded to T, into a shared tile;
//   3. multiplies its rows of R, transposed (cluster_weights_transposed.cuh), by that tile for
//      every unit of the head and sends each block of 16 units' partial sums to the units' owner:
//      st.async into the owner's inbox, counted by the owner's mbarrier (its own by a plain store).
// The inbox is double-buffered, [2][PARTS][ROWS][BT] fp32: a sender writes step t's sums into
// buffer b of CTA X only after it has X's sums of step t + 1, which X sent after reading buffer
// b's previous contents (step t + 2). Each mbarrier is armed (one arrival and the bytes of its
// PARTS - 1 senders) at init and again right after each wait, before any of its next bytes can
// come. Everything a step reads from memory (x, rh, h_{t-1}, dy, the saved states) arrives
// DEPTH - 1 steps ahead by cp.async.
//
// Arguments as one_sm_backward.cuh's (resets and h_entering too; drec in T, null where the cell's gates are sums: dR is a GEMM
// in T with fp32 accumulation of dx or drec, weight_gradient.py), plus rh [NH, B' * T, GR * DH] fp32
// of the B' sequences of this launch's tiles, and first_tile, the first of them;
// grid: (NH * PARTS, tiles of 8 sequences a launch), clusters of (PARTS, 1, 1).
#pragma once
#include "cells/cell.cuh"
#include "cluster.cuh"
#include "cluster_weights_transposed.cuh"
#include "resets.cuh"
#include "backward_inputs.cuh"

namespace fusedrnn {

template <class Cell, class T, int DHP, int ROWS, int WARPS, int DEPTH, int VEC, int REG_MT, bool FAST,
          bool X_IN_RH, bool RESETS>
__global__ void __launch_bounds__(32 * WARPS, 1)
    fused_cluster_backward_kernel(const T* __restrict__ x, const T* __restrict__ R, const T* __restrict__ bias,
                                  const T* __restrict__ states, const long long* __restrict__ lengths,
                                  const unsigned* __restrict__ resets, const T* __restrict__ y,
                                  const T* __restrict__ h_entering, const float* __restrict__ saved,
                                  const T* __restrict__ dy, const T* __restrict__ dfinal,
                                  const float* __restrict__ rh, T* __restrict__ dx, T* __restrict__ drec,
                                  float* __restrict__ db_partial, T* __restrict__ dstates, int B, int steps, int NH,
                                  int DH, int first_tile) {
  constexpr int THREADS = 32 * WARPS, BT = 8, PARTS = DHP / ROWS, PAD = 16 / sizeof(T);
  if constexpr (!RESETS) resets = nullptr, h_entering = nullptr;  // folds every reset test away (no resets)

  constexpr int LDD = Cell::GR * ROWS + PAD;  // drec tile rows: [BT][LDD]
  constexpr int SAVED = Cell::S > 1 ? Cell::S - 1 : 1;
  constexpr int PAIRS = ROWS * BT / 2, PAIR_ITERS = (PAIRS + THREADS - 1) / THREADS;
  constexpr unsigned SLICE_BYTES = ROWS * BT * sizeof(float);  // one sender's sums for one CTA
  using W = TransposedWeights<T, DHP, ROWS, Cell::GR, WARPS, REG_MT>;
  using XRing = StepRing<T, X_IN_RH ? 0 : Cell::GX, ROWS, BT, DEPTH>;  // no rows: x is in rh
  using HRing = StepRing<T, 1, ROWS, BT, DEPTH>;  // this CTA's units of h_{t-1}; also dy
  using RhRing = StepRing<float, Cell::GR, ROWS, BT, DEPTH>;
  using SavedRing = StepRing<float, SAVED, ROWS, BT, DEPTH>;
  static_assert(Storage<T>::tensor_cores, "the cluster backward runs on tensor cores");
  static_assert(!X_IN_RH || Cell::SUMS, "x goes into rh only where every gate is x + r + b");
  static_assert(PARTS >= 2 && PARTS <= 16 && DHP % ROWS == 0, "a cluster of 2 to 16 CTAs");
  static_assert(ROWS % 16 == 0 && 32 % (BT / 2) == 0, "whole blocks of units; a unit's pairs in one warp");

  extern __shared__ __align__(16) unsigned char smem[];
  T* Rs = reinterpret_cast<T*>(smem);
  T* d_tile = Rs + W::ELEMS;
  const XRing xr{d_tile + BT * LDD};
  const HRing hr{xr.base + XRing::ELEMS};
  const HRing dyr{hr.base + HRing::ELEMS};
  const RhRing rr{reinterpret_cast<float*>(dyr.base + HRing::ELEMS)};
  const SavedRing sr{rr.base + RhRing::ELEMS};
  float* inbox = sr.base + SavedRing::ELEMS;  // [2][PARTS][ROWS][BT]
  const unsigned arrivals = shared_address(inbox + 2 * PARTS * ROWS * BT);  // 2 mbarriers, one a buffer

  const int rank = cluster_rank(), n = blockIdx.x / PARTS, row0 = rank * ROWS;
  // this launch runs tiles first_tile .. + gridDim.y; rh holds R h of their sequences alone
  const int tile = first_tile + blockIdx.y, batch0 = tile * BT;
  const int rh_batch0 = first_tile * BT, rh_sequences = min(int(gridDim.y) * BT, B - rh_batch0);
  static_assert(32 % BT == 0, "a tile's sequences share a reset word");
  // the reset words, after the 2 mbarriers' 16 bytes (with RESETS only)
  const ResetRing<BT, DEPTH> reset_ring{reinterpret_cast<unsigned*>(inbox + 2 * PARTS * ROWS * BT + 4), resets, batch0,
                                        B, steps};
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const size_t head_stride = size_t(NH) * DH, state_stride = size_t(B) * head_stride;
  const int valid_sequences = min(BT, B - batch0), my_rows = min(ROWS, DH - row0);

  if (threadIdx.x == 0) {  // both armed for their first use
    mbarrier_init(arrivals, 1);
    mbarrier_init(arrivals + 8, 1);
    fence_mbarrier_init();  // published to the cluster by the cluster_sync before the loop
    mbarrier_arm(arrivals, (PARTS - 1) * SLICE_BYTES);
    mbarrier_arm(arrivals + 8, (PARTS - 1) * SLICE_BYTES);
  }
  // R: the register blocks staged through the memory after Rs (the rings and the inbox, not yet in use)
  W::load_shared(Rs, R, n, NH, DH, row0);
  const W weights(Rs, d_tile, R, warp, lane, n, NH, DH, row0);
  xr.zero(THREADS);
  hr.zero(THREADS);
  dyr.zero(THREADS);
  rr.zero(THREADS);
  sr.zero(THREADS);
  __syncthreads();  // the rings' zeros land before any copy into them

  // everything step t reads, into ring slot (steps - 1 - t) % DEPTH
  const BackwardInputs<Cell, VEC, THREADS, XRing, HRing, HRing, SavedRing> inputs(
      xr, dyr, hr, sr, x, y, h_entering, dy, states, saved, batch0, n, row0, my_rows, row0, my_rows, valid_sequences,
      steps, B, NH, DH);
  const StridedCopier<RhRing, VEC, THREADS> rh_copier(
      rr, {rh + (size_t(n) * rh_sequences + batch0 - rh_batch0) * steps * Cell::GR * DH + row0, size_t(steps) * Cell::GR * DH, size_t(DH)},
      valid_sequences, my_rows, size_t(Cell::GR) * DH);
  const auto fill_step = [&](int t) {
    inputs.fill(t);
    rh_copier.fill((steps - 1 - t) % DEPTH, t);
    if constexpr (RESETS) reset_ring.fill((steps - 1 - t) % DEPTH, t);
  };
  for (int o = 0; o < DEPTH - 1; ++o) {
    if (o < steps) fill_step(steps - 1 - o);
    commit_copies();
  }

  // the thread's elements: unit i of the CTA, sequences c and c + 1 of the tile, for each of its pairs
  int unit[PAIR_ITERS], col[PAIR_ITERS], valid_steps[PAIR_ITERS][2];
  bool inside[PAIR_ITERS][2];
  float d_state[PAIR_ITERS][2][4] = {}, db[PAIR_ITERS][4] = {}, b[PAIR_ITERS][4] = {};
  float d_init[PAIR_ITERS][2][4] = {};  // the gradient of the states entering the steps resets start
#pragma unroll
  for (int k = 0; k < PAIR_ITERS; ++k) {
    const int p = threadIdx.x + k * THREADS;
    unit[k] = p / (BT / 2), col[k] = 2 * (p % (BT / 2));
    const int i = row0 + unit[k];
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      const int batch = batch0 + col[k] + e;
      inside[k][e] = p < PAIRS && batch < B && i < DH;
      valid_steps[k][e] = batch >= B ? 0 : lengths ? int(lengths[batch]) : steps;
      const size_t offset = (size_t(batch) * NH + n) * DH + i;
#pragma unroll
      for (int s = 0; s < Cell::S; ++s)
        d_state[k][e][s] = inside[k][e] ? Storage<T>::load(dfinal[s * state_stride + offset]) : 0.0f;
    }
#pragma unroll
    for (int g = 0; g < Cell::GB; ++g)
      b[k][g] = p < PAIRS && i < DH ? Storage<T>::load(bias[(size_t(g) * NH + n) * DH + i]) : 0.0f;
  }
  // the partial sums of dh a step's product sent to this CTA (buffer `buffer`), into d_state
  const auto add_received = [&](int buffer, int t) {
#pragma unroll
    for (int k = 0; k < PAIR_ITERS; ++k) {
      if (threadIdx.x + k * THREADS >= PAIRS) continue;
      const float* from = inbox + (buffer * PARTS * ROWS + unit[k]) * BT + col[k];
      float2 sum = make_float2(0.0f, 0.0f);
#pragma unroll
      for (int src = 0; src < PARTS; ++src) {
        const float2 v = *reinterpret_cast<const float2*>(from + src * ROWS * BT);
        sum.x += v.x, sum.y += v.y;
      }
      if (t < valid_steps[k][0]) d_state[k][0][0] += sum.x;
      if (t < valid_steps[k][1]) d_state[k][1][0] += sum.y;
    }
  };
  // this lane's ldmatrix row of the drec tile (B fragments: sequences lane % 8, units + 8 for lanes 8-15)
  const unsigned d_row = shared_address(d_tile + (lane & 7) * LDD + ((lane >> 3) & 1) * 8);
  wait_copies<DEPTH - 2>();
  cluster_sync();  // every CTA runs (its shared memory may be written), its barriers are set up

  for (int t = steps - 1; t >= 0; --t) {
    const int order = steps - 1 - t;
    if (t - (DEPTH - 1) >= 0) fill_step(t - (DEPTH - 1));
    commit_copies();
    const unsigned word = RESETS ? reset_ring.word(order % DEPTH, batch0) : 0u;  // the tile's resets at step t + 1
    if (order > 0) {  // dh_t: the sums of step t + 1's product, in buffer (order - 1) % 2
      const unsigned bar = arrivals + ((order - 1) % 2) * 8;
      mbarrier_wait(bar, ((order - 1) >> 1) & 1);
      if (threadIdx.x == 0 && order + 1 < steps) mbarrier_arm(bar, (PARTS - 1) * SLICE_BYTES);
      add_received((order - 1) % 2, t + 1);
    }
    if (RESETS && word != 0u)  // the states entering step t + 1 of sequences it started afresh were the initial ones
#pragma unroll
      for (int k = 0; k < PAIR_ITERS; ++k)
#pragma unroll
        for (int e = 0; e < 2; ++e)
          if (inside[k][e] && starts_afresh(word, batch0 + col[k] + e, t + 1, valid_steps[k][e]))
#pragma unroll
            for (int s = 0; s < Cell::S; ++s) {
              d_init[k][e][s] += d_state[k][e][s];
              d_state[k][e][s] = 0.0f;
            }
#pragma unroll
    for (int k = 0; k < PAIR_ITERS; ++k) {
      if (threadIdx.x + k * THREADS >= PAIRS) continue;
      const int i = unit[k];
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int c = col[k] + e;
        const bool valid = t < valid_steps[k][e];
        Gates xg = {}, rg = {}, sg = {}, dg, gx = {}, gr = {}, gb = {}, dprev = {};
        if constexpr (!X_IN_RH) {
#pragma unroll
          for (int g = 0; g < Cell::GX; ++g) xg[g] = xr.at(order, c, g, i);
        }
#pragma unroll
        for (int g = 0; g < Cell::GR; ++g) rg[g] = rr.at(order, c, g, i);
#pragma unroll
        for (int s = 1; s < Cell::S; ++s) sg[s] = sr.at(order, c, s - 1, i);
        sg[0] = hr.at(order, c, 0, i);
        if (valid) d_state[k][e][0] += dyr.at(order, c, 0, i);
#pragma unroll
        for (int g = 0; g < 4; ++g) dg[g] = valid ? d_state[k][e][g] : 0.0f;
        Cell::template backward<FAST>(xg, rg, b[k], sg, dg, gx, gr, gb, dprev);
        zero_past_length<Cell>(valid, gx, gr, gb);  // select: x past a length may be NaN
        if (inside[k][e])
          store_step_gradients<Cell>(dx, drec, gx, gr, size_t(batch0 + c), t, n, row0 + i, steps, B, NH, DH);
#pragma unroll
        for (int g = 0; g < Cell::GR; ++g) d_tile[c * LDD + g * ROWS + i] = Storage<T>::store(inside[k][e] ? gr[g] : 0.0f);
#pragma unroll
        for (int g = 0; g < Cell::GB; ++g) db[k][g] += gb[g];
#pragma unroll
        for (int s = 0; s < Cell::S; ++s) d_state[k][e][s] = valid ? dprev[s] : d_state[k][e][s];
      }
    }
    __syncthreads();  // the drec tile is complete
    send_transposed_product<W, T, ROWS, PARTS, BT>(weights, d_row, inbox + (order % 2) * PARTS * ROWS * BT,
                                                   arrivals + (order % 2) * 8, rank, warp, lane);
    wait_copies<DEPTH - 2>();  // the next step's inputs (this thread's share)
    __syncthreads();           // this CTA's own sums are in its inbox; the drec tile may be rewritten
  }
  {  // d(loss)/dh_0's recurrent part: the sums of step 0's product
    const int buffer = (steps - 1) % 2;
    mbarrier_wait(arrivals + buffer * 8, ((steps - 1) >> 1) & 1);
    add_received(buffer, 0);
  }

#pragma unroll
  for (int k = 0; k < PAIR_ITERS; ++k) {
    const int i = row0 + unit[k];
#pragma unroll
    for (int e = 0; e < 2; ++e)
      if (inside[k][e]) {
        const size_t offset = (size_t(batch0 + col[k] + e) * NH + n) * DH + i;
#pragma unroll
        for (int s = 0; s < Cell::S; ++s)
          dstates[s * state_stride + offset] = Storage<T>::store(resets ? d_state[k][e][s] + d_init[k][e][s]
                                                                        : d_state[k][e][s]);
      }
    // db of the unit: over the thread's sequences and steps (done), then the BT / 2 lanes sharing it
#pragma unroll
    for (int g = 0; g < Cell::GB; ++g) {
      float v = db[k][g];
#pragma unroll
      for (int width = 1; width < BT / 2; width *= 2) v += __shfl_xor_sync(0xffffffffu, v, width);
      if (col[k] == 0 && threadIdx.x + k * THREADS < PAIRS && i < DH)
        db_partial[((size_t(tile) * Cell::GB + g) * NH + n) * DH + i] = v;
    }
  }
  cluster_sync();  // no CTA leaves while another may still read its barriers
}

}  // namespace fusedrnn
