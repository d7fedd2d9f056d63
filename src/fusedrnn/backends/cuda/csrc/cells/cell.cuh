// The contract every cell follows (fusedrnn/cells/ holds the reference math).
//
//   struct Cell {
//     static constexpr int GX, GR, GB, S;   // input gates, recurrent gates, biases, states
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
}
