// The persistent forward kernel: one CTA per (head, batch tile) walks all T
// steps with its head's R in shared memory (and, for small heads, in
// registers). Per step: the warp's slice of R h on tensor cores, the cell's
// pointwise step in registers, h_t into the other half of a double buffer and
// to y, one __syncthreads. x arrives DEPTH - 1 steps ahead by cp.async.
//
// x [B, T, GX, NH, DH], R [GR, NH, DH, DH], b [GB, NH, DH], states/final [S, B, NH, DH],
// lengths [B] int64 or null, resets [ceil(B / 32), T] int32 words or null (resets.cuh), y [B, T, NH, DH],
// saved [T + 1, S - 1, B, NH, DH] fp32 or null.
#pragma once
#include "elements.cuh"
#include "recurrent_product.cuh"
#include "resets.cuh"
#include "ring.cuh"

namespace fusedrnn {

template <class Cell, class T, int DHP, int NT, int WN, int DEPTH, int VEC, bool R_IN_REGISTERS, bool FAST,
          bool RESETS>
__global__ void __launch_bounds__(Layout<T, DHP, Cell::GR, NT, WN>::THREADS, 1)
    fused_forward_kernel(const T* __restrict__ x, const T* __restrict__ R, const T* __restrict__ bias,
                         const T* __restrict__ states, const long long* __restrict__ lengths,
                         const unsigned* __restrict__ resets, T* __restrict__ y, T* __restrict__ final_states,
                         float* __restrict__ saved, int B, int steps, int NH, int DH) {
  using L = Layout<T, DHP, Cell::GR, NT, WN>;
  using XRing = StepRing<T, Cell::GX, DHP, L::BT, DEPTH>;
  if constexpr (!RESETS) resets = nullptr;  // folds every reset test away: the kernel of a call without resets
  extern __shared__ __align__(16) unsigned char smem[];
  T* Rs = reinterpret_cast<T*>(smem);
  T* hs = Rs + L::R_ELEMS;  // [2][BT][LDH]: h_{t-1} is read from half t % 2
  const XRing xr{hs + 2 * L::H_ELEMS};
  const int n = blockIdx.x, batch0 = blockIdx.y * L::BT;
  const ResetRing<L::BT, DEPTH> reset_ring{reinterpret_cast<unsigned*>(xr.base + XRing::ELEMS), resets, batch0, B,
                                           steps};  // with RESETS only
  const L at;
  const size_t head_stride = size_t(NH) * DH;  // one gate or state of one sequence and step
  const size_t state_stride = size_t(B) * head_stride;

  xr.zero(L::THREADS);
  load_recurrent_weights<L>(Rs, R, n, NH, DH);
  load_h_tile<L>(hs, states + n * DH, head_stride, batch0, B, DH);
  __syncthreads();  // the zeros land before any copy into the ring
  const auto x_copier = make_copier<XRing, T, Cell::GX, DHP, L::BT, VEC, L::THREADS>(
      xr, [=](int c, int g) { return x + (size_t(batch0 + c) * steps * Cell::GX + g) * head_stride + n * DH; },
      min(L::BT, B - batch0), DH, Cell::GX * head_stride);
  const auto fill_step = [&](int t) {
    x_copier.fill(t % DEPTH, t);
    if constexpr (RESETS) reset_ring.fill(t % DEPTH, t);
  };
  for (int s = 0; s < DEPTH - 1; ++s) {
    if (s < steps) fill_step(s);
    commit_copies();
  }
  const WeightFragments<L, T, R_IN_REGISTERS> weights(Rs, at);

  const ThreadElements<L> el(at, true, batch0, 0, n, B, NH, DH, steps, lengths);
  const auto& inside = el.inside;
  const auto& valid_steps = el.valid_steps;
  float s[4][L::NT][4] = {}, b[4][2] = {};
  el.template load<Cell::S>(s, states, state_stride);
  float s0[4][L::NT][4] = {};  // the initial states, where resets start a sequence again
  if (resets) el.template load<Cell::S, T, true>(s0, states, state_stride);
  if (saved && !RESETS) el.template store<Cell::S, 1>(saved, s, state_stride);  // slot 0: the initial states 1..S-1
  load_biases<Cell::GB>(b, bias, at, 0, n, NH, DH);
  wait_copies<DEPTH - 2>();
  __syncthreads();

  // where this thread's elements of the current step go in y and saved: a pointer a sequence
  // column (elements e and e + 2 share one, their rows 8 apart: layout.cuh), bumped each step
  T* y_at[L::NT][4];  // [j][0..1]
  output_pointers(y_at, y, at, batch0, 0, n, DH, steps, head_stride);
  // the saved states: without resets those a step leaves, into slot t + 1 after its cell; with
  // them those entering step t, into slot t at its start, so that a restart, which replaces the
  // states between steps, touches registers and shared memory only
  float* saved_at[L::NT][2];
#pragma unroll
  for (int j = 0; j < L::NT; ++j)
#pragma unroll
    for (int e = 0; e < 2; ++e)  // (el.offset, 0 outside, would do too; this form is the one timed)
      saved_at[j][e] = saved + (RESETS ? 0 : Cell::S - 1) * state_stride +
                       (size_t(batch0 + at.col(j, e)) * NH + n) * DH + at.row(e);
  const bool saving = saved != nullptr;

  for (int t = 0; t < steps; ++t) {
    if (t + DEPTH - 1 < steps) fill_step(t + DEPTH - 1);
    commit_copies();
    const T* h_prev = hs + (t % 2) * L::H_ELEMS;
    T* h_next = hs + ((t + 1) % 2) * L::H_ELEMS;
    unsigned word[L::NT] = {};  // resets at step t + 1
    if constexpr (RESETS) reset_ring.column_words(word, t % DEPTH, at);
    float acc[4][L::NT][4] = {};
    recurrent_product<L>(acc, weights, h_prev, at);

#pragma unroll
    for (int j = 0; j < L::NT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int c = at.col(j, e), i = at.row(e);
        T* const y_here = y_at[j][e & 1] + (e >> 1) * 8;
        float* const saved_here = saved_at[j][e & 1] + (e >> 1) * 8;
        if (RESETS && saving && inside[j][e])  // slot t: the states entering step t
#pragma unroll
          for (int k = 1; k < Cell::S; ++k) saved_here[(k - 1) * state_stride] = s[k][j][e];
        const bool valid = cell_step_at<Cell, FAST>(xr, acc, b, s, at, t, j, e, valid_steps[j][e]);
        const T h = Storage<T>::store(inside[j][e] ? s[0][j][e] : 0.0f);
        h_next[c * L::LDH + i] = h;
        if (inside[j][e]) {
          *y_here = valid ? h : Storage<T>::store(0.0f);
          if (!RESETS && saving)  // slot t + 1: the states step t leaves
#pragma unroll
            for (int k = 1; k < Cell::S; ++k) saved_here[(k - 1) * state_stride] = s[k][j][e];
        }
      }
#pragma unroll
    for (int j = 0; j < L::NT; ++j)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        y_at[j][e] += head_stride;
        saved_at[j][e] += (Cell::S - 1) * state_stride;
        if constexpr (RESETS) keep_stepped(y_at[j][e]);  // (without resets NVVM keeps it so)
      }
    if constexpr (RESETS)  // sequences starting afresh at t + 1 carry the initial states (saved at the top of t + 1)
      for_each_restart<L>(word, inside, valid_steps, at, batch0, t + 1, [&](int j, int e) {
#pragma unroll
        for (int k = 0; k < Cell::S; ++k) s[k][j][e] = s0[k][j][e];
        h_next[at.col(j, e) * L::LDH + at.row(e)] = Storage<T>::store(s0[0][j][e]);
      });
    wait_copies<DEPTH - 2>();  // the next step's x (this thread's share)
    __syncthreads();
  }

  if (RESETS && saved)  // slot T: the states the last step leaves
    el.template store<Cell::S, 1>(saved + size_t(steps) * (Cell::S - 1) * state_stride, s, state_stride);
  el.template store<Cell::S>(final_states, s, state_stride);
}

}  // namespace fusedrnn
