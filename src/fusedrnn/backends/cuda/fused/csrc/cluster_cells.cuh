// Who runs the cell in a step of the cluster forward (cluster_forward.cuh), in two
// forms with one interface: gather() brings each element's R h together,
// step() runs the cell and writes h_t into the CTA's tile, store_outputs() y and
// the saved states, store_states() the final ones. Where a sequence starts afresh at
// step t + 1 (resets.cuh), step() writes the initial h into the tile and store_outputs(),
// after y, sets the states carried on to the initial ones (the kernel always calls both);
// read_resets(), before step(), reads which of its elements do (from the kernel's ResetRing),
// and hold_initial_states(), before the loop, keeps the initial states in registers.
//
// OwnerCells: the mma layout's (layout.cuh): the first K slice's warps add the
// others' partial products into their accumulators and run the cell on their 4
// elements a column tile; the other warps wait.
//
// SpreadCells: all threads. At 768x1 the owners' 4 cells one after another took
// ~560 of a step's ~4300 cycles. Here every warp stores its slice of R h (the
// columns of the cluster's `sequences` only) to shared memory, and the CTA's
// ROWS x sequences elements go to its threads unit-fastest, at most
// E = ceil(ROWS * BT / THREADS) a thread: each sums the KSPLIT slices of its gates
// and runs the cell. One __syncthreads orders the stores before the sums, as
// the owners' form has one. Each warp then sends its elements of h_t to the other
// CTAs itself (push), without waiting for the rest of its CTA.
//
// The owners' form runs the whole batch tile (sequences == BT), the spread form
// any number of sequences up to it.
#pragma once
#include "cells/cell.cuh"
#include "cluster.cuh"
#include "elements.cuh"
#include "layout.cuh"
#include "resets.cuh"

namespace fusedrnn {

template <class Cell, class L, class T, bool FAST>
struct OwnerCells {
  static constexpr int SCRATCH = L::PARTIAL_FLOATS;  // floats
  const L at;
  const ThreadElements<L> el;
  float s[4][L::NT][4] = {}, b[4][2] = {};
  T* y_at[L::NT][4];  // this thread's elements of the current step in y
  unsigned word[L::NT] = {};  // resets at the next step (resets.cuh)
  float s0[4][L::NT][4] = {};    // the initial states (hold_initial_states)
  const int batch0;               // the tile's first sequence

  __device__ OwnerCells(int, int batch0, int valid_sequences, int row0, int n, int NH, int DH, int steps,
                        const long long* __restrict__ lengths, const T* __restrict__ bias,
                        const T* __restrict__ states, size_t state_stride, T* y)
      : el(at, at.k_split == 0, batch0, row0, n, batch0 + valid_sequences, NH, DH, steps, lengths), batch0(batch0) {
    el.template load<Cell::S>(s, states, state_stride);
    load_biases<Cell::GB>(b, bias, at, row0, n, NH, DH);
    output_pointers(y_at, y, at, batch0, row0, n, DH, steps, size_t(NH) * DH);
  }

  __device__ void gather(float (&acc)[4][L::NT][4], float* partial, const L& at) const {
    add_k_slices<Cell::GR>(acc, partial, at);  // the other K slices into the owners' accumulators
  }

  __device__ void hold_initial_states(const T* __restrict__ states, size_t state_stride) {
    el.template load<Cell::S, T, true>(s0, states, state_stride);
  }

  // the reset words of the step after this one, from ring slot `slot`
  template <class Ring>
  __device__ void read_resets(const Ring& ring, int slot) {
    ring.column_words(word, slot, at);
  }

