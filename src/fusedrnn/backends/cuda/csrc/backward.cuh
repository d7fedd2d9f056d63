// The persistent backward kernel: the forward's CTA layout walking time in
// reverse with R in shared memory. Per step t it recomputes R h_{t-1} from y
// (h exactly as the forward's product saw it), runs the cell's gradient, writes
// dx and drec, sums db, and sends R^T drec back into dh: the only product on
// the sequential chain. h_{t-2} is staged into shared memory during step t, so
// one __syncthreads a step serves both double buffers. dR is one large GEMM of
// drec with h over all steps, on the host side.
//
// Adds to the forward's arguments: y, saved (states 1..S-1 entering every step),
// dy [B, T, NH, DH], dfinal [S, B, NH, DH]; writes dx [B, T, GX, NH, DH],
// drec [NH, B * T, GR * DH] fp32, db_partial [tiles, GB, NH, DH] fp32, dstates [S, B, NH, DH].
#pragma once
#include "recurrent_product.cuh"

namespace fusedrnn {

template <class Cell, class T, int DHP, int NT, int WN, bool FAST>
__global__ void __launch_bounds__(Layout<T, DHP, Cell::GR, NT, WN>::THREADS)
    fused_backward_kernel(const T* __restrict__ x, const T* __restrict__ R, const T* __restrict__ bias,
                          const T* __restrict__ states, const long long* __restrict__ lengths,
                          const T* __restrict__ y, const float* __restrict__ saved, const T* __restrict__ dy,
                          const T* __restrict__ dfinal, T* __restrict__ dx, float* __restrict__ drec,
                          float* __restrict__ db_partial, T* __restrict__ dstates, int B, int steps, int NH, int DH) {
  using L = Layout<T, DHP, Cell::GR, NT, WN>;
  extern __shared__ __align__(16) unsigned char smem[];
  T* Rs = reinterpret_cast<T*>(smem);
  T* hs = Rs + L::R_ELEMS;      // [2][BT][LDH]: h_{t-1} in half t % 2
  T* ds = hs + 2 * L::H_ELEMS;  // [2][BT][LDD]: drec of step t in half t % 2
  __shared__ int valid_steps[L::BT];
  __shared__ float db_sum[L::WN][4][L::DHP];

  const int n = blockIdx.x, batch0 = blockIdx.y * L::BT;
  const L at;
  const size_t head_stride = size_t(NH) * DH;
  const size_t state_stride = size_t(B) * head_stride;
  const size_t y_batch_stride = size_t(steps) * head_stride;
  // h entering step t: y[:, t-1], or the initial state for t = 0
  auto stage_h = [&](T* tile, int t) {
    if (t > 0) load_h_tile<L>(tile, y + size_t(t - 1) * head_stride + n * DH, y_batch_stride, batch0, B, DH);
    else load_h_tile<L>(tile, states + n * DH, head_stride, batch0, B, DH);
  };

  load_recurrent_weights<L>(Rs, R, n, NH, DH);
  stage_h(hs + ((steps - 1) % 2) * L::H_ELEMS, steps - 1);
  for (int c = threadIdx.x; c < L::BT; c += L::THREADS)
    valid_steps[c] = batch0 + c >= B ? 0 : lengths ? int(lengths[batch0 + c]) : steps;
  __syncthreads();
  const WeightFragments<L, T, false> weights(Rs, at);

  bool inside[L::NT][4];
  size_t offset[L::NT][4];
  float d_state[4][L::NT][4] = {}, b[4][2] = {}, db[4][2] = {};
#pragma unroll
  for (int j = 0; j < L::NT; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int batch = batch0 + at.col(j, e), i = at.row(e);
      inside[j][e] = batch < B && i < DH;
      offset[j][e] = inside[j][e] ? size_t(batch) * head_stride + n * DH + i : 0;
#pragma unroll
      for (int k = 0; k < Cell::S; ++k)
        d_state[k][j][e] = inside[j][e] ? Storage<T>::load(dfinal[k * state_stride + offset[j][e]]) : 0.0f;
    }
#pragma unroll
  for (int g = 0; g < Cell::GB; ++g)
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int i = at.row(2 * half);
      b[g][half] = i < DH ? Storage<T>::load(bias[(size_t(g) * NH + n) * DH + i]) : 0.0f;
    }

