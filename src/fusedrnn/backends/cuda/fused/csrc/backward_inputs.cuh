// What the backward kernels read and write a step, besides their products. BackwardInputs
// stages for step t, walking time in reverse: x, dy, h_{t-1} (y of step t - 1, or the initial
// state for t = 0; or h_entering[:, t] where the call has resets, resets.cuh) and the saved
// states 1..S-1 entering the step, each into ring slot
// (steps - 1 - t) % DEPTH. The rings hold units row0 .. of x, dy and the saved states (`rows` of
// them real), and units h_row0 .. of h (`h_rows` real): all of the head in the one-SM kernel, a
// CTA's units (and all of h, or its units of it) in the split ones.
#pragma once
#include "cells/cell.cuh"
#include "ring.cuh"

namespace fusedrnn {

// Row q of sequence c of a step-0 tile: base + c * c_stride + q * q_stride (a type the copiers can name)
template <class T>
struct StridedRows {
  const T* base;
  size_t c_stride, q_stride;
  __device__ const T* operator()(int c, int q) const { return base + c * c_stride + q * q_stride; }
};

template <class Ring, int VEC, int THREADS>
using StridedCopier = RingCopier<Ring, typename Ring::Element, Ring::ROWS_PER_SEQUENCE, Ring::COLUMNS,
                                 Ring::SEQUENCES, VEC, THREADS, StridedRows<typename Ring::Element>>;

template <class Cell, int VEC, int THREADS, class XRing, class DyRing, class HRing, class SavedRing>
struct BackwardInputs {
  using T = typename XRing::Element;
  StridedCopier<XRing, VEC, THREADS> x;
  StridedCopier<DyRing, VEC, THREADS> dy;
  StridedCopier<HRing, VEC, THREADS> h, h0;
  StridedCopier<SavedRing, VEC, THREADS> saved;
  int steps;
  bool h_every_step;  // h_entering given: h of every step from it, step 0's included

  __device__ BackwardInputs(const XRing& xr, const DyRing& dyr, const HRing& hr, const SavedRing& sr,
                            const T* __restrict__ x_, const T* __restrict__ y, const T* __restrict__ h_entering,
                            const T* __restrict__ dy_,
                            const T* __restrict__ states, const float* __restrict__ saved_, int batch0, int n,
                            int row0, int rows, int h_row0, int h_rows, int valid_sequences, int steps_, int B,
                            int NH, int DH)
      : x(xr, {x_ + size_t(batch0) * steps_ * Cell::GX * NH * DH + n * DH + row0, size_t(steps_) * Cell::GX * NH * DH,
               size_t(NH) * DH},
          valid_sequences, rows, size_t(Cell::GX) * NH * DH),
        dy(dyr, {dy_ + size_t(batch0) * steps_ * NH * DH + n * DH + row0, size_t(steps_) * NH * DH, 0},
           valid_sequences, rows, size_t(NH) * DH),
        // h entering step t >= 1 is y[:, t - 1]; entering step 0, the initial state
        h(hr, {(h_entering ? h_entering : y - size_t(NH) * DH) + size_t(batch0) * steps_ * NH * DH + n * DH + h_row0,
               size_t(steps_) * NH * DH, 0},
          valid_sequences, h_rows, size_t(NH) * DH),
        h0(hr, {states + size_t(batch0) * NH * DH + n * DH + h_row0, size_t(NH) * DH, 0}, valid_sequences, h_rows, 0),
        saved(sr, {saved_ + size_t(batch0) * NH * DH + n * DH + row0, size_t(NH) * DH, size_t(B) * NH * DH},
              Cell::S > 1 ? valid_sequences : 0, rows, size_t(Cell::S - 1) * B * NH * DH),
        steps(steps_), h_every_step(h_entering != nullptr) {}

  __device__ void fill(int t) const {
    const int slot = (steps - 1 - t) % XRing::SLOTS;
    x.fill(slot, t);
    dy.fill(slot, t);
    if (t > 0 || h_every_step) h.fill(slot, t);
    else h0.fill(slot, 0);
    saved.fill(slot, t);
  }
};

// The cell's gradients of one element (sequence `batch`, unit `unit` of head n, step t) into
// dx [B, T, GX, NH, DH] and, where the cell's gates are not sums, drec [NH, B * T, GR * DH] (where
// they are, drec is dx and the pointer null)
template <class Cell, class T>
__device__ __forceinline__ void store_step_gradients(T* __restrict__ dx, T* __restrict__ drec, const Gates& gx,
                                                     const Gates& gr, size_t batch, int t, int n, int unit, int steps,
                                                     int B, int NH, int DH) {
  const size_t head_stride = size_t(NH) * DH;
  T* dx_row = dx + (batch * steps + t) * Cell::GX * head_stride + n * DH + unit;
#pragma unroll
  for (int g = 0; g < Cell::GX; ++g) dx_row[g * head_stride] = Storage<T>::store(gx[g]);
  if constexpr (!Cell::SUMS) {
    T* drec_row = drec + ((size_t(n) * B + batch) * steps + t) * Cell::GR * DH + unit;
#pragma unroll
    for (int g = 0; g < Cell::GR; ++g) drec_row[g * DH] = Storage<T>::store(gr[g]);
  }
}

}  // namespace fusedrnn
