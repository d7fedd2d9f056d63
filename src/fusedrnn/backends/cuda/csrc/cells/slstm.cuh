// sLSTM (xLSTM), stabilised in log space: gates i, f, z, o; states h, c, n, m.
// The math is fusedrnn/cells/slstm.py's.
#pragma once
#include "cell.cuh"

namespace fusedrnn {

struct Slstm {
  static constexpr int GX = 4, GR = 4, GB = 4, S = 4;
  // every gate enters as x_g + (R h)_g + b_g: drec is dx (no separate store)
  static constexpr bool SUMS = true;

  struct Parts {
    float i, f, z, o, f_pre, from_f, i_pre, m_new, c_new, n_new;
  };

  template <bool FAST>
  __device__ static Parts parts(const Gates& x, const Gates& r, const Gates& b, const Gates& s) {
    Parts p;
    p.i_pre = x[0] + r[0] + b[0];
    p.f_pre = x[1] + r[1] + b[1];
    p.from_f = log_sigmoid_(p.f_pre) + s[3];
    p.m_new = s[2] == 0.0f ? p.i_pre : fmaxf(p.from_f, p.i_pre);
    p.i = __expf(p.i_pre - p.m_new);
    p.f = __expf(p.from_f - p.m_new);
    p.z = tanh_<FAST>(x[2] + r[2] + b[2]);
    p.o = sigmoid_<FAST>(x[3] + r[3] + b[3]);
    p.c_new = p.f * s[1] + p.i * p.z;
    p.n_new = p.f * s[2] + p.i;
    return p;
  }

  template <bool FAST>
  __device__ static void forward(const Gates& x, const Gates& r, const Gates& b, const Gates& s, Gates& next) {
    const Parts p = parts<FAST>(x, r, b, s);
    next[0] = p.o * p.c_new / p.n_new;
    next[1] = p.c_new;
    next[2] = p.n_new;
    next[3] = p.m_new;
  }

  template <bool FAST>
  __device__ static void backward(const Gates& x, const Gates& r, const Gates& b, const Gates& s, const Gates& ds,
                                  Gates& dx, Gates& drec, Gates& db, Gates& dprev) {
    const Parts p = parts<FAST>(x, r, b, s);
    const float dc = ds[1] + ds[0] * p.o / p.n_new;
    const float dn = ds[2] - ds[0] * p.o * p.c_new / (p.n_new * p.n_new);
    const float df = (dc * s[1] + dn * s[2]) * p.f;
    const float di = (dc * p.z + dn) * p.i;
    const float dm = ds[3] - df - di;
    const bool m_from_f = s[2] != 0.0f && p.from_f > p.i_pre;
    const float d_from_f = df + (m_from_f ? dm : 0.0f);
    dx[0] = di + (m_from_f ? 0.0f : dm);
    dx[1] = d_from_f * sigmoid_<FAST>(-p.f_pre);
    dx[2] = dc * p.i * (1.0f - p.z * p.z);
    dx[3] = ds[0] * p.c_new / p.n_new * p.o * (1.0f - p.o);
#pragma unroll
    for (int k = 0; k < 4; ++k) drec[k] = db[k] = dx[k];
    dprev[0] = 0.0f;
    dprev[1] = dc * p.f;
    dprev[2] = dn * p.f;
    dprev[3] = d_from_f;
  }
};

}  // namespace fusedrnn
