// The elements of the head a thread runs the cell on (2 rows x 2 columns of
// each column tile, see layout.cuh), and what every kernel does with them
// besides the step itself: where they live in a [B, NH, DH] tensor, which
// steps are valid for their sequence, and loading and storing states and biases.
#pragma once
#include "cells/cell.cuh"
#include "layout.cuh"
#include "resets.cuh"

namespace fusedrnn {

template <class L>
struct ThreadElements {
  bool inside[L::NT][4];       // a real (sequence, unit): not padding
  int valid_steps[L::NT][4];   // the sequence's length (0 past B)
  size_t offset[L::NT][4];     // of (batch, head n, unit) in a [B, NH, DH] tensor

  // `owner`: whether this thread runs the cell at all (split CTAs: the first K slice's warps);
  // row0: the first unit of the CTA's rows
  __device__ ThreadElements(const L& at, bool owner, int batch0, int row0, int n, int B, int NH, int DH,
                            int steps, const long long* __restrict__ lengths) {
#pragma unroll
    for (int j = 0; j < L::NT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int batch = batch0 + at.col(j, e), i = row0 + at.row(e);
        inside[j][e] = owner && batch < B && i < DH;
        valid_steps[j][e] = batch >= B ? 0 : lengths ? int(lengths[batch]) : steps;
        offset[j][e] = inside[j][e] ? (size_t(batch) * NH + n) * DH + i : 0;
      }
  }

  // S states of an [S, B, NH, DH] tensor (zeros outside) into fp32 registers; HELD: loaded to be
  // held for the whole call (resets.cuh's load_held: the initial states a restart swaps in)
  template <int S, class T, bool HELD = false>
  __device__ void load(float (&s)[4][L::NT][4], const T* __restrict__ src, size_t state_stride) const {
#pragma unroll
    for (int j = 0; j < L::NT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e)
#pragma unroll
        for (int k = 0; k < S; ++k) {
          const T* at = src + k * state_stride + offset[j][e];
          s[k][j][e] = !inside[j][e] ? 0.0f : HELD ? load_held(at) : Storage<T>::load(*at);
        }
  }

  // states FIRST..S-1 into an [S - FIRST, B, NH, DH] tensor
  template <int S, int FIRST = 0, class T>
  __device__ void store(T* __restrict__ dst, const float (&s)[4][L::NT][4], size_t state_stride) const {
#pragma unroll
    for (int j = 0; j < L::NT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e)
        if (inside[j][e])
#pragma unroll
          for (int k = FIRST; k < S; ++k) dst[(k - FIRST) * state_stride + offset[j][e]] = Storage<T>::store(s[k][j][e]);
  }
};

// the biases of the thread's two rows, per gate
template <int GB, class L, class T>
__device__ void load_biases(float (&b)[4][2], const T* __restrict__ bias, const L& at, int row0, int n, int NH,
                            int DH) {
#pragma unroll
  for (int g = 0; g < GB; ++g)
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int i = row0 + at.row(2 * half);
      b[g][half] = i < DH ? Storage<T>::load(bias[(size_t(g) * NH + n) * DH + i]) : 0.0f;
    }
}

// Split K (KSPLIT warps a row block): the other slices' partial products are
// added into the first slice's accumulators, through `partial` in shared memory
// ([KSPLIT-1][ROW_BLOCKS][G][NT][4][32] floats). Every thread of the CTA calls it.
// Where this thread's elements of step 0 go in y [B, T, NH, DH] (units from row0); step t is
// t * head_stride further
template <class L, class T>
__device__ void output_pointers(T* (&y_at)[L::NT][4], T* y, const L& at, int batch0, int row0, int n, int DH,
                                int steps, size_t head_stride) {
#pragma unroll
  for (int j = 0; j < L::NT; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e)
      y_at[j][e] = y + size_t(batch0 + at.col(j, e)) * steps * head_stride + n * DH + row0 + at.row(e);
}

template <int GR, class L>
__device__ void add_k_slices(float (&acc)[4][L::NT][4], float* partial, const L& at) {
  if constexpr (L::KSPLIT > 1) {
    constexpr int SLICE = L::K_SLICE_FLOATS;
    float* block = partial + at.row_block * (4 * L::NT * 4 * 32) + at.lane;
    if (at.k_split > 0)
#pragma unroll
      for (int g = 0; g < GR; ++g)
#pragma unroll
        for (int j = 0; j < L::NT; ++j)
#pragma unroll
          for (int e = 0; e < 4; ++e) block[(at.k_split - 1) * SLICE + ((g * L::NT + j) * 4 + e) * 32] = acc[g][j][e];
    __syncthreads();
    if (at.k_split == 0)
      for (int ks = 1; ks < L::KSPLIT; ++ks)
#pragma unroll
        for (int g = 0; g < GR; ++g)
#pragma unroll
          for (int j = 0; j < L::NT; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) acc[g][j][e] += block[(ks - 1) * SLICE + ((g * L::NT + j) * 4 + e) * 32];
  }
}

// The cell's forward step on the thread's element (j, e) of step t: x from the
// input ring, R h from the accumulators, biases and states from registers.
// `next` gets the new states; what to keep of them is the caller's business.
template <class Cell, bool FAST, class L, class Ring>
__device__ __forceinline__ void cell_forward_at(const Ring& xr, const float (&acc)[4][L::NT][4],
                                                const float (&b)[4][2], const float (&s)[4][L::NT][4],
                                                const L& at, int t, int j, int e, Gates& next) {
  const int c = at.col(j, e), i = at.row(e);
  Gates xg = {}, rg, bg, sg;
#pragma unroll
  for (int g = 0; g < Cell::GX; ++g) xg[g] = xr.at(t, c, g, i);
#pragma unroll
  for (int g = 0; g < 4; ++g) {
    rg[g] = acc[g][j][e];
    bg[g] = b[g][e / 2];
    sg[g] = s[g][j][e];
  }
  Cell::template forward<FAST>(xg, rg, bg, sg, next);
}

// cell_forward_at, keeping the new states only while the sequence runs (t < valid_steps): whether it does
template <class Cell, bool FAST, class L, class Ring>
__device__ __forceinline__ bool cell_step_at(const Ring& xr, const float (&acc)[4][L::NT][4], const float (&b)[4][2],
                                             float (&s)[4][L::NT][4], const L& at, int t, int j, int e,
                                             int valid_steps) {
  Gates next = {};
  cell_forward_at<Cell, FAST>(xr, acc, b, s, at, t, j, e, next);
  const bool valid = t < valid_steps;
  if (valid)
#pragma unroll
    for (int k = 0; k < Cell::S; ++k) s[k][j][e] = next[k];
  return valid;
}

}  // namespace fusedrnn