  template <class Ring>
  __device__ void step(const float (&acc)[4][L::NT][4], const Ring& xr, const float*, T* h_next, int row0, int t) {
    if (at.k_split == 0)
#pragma unroll
      for (int j = 0; j < L::NT; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int c = at.col(j, e), i = at.row(e);
          cell_step_at<Cell, FAST>(xr, acc, b, s, at, t, j, e, el.valid_steps[j][e]);
          // padding (units past DH, sequences past B) stays 0: the next product reads it
          h_next[c * L::LDH + row0 + i] = Storage<T>::store(el.inside[j][e] ? s[0][j][e] : 0.0f);
        }
    // the initial h, where a sequence starts afresh at t + 1 (inside: the first K slice's warps only)
    for_each_restart<L>(word, el.inside, el.valid_steps, at, batch0, t + 1, [&](int j, int e) {
      h_next[at.col(j, e) * L::LDH + row0 + at.row(e)] = Storage<T>::store(s0[0][j][e]);
    });
  }

  __device__ void store_outputs(float* __restrict__ saved, size_t state_stride, size_t head_stride, int t) {
    if (at.k_split == 0)
#pragma unroll
      for (int j = 0; j < L::NT; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          if (el.inside[j][e]) {
            *y_at[j][e] = Storage<T>::store(t < el.valid_steps[j][e] ? s[0][j][e] : 0.0f);
            if (saved)
#pragma unroll
              for (int k = 1; k < Cell::S; ++k)
                saved[(size_t(t + 1) * (Cell::S - 1) + k - 1) * state_stride + el.offset[j][e]] = s[k][j][e];
          }
          y_at[j][e] += head_stride;
        }
    // the initial states carried on (and saved) where a sequence restarts (the first K slice's warps)
    for_each_restart<L>(word, el.inside, el.valid_steps, at, batch0, t + 1, [&](int j, int e) {
#pragma unroll
      for (int k = 0; k < Cell::S; ++k) s[k][j][e] = s0[k][j][e];
      if (saved)
#pragma unroll
        for (int k = 1; k < Cell::S; ++k)
          saved[(size_t(t + 1) * (Cell::S - 1) + k - 1) * state_stride + el.offset[j][e]] = s0[k][j][e];
    });
  }

  template <int FIRST, class U>
  __device__ void store_states(U* __restrict__ dst, size_t state_stride) const {
    el.template store<Cell::S, FIRST>(dst, s, state_stride);
  }
};

template <class Cell, class L, class T, bool FAST, int ELEMENTS>
struct SpreadCells {
  // elements a thread, at most (0: all BT sequences): a compile-time bound, so that the element arrays
  // hold no slot a call never uses (at 768x1, 3 sequences a cluster ran 1.91 ms with room for 8, 1.73 for 4)
  static constexpr int E = ELEMENTS ? ELEMENTS : (L::ROWS * L::BT + L::THREADS - 1) / L::THREADS;
  static constexpr int LDP = L::ROWS + 4;  // a column of partial sums: the mma layout's stores hit 32 banks
  static constexpr int SCRATCH = L::KSPLIT * Cell::GR * L::BT * LDP;  // floats: [KSPLIT][GR][BT][LDP]

  int sequences, elements;  // the cluster's sequences (columns of the tile), ROWS x sequences

  int column[E], unit[E];  // sequence within the cluster's, unit within the CTA's rows
  bool inside[E];          // a real (sequence, unit): not padding
  int valid_steps[E];      // the sequence's length (0 past B)
  size_t offset[E];        // of (batch, head n, unit) in a [B, NH, DH] tensor
  float s[E][4], b[E][4];  // states and biases
  T* y_at[E];              // the element of the current step in y [B, T, NH, DH]
  unsigned word[E] = {};   // resets at the next step (resets.cuh)
  int batch0;                                 // the tile's first sequence
  float s0[E][4] = {};     // the initial states (hold_initial_states)

