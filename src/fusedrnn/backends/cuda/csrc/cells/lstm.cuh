// LSTM (torch.nn.LSTM): gates i, f, g, o; states h, c.
#pragma once
#include "cell.cuh"

namespace fusedrnn {

struct Lstm {
  static constexpr int GX = 4, GR = 4, GB = 4, S = 2;
  // every gate enters as x_g + (R h)_g + b_g: drec is dx (no separate store)
  static constexpr bool SUMS = true;

  template <bool FAST>
  __device__ static void forward(const Gates& x, const Gates& r, const Gates& b, const Gates& s, Gates& next) {
    const float i = sigmoid_<FAST>(x[0] + r[0] + b[0]);
    const float f = sigmoid_<FAST>(x[1] + r[1] + b[1]);
    const float g = tanh_<FAST>(x[2] + r[2] + b[2]);
    const float o = sigmoid_<FAST>(x[3] + r[3] + b[3]);
    const float c = f * s[1] + i * g;
    next[0] = o * tanh_<FAST>(c);
    next[1] = c;
  }

  template <bool FAST>
  __device__ static void backward(const Gates& x, const Gates& r, const Gates& b, const Gates& s, const Gates& ds,
                                  Gates& dx, Gates& drec, Gates& db, Gates& dprev) {
    const float i = sigmoid_<FAST>(x[0] + r[0] + b[0]);
    const float f = sigmoid_<FAST>(x[1] + r[1] + b[1]);
    const float g = tanh_<FAST>(x[2] + r[2] + b[2]);
    const float o = sigmoid_<FAST>(x[3] + r[3] + b[3]);
    const float tanh_c = tanh_<FAST>(f * s[1] + i * g);
    const float dc = ds[1] + ds[0] * o * (1.0f - tanh_c * tanh_c);
    dx[0] = dc * g * i * (1.0f - i);
    dx[1] = dc * s[1] * f * (1.0f - f);
    dx[2] = dc * i * (1.0f - g * g);
    dx[3] = ds[0] * tanh_c * o * (1.0f - o);
#pragma unroll
    for (int k = 0; k < 4; ++k) drec[k] = db[k] = dx[k];
    dprev[0] = 0.0f;
    dprev[1] = dc * f;
  }
};

}  // namespace fusedrnn
