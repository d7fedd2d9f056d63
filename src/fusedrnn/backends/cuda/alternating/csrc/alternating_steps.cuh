// The per-step pointwise kernels of the cuda_alternating backend: one thread
// per element (sequence b, head n, unit i) applies the cell's forward or
// backward (cells/cell.cuh's contract; the cell is a template argument, never named here)
// between two batched GEMMs that cuBLAS runs over all heads:
//
//   forward  step t: rec = h_{t-1} R^T (GEMM) -> forward step -> h_t
//   backward step t: backward step -> drec_t -> dh = drec_t R (GEMM), added at step t - 1
//
// Semantics are the cuda_fused kernels' (fused/csrc/one_sm_forward.cuh, one_sm_backward.cuh): states in
// fp32, h rounded to the storage type T where it meets R, past a sequence's
// length the states are held and y is 0, and the gradient passes through.
// P is the type cuBLAS wrote the products in: float, or T where torch cannot
// ask cuBLAS for an fp32 result from half inputs.
//
// Resets (fused/csrc/resets.cuh's semantics), applied by the step before one, where the states
// pass on: a step t whose successor starts afresh (reset_chunk, t + 1 < length) hands the
// initial states on (forward) instead of its own, which y_t keeps, and the gradient of the
// states entering step t + 1 to the initial states' (backward: d_initial) instead of on to
// step t. One byte more a step (the flag, from the workspace) without resets.
//
// Workspace layouts (workspace.py): rec [NH][B][GR*DH],
// state [S][B][NH][DH] fp32, h_operand [NH][B][DH], bias [GB][NH][DH],
// lengths [B] (T when the call has none); chunk buffers in alternating_stage.cuh.
#pragma once
#include "alternating_call.cuh"
#include "cells/cell.cuh"

