// Per-step inputs staged into shared memory DEPTH - 1 steps ahead by cp.async,
// so no step waits on device memory: a ring of DEPTH slots, each holding one
// step's [BT][Q][DH] tile (Q rows a sequence: gates, or states). Rows are padded
// by 16 bytes (conflict-free reads; for Q = 1 the tile is exactly the [BT][LDH]
// layout ldmatrix reads). Padding and rows past B stay zero: never written.
//
// Every thread commits one cp.async group per step, empty or not, so that
// `cp.async.wait_group DEPTH - 2` always means "the next step's slot landed".
#pragma once
#include "storage.cuh"

namespace fusedrnn {

__device__ __forceinline__ void commit_copies() { asm volatile("cp.async.commit_group;"); }

template <int PENDING>
__device__ __forceinline__ void wait_copies() {
  asm volatile("cp.async.wait_group %0;" ::"n"(PENDING));
}

template <class T, int Q, int DHP, int BT, int DEPTH>
struct StepRing {
  using Element = T;
  static constexpr int ROWS_PER_SEQUENCE = Q, COLUMNS = DHP, SEQUENCES = BT, SLOTS = DEPTH;
  static constexpr int PAD = 16 / sizeof(T);
  static constexpr int Q_STRIDE = DHP + PAD;
  static constexpr int C_STRIDE = Q * Q_STRIDE + (Q > 1 ? PAD : 0);
  static constexpr int SLOT = BT * C_STRIDE;
  static constexpr int ELEMS = DEPTH * SLOT;

  T* base;

  __device__ const T* slot(int step) const { return base + (step % DEPTH) * SLOT; }
  __device__ float at(int step, int c, int q, int i) const {
    return Storage<T>::load(slot(step)[c * C_STRIDE + q * Q_STRIDE + i]);
  }

  __device__ void zero(int threads) const {
    for (int idx = threadIdx.x; idx < ELEMS; idx += threads) base[idx] = Storage<T>::store(0.0f);
  }
};

// One thread's share of filling a ring: the same chunks every step, at a fixed
// stride per step. Where a thread has few chunks their addresses are worked
// out once and kept in registers; rows of odd length (many small chunks) work
// them out every step instead. VEC elements divide DH (the host picks it), so
// chunks never straddle the end of a row.
template <class Ring, class T, int Q, int DHP, int BT, int VEC, int THREADS, class Row>
struct RingCopier {
  static constexpr int PER_CHUNK = (VEC * sizeof(T) < 16 ? VEC * sizeof(T) : 16) / sizeof(T);
  static constexpr int CHUNK_BYTES = PER_CHUNK * sizeof(T);
  static constexpr int CHUNKS_PER_ROW = DHP / PER_CHUNK;
  static constexpr int TOTAL = BT * Q * CHUNKS_PER_ROW;
  static constexpr int K = (TOTAL + THREADS - 1) / THREADS;
  static constexpr bool KEEP = K <= 4;  // addresses in registers
  static constexpr int KEPT = KEEP && K > 0 ? K : 1;  // a ring of no rows (Q = 0) copies nothing

  Row row;  // row(c, q): where row q of sequence c starts at step 0
  unsigned base;
  int valid_sequences, DH;
  size_t step_stride;
  const T* src[KEPT];
  unsigned dst[KEPT];
  bool live[KEPT];

  __device__ RingCopier(const Ring& ring, Row row_, int valid_sequences_, int DH_, size_t step_stride_)
      : row(row_), base(shared_address(ring.base)), valid_sequences(valid_sequences_), DH(DH_),
        step_stride(step_stride_) {
    if constexpr (KEEP) {
#pragma unroll
      for (int k = 0; k < K; ++k) chunk(threadIdx.x + k * THREADS, live[k], src[k], dst[k]);
    }
  }

  __device__ void chunk(int idx, bool& is_live, const T*& from, unsigned& to) const {
    const int piece = idx % CHUNKS_PER_ROW, r = idx / CHUNKS_PER_ROW;
    const int c = r / Q, q = r % Q, col = piece * PER_CHUNK;
    is_live = idx < TOTAL && c < valid_sequences && col < DH;
    from = is_live ? row(c, q) + col : nullptr;
    to = base + (c * Ring::C_STRIDE + q * Ring::Q_STRIDE + col) * sizeof(T);
  }

  // start copying step `step` into ring slot `slot`
  __device__ void fill(int slot, long long step) const {
#pragma unroll(KEEP ? K : 1)
    for (int k = 0; k < K; ++k) {
      bool is_live;
      const T* from;
      unsigned to;
      if constexpr (KEEP) {
        is_live = live[k], from = src[k], to = dst[k];
      } else {
        chunk(threadIdx.x + k * THREADS, is_live, from, to);
      }
      if (!is_live) continue;
      from += step * (long long)step_stride;
      to += slot * Ring::SLOT * sizeof(T);
      if constexpr (CHUNK_BYTES == 16) {
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(to), "l"(from));
      } else if constexpr (CHUNK_BYTES == 8) {
        asm volatile("cp.async.ca.shared.global [%0], [%1], 8;" ::"r"(to), "l"(from));
      } else if constexpr (CHUNK_BYTES == 4) {
        asm volatile("cp.async.ca.shared.global [%0], [%1], 4;" ::"r"(to), "l"(from));
      } else {  // rows of an odd number of half-precision elements: a plain copy
        unsigned short v = *reinterpret_cast<const unsigned short*>(from);
        asm volatile("st.shared.u16 [%0], %1;" ::"r"(to), "h"(v));
      }
    }
  }
};

template <class Ring, class T, int Q, int DHP, int BT, int VEC, int THREADS, class Row>
__device__ RingCopier<Ring, T, Q, DHP, BT, VEC, THREADS, Row> make_copier(const Ring& ring, Row row, int valid_sequences,
                                                                         int DH, size_t step_stride) {
  return {ring, row, valid_sequences, DH, step_stride};
}

}  // namespace fusedrnn