  __device__ SpreadCells(int sequences_, int batch0, int valid_sequences, int row0, int n, int NH, int DH,
                         int steps, const long long* __restrict__ lengths, const T* __restrict__ bias,
                         const T* __restrict__ states, size_t state_stride, T* y)
      : sequences(sequences_), elements(L::ROWS * sequences_), batch0(batch0) {
    const size_t head_stride = size_t(NH) * DH;
#pragma unroll
    for (int m = 0; m < E; ++m) {
      const int idx = threadIdx.x + m * L::THREADS;
      column[m] = idx / L::ROWS;
      unit[m] = idx % L::ROWS;
      const int batch = batch0 + column[m], i = row0 + unit[m];
      inside[m] = idx < elements && column[m] < valid_sequences && i < DH;
      valid_steps[m] = !inside[m] ? 0 : lengths ? int(lengths[batch]) : steps;
      offset[m] = inside[m] ? size_t(batch) * head_stride + n * DH + i : 0;
      y_at[m] = inside[m] ? y + size_t(batch) * steps * head_stride + n * DH + i : y;
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        s[m][k] = inside[m] && k < Cell::S ? Storage<T>::load(states[k * state_stride + offset[m]]) : 0.0f;
        b[m][k] = inside[m] && k < Cell::GB ? Storage<T>::load(bias[(size_t(k) * NH + n) * DH + i]) : 0.0f;
      }
    }
  }

  __device__ void hold_initial_states(const T* __restrict__ states, size_t state_stride) {
#pragma unroll
    for (int m = 0; m < E; ++m)
#pragma unroll
      for (int k = 0; k < Cell::S; ++k)
        s0[m][k] = inside[m] ? load_held(states + k * state_stride + offset[m]) : 0.0f;
  }

  // the reset words of the step after this one, from ring slot `slot`
  template <class Ring>
  __device__ void read_resets(const Ring& ring, int slot) {
#pragma unroll
    for (int m = 0; m < E; ++m) word[m] = ring.word(slot, batch0 + min(column[m], L::BT - 1));
  }

  // element m starts afresh at step t + 1
  __device__ bool restarts(int m, int t) const {
    return inside[m] && starts_afresh(word[m], batch0 + column[m], t + 1, valid_steps[m]);
  }

  // this warp's slice of R h (its K slice, the cluster's columns) into `partial`, then the CTA meets
  __device__ void gather(const float (&acc)[4][L::NT][4], float* partial, const L& at) const {
#pragma unroll
    for (int g = 0; g < Cell::GR; ++g)
#pragma unroll
      for (int j = 0; j < L::NT; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int c = at.col(j, e);
          if (c < sequences) partial[((at.k_split * Cell::GR + g) * L::BT + c) * LDP + at.row(e)] = acc[g][j][e];
        }
    __syncthreads();
  }

  // step t on this thread's elements: x from the ring, R h summed over the K slices; h_t of each
  // element (0 for padding, which the next product reads) into the [BT][LDH] tile h_next at row0
  template <class Ring>
  __device__ void step(const float (&)[4][L::NT][4], const Ring& xr, const float* partial, T* h_next, int row0,
                       int t) {
#pragma unroll
    for (int m = 0; m < E; ++m) {
      if (threadIdx.x + m * L::THREADS >= elements) break;
      const int c = column[m], i = unit[m];
      Gates x = {}, r = {}, next;
#pragma unroll
      for (int g = 0; g < Cell::GX; ++g) x[g] = xr.at(t, c, g, i);
#pragma unroll
      for (int g = 0; g < Cell::GR; ++g)
#pragma unroll
        for (int ks = 0; ks < L::KSPLIT; ++ks) r[g] += partial[((ks * Cell::GR + g) * L::BT + c) * LDP + i];
      Cell::template forward<FAST>(x, r, b[m], s[m], next);
      if (t < valid_steps[m])
#pragma unroll
        for (int k = 0; k < Cell::S; ++k) s[m][k] = next[k];
      h_next[c * L::LDH + row0 + i] = Storage<T>::store(inside[m] ? s[m][0] : 0.0f);
    }
    if (any_reset(word))  // the initial h, where a sequence starts afresh at t + 1 (before push reads the tile)
#pragma unroll
      for (int m = 0; m < E; ++m)
        if (restarts(m, t)) h_next[column[m] * L::LDH + row0 + unit[m]] = Storage<T>::store(s0[m][0]);
  }

