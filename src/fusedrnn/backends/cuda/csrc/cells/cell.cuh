// The contract every cell's struct follows. No struct is written here: each is
// generated from the cell's step (fusedrnn/cells/: the built-in ones and define_cell's)
// by backends/cuda/cell_codegen.py, and reaches a translation unit as its prelude,
// in namespace fusedrnn::generated. The kernels take the struct as a template
// argument and never name a cell.
//
//   struct Cell {
//     static constexpr int GX, GR, GB, S;   // input gates, recurrent gates, biases, states
//     static constexpr bool SUMS;           // every gate enters as x + r + b: drec == dx == db
//     template <bool FAST> __device__ static void forward(
//         const float (&x)[4], const float (&r)[4], const float (&b)[4], const float (&s)[4],
//         float (&next)[4]);                   // the states after the step; next[0] is h
//     template <bool FAST> __device__ static void backward(
//         x, r, b, s, const float (&ds)[4],  // ds: d(loss)/d(next states)
//         float (&dx)[4], float (&drec)[4], float (&db)[4], float (&dprev)[4]);
//   };
//
// x, r and b are the pre-activation parts (input, R h, bias) of each gate; the
// skeleton adds R^T drec to dprev[0] itself. Arrays are sized 4, the most any
// cell uses, and a cell leaves the slots past its counts alone.
#pragma once
#include "../math.cuh"

namespace fusedrnn {
using Gates = float[4];

// Past a sequence's length (!valid) a step's gradients are 0, whatever x holds there: selected,
// never multiplied by a mask. x past a length may be NaN or Inf, and the cell's gradient there is
// then NaN even for a zero incoming gradient (0 * NaN); it must reach neither dx, nor drec (so
// neither dR nor R^T drec), nor db.
template <class Cell>
__device__ __forceinline__ void zero_past_length(bool valid, Gates& gx, Gates& gr, Gates& gb) {
#pragma unroll
  for (int g = 0; g < Cell::GX; ++g) gx[g] = valid ? gx[g] : 0.0f;
#pragma unroll
  for (int g = 0; g < Cell::GR; ++g) gr[g] = valid ? gr[g] : 0.0f;
#pragma unroll
  for (int g = 0; g < Cell::GB; ++g) gb[g] = valid ? gb[g] : 0.0f;
}
}