namespace fusedrnn {

constexpr int ALTERNATING_THREADS = 256;

// One element of a [B, NH, DH] tensor. The host keeps B * NH * DH below 2^31.
struct StepElement {
  int index, b, n, i, hd;  // hd = n * DH + i
  __device__ StepElement(int index_, int NH, int DH) : index(index_) {
    const int HD = NH * DH;
    b = index / HD;
    hd = index - b * HD;
    n = hd / DH;
    i = hd - n * DH;
  }
};

template <class Cell, class T, class P, bool FAST>
__global__ void __launch_bounds__(ALTERNATING_THREADS)
    alternating_forward_step(const AlternatingCall* __restrict__ call, const T* __restrict__ x_chunk,
                             const P* __restrict__ rec, const T* __restrict__ bias,
                             const long long* __restrict__ lengths, const unsigned char* __restrict__ reset_chunk,
                             float* __restrict__ state, T* __restrict__ h_operand, int k, int B, int NH, int DH) {
  const int index = blockIdx.x * ALTERNATING_THREADS + threadIdx.x;
  const int elements = B * NH * DH;
  if (index >= elements) return;
  const StepElement el(index, NH, DH);
  const size_t HD = size_t(NH) * DH;
  const long long t = chunk_step<false>(call, k), steps = call->steps;
  if (t >= steps) return;
  const long long length = lengths[el.b];
  const bool valid = t < length;
  const bool next_afresh = t + 1 < length && reset_chunk[size_t(k) * B + el.b];  // step t valid too

  Gates x = {}, r = {}, b = {}, s = {}, next = {};
  const T* x_at = x_chunk + (size_t(k) * B + el.b) * Cell::GX * HD + el.hd;
#pragma unroll
  for (int g = 0; g < Cell::GX; ++g) x[g] = Storage<T>::load(x_at[g * HD]);
  const P* r_at = rec + (size_t(el.n) * B + el.b) * Cell::GR * DH + el.i;
#pragma unroll
  for (int g = 0; g < Cell::GR; ++g) r[g] = Storage<P>::load(r_at[g * DH]);
#pragma unroll
  for (int g = 0; g < Cell::GB; ++g) b[g] = Storage<T>::load(bias[g * HD + el.hd]);
#pragma unroll
  for (int q = 0; q < Cell::S; ++q) s[q] = state[size_t(q) * elements + index];

  Cell::template forward<FAST>(x, r, b, s, next);
  if (valid)
#pragma unroll
    for (int q = 0; q < Cell::S; ++q) s[q] = next[q];
  const T h = Storage<T>::store(s[0]);
  static_cast<T*>(call->y)[(size_t(el.b) * steps + t) * HD + el.hd] = valid ? h : Storage<T>::store(0.0f);

  if (next_afresh) {  // step t + 1 starts from the initial states: they pass on, not step t's
    const T* initial = static_cast<const T*>(call->initial);
#pragma unroll
    for (int q = 0; q < Cell::S; ++q) s[q] = Storage<T>::load(initial[size_t(q) * elements + index]);
  }
  if (valid)
#pragma unroll
    for (int q = 0; q < Cell::S; ++q) state[size_t(q) * elements + index] = s[q];
  // the next step's GEMM operand: the held h too, the initial h before a reset
  h_operand[(size_t(el.n) * B + el.b) * DH + el.i] = next_afresh ? Storage<T>::store(s[0]) : h;
  if (Cell::S > 1 && call->saved)  // slot t + 1: the states entering step t + 1
#pragma unroll
    for (int q = 1; q < Cell::S; ++q) call->saved[(size_t(t + 1) * (Cell::S - 1) + q - 1) * elements + index] = s[q];
}

// d_state [S][B][NH][DH] fp32 carries d(loss)/d(states after step t) between
// steps, but for R^T drec_{t+1}: that arrives as dh [NH][B][DH] from the GEMM
// after step t + 1 and is added here, where step t + 1 was valid. db_acc
// [B][GB][NH][DH] fp32 sums each element's bias gradient over the steps. Where
// step t + 1 started afresh, both are the gradient of the initial states
// entering it: summed into d_initial [S][B][NH][DH] fp32 (zeroed by the host;
// each thread owns its elements, so the sum runs in step order) and the states
// after step t get none of it.
template <class Cell, class T, class P, bool FAST>
__global__ void __launch_bounds__(ALTERNATING_THREADS)
    alternating_backward_step(const AlternatingCall* __restrict__ call, const T* __restrict__ x_chunk,
                              const T* __restrict__ dy_chunk, const float* __restrict__ saved_chunk,
                              const T* __restrict__ h_chunk, const P* __restrict__ rec_chunk,
                              const T* __restrict__ bias, const long long* __restrict__ lengths,
                              const unsigned char* __restrict__ reset_chunk, const P* __restrict__ dh,
                              float* __restrict__ d_state, float* __restrict__ d_initial, float* __restrict__ db_acc,
                              T* __restrict__ drec_step, int k, int chunk, int B, int NH, int DH) {
  const int index = blockIdx.x * ALTERNATING_THREADS + threadIdx.x;
  const int elements = B * NH * DH;
  if (index >= elements) return;
  const StepElement el(index, NH, DH);
  const size_t HD = size_t(NH) * DH;
  const long long t = chunk_step<true>(call, k), steps = call->steps;
  if (t < 0) return;
  const long long length = lengths[el.b];
  const bool valid = t < length;

  Gates d = {}, x = {}, r = {}, b = {}, s = {};
#pragma unroll
  for (int q = 0; q < Cell::S; ++q) d[q] = d_state[size_t(q) * elements + index];
  const size_t head_row = (size_t(el.n) * chunk + k) * B + el.b;  // row of h_chunk and rec_chunk
  if (t + 1 < length) {
    const float from_product = Storage<P>::load(dh[(size_t(el.n) * B + el.b) * DH + el.i]);
    if (reset_chunk[size_t(k) * B + el.b]) {  // step t + 1 started from the initial states
      d_initial[index] += d[0] + from_product;
#pragma unroll
      for (int q = 1; q < Cell::S; ++q) d_initial[size_t(q) * elements + index] += d[q];
#pragma unroll
      for (int q = 0; q < Cell::S; ++q) d[q] = 0.0f;
    } else {
      d[0] += from_product;
    }
  }
  if (valid) d[0] += Storage<T>::load(dy_chunk[size_t(k) * elements + index]);
  s[0] = Storage<T>::load(h_chunk[head_row * DH + el.i]);
#pragma unroll
  for (int q = 1; q < Cell::S; ++q) s[q] = saved_chunk[(size_t(k) * (Cell::S - 1) + q - 1) * elements + index];
  const T* x_at = x_chunk + (size_t(k) * B + el.b) * Cell::GX * HD + el.hd;
#pragma unroll
  for (int g = 0; g < Cell::GX; ++g) x[g] = Storage<T>::load(x_at[g * HD]);
  const P* r_at = rec_chunk + head_row * Cell::GR * DH + el.i;
#pragma unroll
  for (int g = 0; g < Cell::GR; ++g) r[g] = Storage<P>::load(r_at[g * DH]);
#pragma unroll
  for (int g = 0; g < Cell::GB; ++g) b[g] = Storage<T>::load(bias[g * HD + el.hd]);

  Gates dg = {}, dx = {}, drec = {}, db = {}, dprev = {};
#pragma unroll
  for (int q = 0; q < 4; ++q) dg[q] = valid ? d[q] : 0.0f;
  Cell::template backward<FAST>(x, r, b, s, dg, dx, drec, db, dprev);
  zero_past_length<Cell>(valid, dx, drec, db);  // select: x past a length may be NaN

  T* dx_at = static_cast<T*>(call->dx) + (size_t(el.b) * steps + t) * Cell::GX * HD + el.hd;
#pragma unroll
  for (int g = 0; g < Cell::GX; ++g) dx_at[g * HD] = Storage<T>::store(dx[g]);
  T* drec_step_at = drec_step + (size_t(el.n) * B + el.b) * Cell::GR * DH + el.i;
#pragma unroll
  for (int g = 0; g < Cell::GR; ++g)
    drec_step_at[g * DH] = Storage<T>::store(drec[g]);  // the GEMM's operand, rounded as cuda_fused rounds it
  if constexpr (!Cell::SUMS) {  // kept for dR; where the gates are sums, dR reads dx
    T* drec_at = static_cast<T*>(call->drec) + ((size_t(el.n) * B + el.b) * steps + t) * Cell::GR * DH + el.i;
#pragma unroll
    for (int g = 0; g < Cell::GR; ++g) drec_at[g * DH] = Storage<T>::store(drec[g]);
  }
  float* db_at = db_acc + size_t(el.b) * Cell::GB * HD + el.hd;
#pragma unroll
  for (int g = 0; g < Cell::GB; ++g) db_at[g * HD] += db[g];
#pragma unroll
  for (int q = 0; q < Cell::S; ++q) d_state[size_t(q) * elements + index] = valid ? dprev[q] : d[q];
}

}  // namespace fusedrnn
