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

__device__ __forceinline__ void copy_async(void* dst, const void* src, int bytes) {
  const unsigned to = shared_address(dst);
  switch (bytes) {  // uniform across the kernel: one branch, predictable
    case 16: asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(to), "l"(src)); break;
    case 8: asm volatile("cp.async.ca.shared.global [%0], [%1], 8;" ::"r"(to), "l"(src)); break;
    case 4: asm volatile("cp.async.ca.shared.global [%0], [%1], 4;" ::"r"(to), "l"(src)); break;
    default: *static_cast<unsigned short*>(dst) = *static_cast<const unsigned short*>(src);  // odd half rows
  }
}

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

  // Start copying step `step`'s rows: row (c, q) of DH elements from source(c, q),
  // for the CTA's sequences c with batch0 + c < B. Rows start at multiples of
  // DH elements, so the largest chunk dividing a row is aligned too.
  template <class Source>
  __device__ void fill(int step, Source source, int batch0, int B, int DH, int threads) const {
    T* dst = base + (step % DEPTH) * SLOT;
    const int row_bytes = DH * int(sizeof(T));
    const int chunk_bytes = row_bytes % 16 == 0 ? 16 : row_bytes % 8 == 0 ? 8 : row_bytes % 4 == 0 ? 4 : 2;
    const int per_chunk = chunk_bytes / int(sizeof(T));
    const int chunks = DH / per_chunk;
    const int valid_rows = min(BT, B - batch0) * Q;
    for (int idx = threadIdx.x; idx < valid_rows * chunks; idx += threads) {
      const int row = idx / chunks, k = (idx % chunks) * per_chunk;
      const int c = row / Q, q = row % Q;
      copy_async(dst + c * C_STRIDE + q * Q_STRIDE + k, source(c, q) + k, chunk_bytes);
    }
  }

  __device__ void zero(int threads) const {
    for (int idx = threadIdx.x; idx < ELEMS; idx += threads) base[idx] = Storage<T>::store(0.0f);
  }
};

}  // namespace fusedrnn
