// GRU (torch.nn.GRU): gates r, z, n; biases r, z, n_in, n_hid; state h.
// The reset gate scales the recurrent part of n together with its bias.
#pragma once
#include "cell.cuh"

namespace fusedrnn {

struct Gru {
  static constexpr int GX = 3, GR = 3, GB = 4, S = 1;
  // r scales (R h)_n + b_nhid: drec differs from dx and is stored for dR
  static constexpr bool SUMS = false;

  template <bool FAST>
  __device__ static void gates(const Gates& x, const Gates& r, const Gates& b, float& reset, float& update,
                               float& candidate, float& hidden_n) {
    reset = sigmoid_<FAST>(x[0] + r[0] + b[0]);
    update = sigmoid_<FAST>(x[1] + r[1] + b[1]);
    hidden_n = r[2] + b[3];
    candidate = tanh_<FAST>(x[2] + b[2] + reset * hidden_n);
  }

  template <bool FAST>
  __device__ static void forward(const Gates& x, const Gates& r, const Gates& b, const Gates& s, Gates& next) {
    float reset, update, candidate, hidden_n;
    gates<FAST>(x, r, b, reset, update, candidate, hidden_n);
    next[0] = (1.0f - update) * candidate + update * s[0];
  }

  template <bool FAST>
  __device__ static void backward(const Gates& x, const Gates& r, const Gates& b, const Gates& s, const Gates& ds,
                                  Gates& dx, Gates& drec, Gates& db, Gates& dprev) {
    float reset, update, candidate, hidden_n;
    gates<FAST>(x, r, b, reset, update, candidate, hidden_n);
    const float dn = ds[0] * (1.0f - update) * (1.0f - candidate * candidate);
    const float dr = dn * hidden_n * reset * (1.0f - reset);
    const float dz = ds[0] * (s[0] - candidate) * update * (1.0f - update);
    dx[0] = drec[0] = db[0] = dr;
    dx[1] = drec[1] = db[1] = dz;
    dx[2] = db[2] = dn;
    drec[2] = db[3] = dn * reset;
    dprev[0] = ds[0] * update;
  }
};

}  // namespace fusedrnn
