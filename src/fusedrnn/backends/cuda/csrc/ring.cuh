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

// One thread's share of filling a ring, worked out once: the same chunks of
// every step, at a fixed stride per step. VEC elements divide DH (the host
// picks it), so chunks never straddle the end of a row.
template <class Ring, class T, int Q, int DHP, int BT, int VEC, int THREADS>
struct RingCopier {
  static constexpr int PER_CHUNK = (VEC * sizeof(T) < 16 ? VEC * sizeof(T) : 16) / sizeof(T);
  static constexpr int CHUNK_BYTES = PER_CHUNK * sizeof(T);
  static constexpr int CHUNKS_PER_ROW = DHP / PER_CHUNK;
  static constexpr int TOTAL = BT * Q * CHUNKS_PER_ROW;
  static constexpr int K = (TOTAL + THREADS - 1) / THREADS;

  const T* src[K];    // at step 0
  unsigned dst[K];    // shared address in slot 0
  bool live[K];
  size_t step_stride;

  // row(c, q): where row q of sequence c starts at step 0 (only called for c < B - batch0)
  template <class Row>
  __device__ RingCopier(const Ring& ring, Row row, int valid_sequences, int DH, size_t step_stride_)
      : step_stride(step_stride_) {
#pragma unroll
    for (int k = 0; k < K; ++k) {
      const int idx = threadIdx.x + k * THREADS;
      const int chunk = idx % CHUNKS_PER_ROW, r = idx / CHUNKS_PER_ROW;
      const int c = r / Q, q = r % Q, col = chunk * PER_CHUNK;
      live[k] = idx < TOTAL && c < valid_sequences && col < DH;
      src[k] = live[k] ? row(c, q) + col : nullptr;
      dst[k] = shared_address(ring.base + c * Ring::C_STRIDE + q * Ring::Q_STRIDE + col);
    }
  }

  // start copying step `step` into ring slot `slot`
  __device__ void fill(int slot, long long step) const {
#pragma unroll
    for (int k = 0; k < K; ++k) {
      if (!live[k]) continue;
      const T* from = src[k] + step * (long long)step_stride;
      const unsigned to = dst[k] + slot * Ring::SLOT * sizeof(T);
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

}  // namespace fusedrnn
