// Elman RNN (torch.nn.RNN): h' = act(x + R h + b), tanh or relu.
#pragma once
#include "cell.cuh"

namespace fusedrnn {

template <bool RELU>
struct Elman {
  static constexpr int GX = 1, GR = 1, GB = 1, S = 1;
  // every gate enters as x_g + (R h)_g + b_g: drec is dx (no separate store)
  static constexpr bool SUMS = true;

  template <bool FAST>
  __device__ static void forward(const Gates& x, const Gates& r, const Gates& b, const Gates& s, Gates& next) {
    const float pre = x[0] + r[0] + b[0];
    next[0] = RELU ? fmaxf(pre, 0.0f) : tanh_<FAST>(pre);
  }

  template <bool FAST>
  __device__ static void backward(const Gates& x, const Gates& r, const Gates& b, const Gates& s, const Gates& ds,
                                  Gates& dx, Gates& drec, Gates& db, Gates& dprev) {
    const float pre = x[0] + r[0] + b[0];
    float slope;
    if constexpr (RELU) {
      slope = pre > 0.0f ? 1.0f : 0.0f;
    } else {
      const float h = tanh_<FAST>(pre);
      slope = 1.0f - h * h;
    }
    dx[0] = drec[0] = db[0] = ds[0] * slope;
    dprev[0] = 0.0f;
  }
};

using ElmanTanh = Elman<false>;
using ElmanRelu = Elman<true>;

}  // namespace fusedrnn