  for (int t = steps - 1; t >= 0; --t) {
    const T* h_prev = hs + (t % 2) * L::H_ELEMS;
    T* d_tile = ds + (t % 2) * L::D_ELEMS;
    if (t > 0) stage_h(hs + ((t - 1) % 2) * L::H_ELEMS, t - 1);

    float acc[4][L::NT][4] = {};
    recurrent_product<L>(acc, weights, h_prev, at);
    float q[4][L::NT][4] = {};  // d(loss)/d(states entering step t), but for R^T drec
#pragma unroll
    for (int j = 0; j < L::NT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int c = at.col(j, e), i = at.row(e);
        const bool valid = t < valid_steps[c];
        const size_t batch = size_t(batch0 + c);
        Gates xg = {}, rg, bg, sg = {}, dg, gx = {}, gr = {}, gb = {}, dprev = {};
        if (inside[j][e]) {
          const T* x_row = x + (batch * steps + t) * Cell::GX * head_stride + n * DH + i;
#pragma unroll
          for (int g = 0; g < Cell::GX; ++g) xg[g] = Storage<T>::load(x_row[g * head_stride]);
#pragma unroll
          for (int k = 1; k < Cell::S; ++k)
            sg[k] = saved[(size_t(t) * (Cell::S - 1) + k - 1) * state_stride + offset[j][e]];
          if (valid) d_state[0][j][e] += Storage<T>::load(dy[(batch * steps + t) * head_stride + n * DH + i]);
        }
        sg[0] = Storage<T>::load(h_prev[c * L::LDH + i]);
#pragma unroll
        for (int g = 0; g < 4; ++g) {
          rg[g] = acc[g][j][e];
          bg[g] = b[g][e / 2];
          dg[g] = valid ? d_state[g][j][e] : 0.0f;
        }
        Cell::template backward<FAST>(xg, rg, bg, sg, dg, gx, gr, gb, dprev);
        if (inside[j][e]) {
          T* dx_row = dx + (batch * steps + t) * Cell::GX * head_stride + n * DH + i;
#pragma unroll
          for (int g = 0; g < Cell::GX; ++g) dx_row[g * head_stride] = Storage<T>::store(gx[g]);
          float* drec_row = drec + ((size_t(n) * B + batch) * steps + t) * Cell::GR * DH + i;
#pragma unroll
          for (int g = 0; g < Cell::GR; ++g) drec_row[g * DH] = gr[g];
        }
#pragma unroll
        for (int g = 0; g < Cell::GR; ++g)
          d_tile[c * L::LDD + g * L::DHP + i] = Storage<T>::store(inside[j][e] ? gr[g] : 0.0f);
#pragma unroll
        for (int g = 0; g < Cell::GB; ++g) db[g][e / 2] += gb[g];
#pragma unroll
        for (int k = 0; k < Cell::S; ++k) q[k][j][e] = valid ? dprev[k] : d_state[k][j][e];
      }
    __syncthreads();
    float dh[L::NT][4] = {};
    transposed_product<L>(dh, Rs, d_tile, at);
#pragma unroll
    for (int j = 0; j < L::NT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const bool valid = t < valid_steps[at.col(j, e)];
#pragma unroll
        for (int k = 0; k < Cell::S; ++k) d_state[k][j][e] = q[k][j][e];
        if (valid) d_state[0][j][e] += dh[j][e];
      }
  }

#pragma unroll
  for (int j = 0; j < L::NT; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e)
      if (inside[j][e])
#pragma unroll
        for (int k = 0; k < Cell::S; ++k)
          dstates[k * state_stride + offset[j][e]] = Storage<T>::store(d_state[k][j][e]);

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
