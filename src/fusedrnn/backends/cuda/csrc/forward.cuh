// The persistent forward kernel: one CTA per (head, batch tile) walks all T
// steps with its head's R in shared memory (and, for small heads, in
// registers). Per step: the warp's slice of R h on tensor cores, the cell's
// pointwise step in registers, h_t into the other half of a double buffer,
// one __syncthreads, then the CTA copies h_t to y with wide stores.
//
// x [B, T, GX, NH, DH], R [GR, NH, DH, DH], b [GB, NH, DH], states/final [S, B, NH, DH],
// lengths [B] int64 or null, y [B, T, NH, DH], saved [T + 1, S - 1, B, NH, DH] fp32 or null.
#pragma once
#include "recurrent_product.cuh"

namespace fusedrnn {

template <class Cell, class T, int DHP, int NT, int WN, bool R_IN_REGISTERS, bool FAST>
__global__ void __launch_bounds__(Layout<T, DHP, Cell::GR, NT, WN>::THREADS)
    fused_forward_kernel(const T* __restrict__ x, const T* __restrict__ R, const T* __restrict__ bias,
                         const T* __restrict__ states, const long long* __restrict__ lengths, T* __restrict__ y,
                         T* __restrict__ final_states, float* __restrict__ saved, int B, int steps, int NH, int DH) {
  using L = Layout<T, DHP, Cell::GR, NT, WN>;
  extern __shared__ __align__(16) unsigned char smem[];
  T* Rs = reinterpret_cast<T*>(smem);
  T* hs = Rs + L::R_ELEMS;  // [2][BT][LDH]: h_{t-1} is read from half t % 2
  __shared__ int valid_steps[L::BT];

  const int n = blockIdx.x, batch0 = blockIdx.y * L::BT;
  const L at;
  const size_t head_stride = size_t(NH) * DH;       // one gate or state of one sequence and step
  const size_t state_stride = size_t(B) * head_stride;

  load_recurrent_weights<L>(Rs, R, n, NH, DH);
  load_h_tile<L>(hs, states + n * DH, head_stride, batch0, B, DH);
  for (int c = threadIdx.x; c < L::BT; c += L::THREADS)
    valid_steps[c] = batch0 + c >= B ? 0 : lengths ? int(lengths[batch0 + c]) : steps;
  __syncthreads();
  const WeightFragments<L, T, R_IN_REGISTERS> weights(Rs, at);

  // this thread's elements: 2 rows x 2 columns per column tile
  bool inside[L::NT][4];
  size_t offset[L::NT][4];  // of (batch, head n, row) in a [B, NH, DH] tensor
  const T* x_at[L::NT][4];  // x of the element's gate 0 at step 0
  float s[4][L::NT][4] = {}, b[4][2] = {};
#pragma unroll
  for (int j = 0; j < L::NT; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int batch = batch0 + at.col(j, e), i = at.row(e);
      inside[j][e] = batch < B && i < DH;
      offset[j][e] = inside[j][e] ? size_t(batch) * head_stride + n * DH + i : 0;
      x_at[j][e] = x + (inside[j][e] ? size_t(batch) * steps * Cell::GX * head_stride + n * DH + i : 0);
#pragma unroll
      for (int k = 0; k < Cell::S; ++k)
        s[k][j][e] = inside[j][e] ? Storage<T>::load(states[k * state_stride + offset[j][e]]) : 0.0f;
      if (saved)
#pragma unroll
        for (int k = 1; k < Cell::S; ++k)
          if (inside[j][e]) saved[(k - 1) * state_stride + offset[j][e]] = s[k][j][e];
    }
#pragma unroll
  for (int g = 0; g < Cell::GB; ++g)
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int i = at.row(2 * half);
      b[g][half] = i < DH ? Storage<T>::load(bias[(size_t(g) * NH + n) * DH + i]) : 0.0f;
    }

  float xs[4][L::NT][4] = {};
  auto load_x = [&](int t) {
#pragma unroll
    for (int j = 0; j < L::NT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e)
#pragma unroll
        for (int g = 0; g < Cell::GX; ++g)
          xs[g][j][e] = inside[j][e] && t < steps
                            ? Storage<T>::load(x_at[j][e][(size_t(t) * Cell::GX + g) * head_stride])
                            : 0.0f;
  };
  load_x(0);

  for (int t = 0; t < steps; ++t) {
    const T* h_prev = hs + (t % 2) * L::H_ELEMS;
    T* h_next = hs + ((t + 1) % 2) * L::H_ELEMS;
    float acc[4][L::NT][4] = {};
    recurrent_product<L>(acc, weights, h_prev, at);
    float x_now[4][L::NT][4] = {};
#pragma unroll
    for (int g = 0; g < Cell::GX; ++g)
#pragma unroll
      for (int j = 0; j < L::NT; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) x_now[g][j][e] = xs[g][j][e];
    load_x(t + 1);  // lands while this step's math runs

#pragma unroll
    for (int j = 0; j < L::NT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        Gates xg, rg, bg, sg, next;
#pragma unroll
        for (int g = 0; g < 4; ++g) {
          xg[g] = x_now[g][j][e];
          rg[g] = acc[g][j][e];
          bg[g] = b[g][e / 2];
          sg[g] = s[g][j][e];
        }
        Cell::template forward<FAST>(xg, rg, bg, sg, next);
        if (t < valid_steps[at.col(j, e)])
#pragma unroll
          for (int k = 0; k < Cell::S; ++k) s[k][j][e] = next[k];
        h_next[at.col(j, e) * L::LDH + at.row(e)] = Storage<T>::store(inside[j][e] ? s[0][j][e] : 0.0f);
        if (saved && inside[j][e])
#pragma unroll
          for (int k = 1; k < Cell::S; ++k)
            saved[(size_t(t + 1) * (Cell::S - 1) + k - 1) * state_stride + offset[j][e]] = s[k][j][e];
      }
    __syncthreads();
    // y[:, t] from the tile just written; zero past each sequence's length
    for (int idx = threadIdx.x; idx < L::BT * DH; idx += L::THREADS) {
      const int c = idx / DH, k = idx % DH;
      if (batch0 + c < B)
        y[(size_t(batch0 + c) * steps + t) * head_stride + n * DH + k] =
            t < valid_steps[c] ? h_next[c * L::LDH + k] : Storage<T>::store(0.0f);
    }
  }

#pragma unroll
  for (int j = 0; j < L::NT; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e)
      if (inside[j][e])
#pragma unroll
        for (int k = 0; k < Cell::S; ++k) final_states[k * state_stride + offset[j][e]] = Storage<T>::store(s[k][j][e]);
}

}  // namespace fusedrnn
