// The backward for heads split over CTAs (the forward is grid_forward.cuh).
// Per step t, in reverse, a CTA: recomputes its rows of R h_{t-1} (h from y,
// staged ahead like everything else a step reads), runs the cell's gradient on
// its rows, and multiplies its rows of R^T by its drec for every unit of the
// head: a partial sum of dh_{t-1} that goes to a global exchange buffer. After
// a barrier of the head's CTAs each sums, for its own rows, the partials of all
// parts (in a fixed order: deterministic). Adds to the forward's arguments
// those of one_sm_backward.cuh, plus partials [2, PARTS, B, NH, DHP] fp32 and arrival flags.
#pragma once
#include "grid_barrier.cuh"
#include "elements.cuh"
#include "recurrent_product.cuh"
#include "resets.cuh"
#include "backward_inputs.cuh"

namespace fusedrnn {

template <class Cell, class T, int DHP, int ROWS, int KSPLIT, int NT, int DEPTH, int VEC, bool FAST, bool RESETS>
__global__ void __launch_bounds__(Layout<T, DHP, Cell::GR, NT, 1, ROWS, KSPLIT>::THREADS, 1)
    fused_split_backward_kernel(const T* __restrict__ x, const T* __restrict__ R, const T* __restrict__ bias,
                                const T* __restrict__ states, const long long* __restrict__ lengths,
                                const unsigned* __restrict__ resets, const T* __restrict__ y,
                                const T* __restrict__ h_entering, const float* __restrict__ saved,
                                const T* __restrict__ dy, const T* __restrict__ dfinal, T* __restrict__ dx,
                                T* __restrict__ drec, float* __restrict__ db_partial, T* __restrict__ dstates,
                                float* __restrict__ partials,
                                unsigned* __restrict__ arrivals, int B, int steps, int NH, int DH) {
  using L = Layout<T, DHP, Cell::GR, NT, 1, ROWS, KSPLIT>;
  if constexpr (!RESETS) resets = nullptr, h_entering = nullptr;  // folds every reset test away (no resets)
  constexpr int PARTS = DHP / ROWS;
  constexpr int SAVED = Cell::S > 1 ? Cell::S - 1 : 1;
  using HRing = StepRing<T, 1, DHP, L::BT, DEPTH>;  // all of h_{t-1}
  using XRing = StepRing<T, Cell::GX, ROWS, L::BT, DEPTH>;
  using DyRing = StepRing<T, 1, ROWS, L::BT, DEPTH>;
  using SavedRing = StepRing<float, SAVED, ROWS, L::BT, DEPTH>;
  extern __shared__ __align__(16) unsigned char smem[];
  T* Rs = reinterpret_cast<T*>(smem);
  T* d_tile = Rs + L::R_ELEMS;  // [BT][LDD]: this step's drec of the CTA's rows
  const HRing hr{d_tile + L::D_ELEMS};
  const XRing xr{hr.base + HRing::ELEMS};
  const DyRing dyr{xr.base + XRing::ELEMS};
  const SavedRing sr{reinterpret_cast<float*>(dyr.base + DyRing::ELEMS)};
  float* dh_tile = sr.base + SavedRing::ELEMS;  // [BT][ROWS]: the summed dh of the CTA's rows
  float* partial = dh_tile + L::BT * ROWS;      // [KSPLIT-1] slices of the recompute

  const int n = blockIdx.x / PARTS, part = blockIdx.x % PARTS, row0 = part * ROWS, batch0 = blockIdx.y * L::BT;
  const ResetRing<L::BT, DEPTH> reset_ring{reinterpret_cast<unsigned*>(partial + L::PARTIAL_FLOATS), resets, batch0, B,
                                           steps};  // with RESETS only
  unsigned* flags = arrivals + (size_t(blockIdx.y) * NH + n) * PARTS * FLAG_STRIDE;  // this head's
  const L at;
  const bool owner = at.k_split == 0;
  const size_t head_stride = size_t(NH) * DH, state_stride = size_t(B) * head_stride;
  const int valid_sequences = min(L::BT, B - batch0), my_rows = min(ROWS, DH - row0);
  const size_t part_stride = size_t(B) * NH * DHP;  // one part's partial sums

  xr.zero(L::THREADS);
  hr.zero(L::THREADS);
  dyr.zero(L::THREADS);
  sr.zero(L::THREADS);
  load_recurrent_weights<L>(Rs, R, n, NH, DH, row0);
  __syncthreads();
  const BackwardInputs<Cell, VEC, L::THREADS, XRing, DyRing, HRing, SavedRing> inputs(
      xr, dyr, hr, sr, x, y, h_entering, dy, states, saved, batch0, n, row0, my_rows, 0, DH, valid_sequences, steps,
      B, NH, DH);
  const auto fill_step = [&](int t) {
    inputs.fill(t);
    if constexpr (RESETS) reset_ring.fill((steps - 1 - t) % DEPTH, t);
  };
  for (int o = 0; o < DEPTH - 1; ++o) {
    if (o < steps) fill_step(steps - 1 - o);
    commit_copies();
  }
  const WeightFragments<L, T, false> weights(Rs, at);

  const ThreadElements<L> el(at, owner, batch0, row0, n, B, NH, DH, steps, lengths);
  const auto& inside = el.inside;
  const auto& valid_steps = el.valid_steps;
  float d_state[4][L::NT][4] = {}, b[4][2] = {}, db[4][2] = {};
  float d_init[4][L::NT][4] = {};  // the gradient of the states entering the steps resets start
  el.template load<Cell::S>(d_state, dfinal, state_stride);
  load_biases<Cell::GB>(b, bias, at, row0, n, NH, DH);
  wait_copies<DEPTH - 2>();
  __syncthreads();

  for (int t = steps - 1; t >= 0; --t) {
    const int order = steps - 1 - t;
    if (t - (DEPTH - 1) >= 0) fill_step(t - (DEPTH - 1));
    commit_copies();
    if constexpr (RESETS) {  // the states entering step t + 1 of sequences it started afresh were the initial ones
      unsigned word[L::NT];
      reset_ring.column_words(word, order % DEPTH, at);
      for_each_restart<L>(word, inside, valid_steps, at, batch0, t + 1,  // owners only: inside
                          [&](int j, int e) { hand_to_initial<Cell::S, L>(d_state, d_init, j, e); });
    }

    float acc[4][L::NT][4] = {};
    recurrent_product<L>(acc, weights, hr.slot(order), at);
    add_k_slices<Cell::GR>(acc, partial, at);

    float q[4][L::NT][4] = {};
    if (owner)
#pragma unroll
      for (int j = 0; j < L::NT; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int c = at.col(j, e), i = at.row(e);
          const bool valid = t < valid_steps[j][e];
          Gates xg = {}, rg, bg, sg = {}, dg, gx = {}, gr = {}, gb = {}, dprev = {};
#pragma unroll
          for (int g = 0; g < Cell::GX; ++g) xg[g] = xr.at(order, c, g, i);
#pragma unroll
          for (int k = 1; k < Cell::S; ++k) sg[k] = sr.at(order, c, k - 1, i);
          sg[0] = hr.at(order, c, 0, row0 + i);
          if (valid) d_state[0][j][e] += dyr.at(order, c, 0, i);
#pragma unroll
          for (int g = 0; g < 4; ++g) {
            rg[g] = acc[g][j][e];
            bg[g] = b[g][e / 2];
            dg[g] = valid ? d_state[g][j][e] : 0.0f;
          }
          Cell::template backward<FAST>(xg, rg, bg, sg, dg, gx, gr, gb, dprev);
          zero_past_length<Cell>(valid, gx, gr, gb);  // select: x past a length may be NaN
          if (inside[j][e]) {  // (inline: through store_step_gradients this kernel spilled at DH 2048)
            const size_t batch = size_t(batch0 + c);
            T* dx_row = dx + (batch * steps + t) * Cell::GX * head_stride + n * DH + row0 + i;
#pragma unroll
            for (int g = 0; g < Cell::GX; ++g) dx_row[g * head_stride] = Storage<T>::store(gx[g]);
            if constexpr (!Cell::SUMS) {  // else drec is dx (null)
              T* drec_row = drec + ((size_t(n) * B + batch) * steps + t) * Cell::GR * DH + row0 + i;
#pragma unroll
              for (int g = 0; g < Cell::GR; ++g) drec_row[g * DH] = Storage<T>::store(gr[g]);
            }
          }
#pragma unroll
          for (int g = 0; g < Cell::GR; ++g)
            d_tile[c * L::LDD + g * ROWS + i] = Storage<T>::store(inside[j][e] ? gr[g] : 0.0f);
#pragma unroll
          for (int g = 0; g < Cell::GB; ++g) db[g][e / 2] += gb[g];
#pragma unroll
          for (int k = 0; k < Cell::S; ++k) q[k][j][e] = valid ? dprev[k] : d_state[k][j][e];
        }
    __syncthreads();  // d_tile complete

    // this CTA's share of R^T drec for every unit of the head, to the exchange buffer
    float* out = partials + ((size_t(t % 2) * PARTS + part) * B * NH + n) * DHP;
    for (int ob = threadIdx.x / 32; ob < DHP / 16; ob += L::WARPS) {
      float dh[L::NT][4] = {};
      transposed_product<L>(dh, Rs, d_tile, at, ob);
#pragma unroll
      for (int j = 0; j < L::NT; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int c = at.col(j, e);
          if (c < valid_sequences) out[size_t(batch0 + c) * NH * DHP + ob * 16 + at.lane / 4 + (e >= 2 ? 8 : 0)] = dh[j][e];
        }
    }
    grid_barrier<PARTS>(flags, part, unsigned(steps - t));
    // sum the parts' partials for this CTA's rows, in part order
    const float* in = partials + (size_t(t % 2) * PARTS * B * NH + n) * DHP + row0;
    for (int idx = threadIdx.x; idx < valid_sequences * ROWS; idx += L::THREADS) {
      const int c = idx / ROWS, i = idx % ROWS;
      const float* from = in + size_t(batch0 + c) * NH * DHP + i;
      float sum = 0.0f;
      for (int p = 0; p < PARTS; ++p) sum += from[p * part_stride];
      dh_tile[c * ROWS + i] = sum;
    }
    wait_copies<DEPTH - 2>();  // the next step's inputs (this thread's share)
    __syncthreads();
    if (owner)
#pragma unroll
      for (int j = 0; j < L::NT; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
#pragma unroll
          for (int k = 0; k < Cell::S; ++k) d_state[k][j][e] = q[k][j][e];
          if (t < valid_steps[j][e] && at.col(j, e) < valid_sequences)
            d_state[0][j][e] += dh_tile[at.col(j, e) * ROWS + at.row(e)];
        }
  }

  if (resets) add_restart_gradients<Cell::S, L>(d_state, d_init);
  el.template store<Cell::S>(dstates, d_state, state_stride);
  // db of the CTA's rows: over this thread's columns (done), then the 4 lanes sharing a row
  if (owner)
#pragma unroll
    for (int g = 0; g < Cell::GB; ++g)
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        float v = db[g][half];
        v += __shfl_xor_sync(0xffffffffu, v, 1);
        v += __shfl_xor_sync(0xffffffffu, v, 2);
        const int i = row0 + at.row(2 * half);
        if (at.lane % 4 == 0 && i < DH) db_partial[((size_t(blockIdx.y) * Cell::GB + g) * NH + n) * DH + i] = v;
      }
}

}  // namespace fusedrnn