  // After step(): this warp's elements of h_t, in 16-byte pieces of PER_PIECE units of one sequence
  // (a piece never straddles two warps: ROWS and 32 are multiples of PER_PIECE), from the tile into
  // the same place in the other CTAs of the cluster by st.async, counted by their mbarrier at `bar`.
  // Each warp sends as soon as its own cells are done, with no wait for the CTA's other warps.
  template <int PARTS>
  __device__ void push(const T* h_next, int row0, int rank, unsigned bar) const {
    constexpr int PER_PIECE = 16 / sizeof(T), PIECES = 32 / PER_PIECE, SENDERS = 32 / PIECES;  // a warp's
    const int lane = threadIdx.x % 32;
    __syncwarp();  // the warp's h_t in the tile
#pragma unroll
    for (int m = 0; m < E; ++m) {
      const int idx = threadIdx.x - lane + m * L::THREADS + lane % PIECES * PER_PIECE;  // this lane's piece
      if (idx < elements) {
        const T* at = h_next + idx / L::ROWS * L::LDH + row0 + idx % L::ROWS;
        const uint4 v = *reinterpret_cast<const uint4*>(at);
        const unsigned local = shared_address(at);
        for (int d = lane / PIECES; d < PARTS - 1; d += SENDERS) {
          int dest = rank + 1 + d;
          if (dest >= PARTS) dest -= PARTS;
          store_async_to_rank(local, bar, dest, v);
        }
      }
    }
  }

  // y of step t (zeros past a sequence's length) and, where `saved`, states 1..S-1 after it (slot t + 1)
  __device__ void store_outputs(float* __restrict__ saved, size_t state_stride, size_t head_stride, int t) {
#pragma unroll
    for (int m = 0; m < E; ++m) {
      if (inside[m]) {
        *y_at[m] = Storage<T>::store(t < valid_steps[m] ? s[m][0] : 0.0f);
        if (saved)
#pragma unroll
          for (int k = 1; k < Cell::S; ++k)
            saved[(size_t(t + 1) * (Cell::S - 1) + k - 1) * state_stride + offset[m]] = s[m][k];
      }
      y_at[m] += head_stride;
    }
    if (any_reset(word))  // the initial states carried on (and saved) where a sequence restarts
#pragma unroll
      for (int m = 0; m < E; ++m)
        if (restarts(m, t)) {
#pragma unroll
          for (int k = 0; k < Cell::S; ++k) s[m][k] = s0[m][k];
          if (saved)
#pragma unroll
            for (int k = 1; k < Cell::S; ++k)
              saved[(size_t(t + 1) * (Cell::S - 1) + k - 1) * state_stride + offset[m]] = s0[m][k];
        }
  }

  // states FIRST..S-1 into an [S - FIRST, B, NH, DH] tensor
  template <int FIRST, class U>
  __device__ void store_states(U* __restrict__ dst, size_t state_stride) const {
#pragma unroll
    for (int m = 0; m < E; ++m)
      if (inside[m])
#pragma unroll
        for (int k = FIRST; k < Cell::S; ++k) dst[(k - FIRST) * state_stride + offset[m]] = Storage<U>::store(s[m][k]);
  }
};

// the form OPTIONS picks (no <type_traits> under NVRTC without the C++ library)
template <bool SPREAD, class Cell, class L, class T, bool FAST, int ELEMENTS>
struct ClusterCellsOf {
  using type = OwnerCells<Cell, L, T, FAST>;
};
template <class Cell, class L, class T, bool FAST, int ELEMENTS>
struct ClusterCellsOf<true, Cell, L, T, FAST, ELEMENTS> {
  using type = SpreadCells<Cell, L, T, FAST, ELEMENTS>;
};

}  // namespace fusedrnn
