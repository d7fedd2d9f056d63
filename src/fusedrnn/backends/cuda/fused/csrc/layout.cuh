// Where things live: the shared-memory tiles of one CTA and the elements each
// thread owns. A warp owns a 16-row block of every gate and NT batch columns
// of 8; its thread holds, per gate and column tile, the 4 accumulator slots of
// an m16n8 tensor-core tile: rows lane/4 and lane/4 + 8, columns 2*(lane%4)
// and one more. All gates of an element land in the same thread, so the
// cell's pointwise step needs no exchange.
//
// A head too large for one SM is split over CTAs (grid_forward.cuh, cluster_forward.cuh): each
// holds ROWS of the DHP rows of every gate, and its warps may also split the
// K dimension (KSPLIT), summing their partial products through shared memory.
#pragma once
#include "storage.cuh"

namespace fusedrnn {

template <class T, int DHP_, int G_, int NT_, int WN_, int ROWS_ = DHP_, int KSPLIT_ = 1>
struct Layout {
  static constexpr int DHP = DHP_;                    // the head dim, padded to whole 16-row blocks
  static constexpr int G = G_;                        // recurrent gates
  static constexpr int NT = NT_;                      // column tiles of 8 per warp
  static constexpr int WN = WN_;                      // warps side by side along the batch
  static constexpr int ROWS = ROWS_;                  // rows of each gate this CTA computes
  static constexpr int KSPLIT = KSPLIT_;              // warps side by side along K
  static constexpr int ROW_BLOCKS = ROWS / 16;
  static constexpr int WARPS = ROW_BLOCKS * WN * KSPLIT;
  static constexpr int THREADS = 32 * WARPS;
  static constexpr int BT = 8 * NT * WN;              // sequences per CTA
  static constexpr int K_TILES = DHP / 16;
  static constexpr int K_TILES_PER_WARP = K_TILES / KSPLIT;
  static constexpr int PAD = 16 / sizeof(T);          // 16 bytes a row: conflict-free ldmatrix
  static constexpr int LDR = DHP + PAD;               // R rows: [G * ROWS][LDR]
  static constexpr int LDH = DHP + PAD;               // h rows: [BT][LDH]
  static constexpr int LDD = G * ROWS + PAD;          // drec rows: [BT][LDD]
  static constexpr int R_ELEMS = G * ROWS * LDR;
  static constexpr int H_ELEMS = BT * LDH;
  static constexpr int D_ELEMS = BT * LDD;
  static constexpr int K_SLICE_FLOATS = ROW_BLOCKS * 4 * NT * 4 * 32;  // one K slice's partial products (elements.cuh)
  static constexpr int PARTIAL_FLOATS = (KSPLIT - 1) * K_SLICE_FLOATS;  // those of the slices but the first

  int lane, row_block, col0, k_split, k_tile0;

  __device__ Layout() {
    const int warp = threadIdx.x / 32;
    lane = threadIdx.x % 32;
    row_block = warp % ROW_BLOCKS;
    col0 = warp / ROW_BLOCKS % WN * NT * 8;
    k_split = warp / (ROW_BLOCKS * WN);
    k_tile0 = k_split * K_TILES_PER_WARP;
  }
  // element e (0..3) of column tile j
  __device__ int row(int e) const { return row_block * 16 + lane / 4 + (e >= 2 ? 8 : 0); }
  __device__ int col(int j, int e) const { return col0 + j * 8 + 2 * (lane % 4) + (e & 1); }
};

// Rows row0 .. row0 + ROWS of each gate of R of head n into shared memory as
// [g * ROWS + i][k], zero-padded; once per kernel. Latency-bound: a decoding
// step (T = 1) is mostly this load, so where the rows allow (DH a multiple of
// 16 bytes, R 16-byte aligned) it moves 16 bytes a thread with several loads
// in flight (a 64x12 step measured 29 us on the H100 with 2-byte loads).
template <class L, class T>
__device__ void load_recurrent_weights(T* Rs, const T* __restrict__ R, int n, int NH, int DH, int row0 = 0) {
  constexpr int V = 16 / sizeof(T);
  if (DH % V == 0 && reinterpret_cast<size_t>(R) % 16 == 0) {
    constexpr int CHUNKS = L::DHP / V;  // of a row; L::LDR is a multiple of V too
#pragma unroll 8
    for (int idx = threadIdx.x; idx < L::G * L::ROWS * CHUNKS; idx += L::THREADS) {
      const int k = idx % CHUNKS * V, row = idx / CHUNKS;
      const int g = row / L::ROWS, i = row0 + row % L::ROWS;
      uint4 v = make_uint4(0, 0, 0, 0);
      if (i < DH && k < DH) v = *reinterpret_cast<const uint4*>(R + ((size_t(g) * NH + n) * DH + i) * DH + k);
      *reinterpret_cast<uint4*>(Rs + row * L::LDR + k) = v;
    }
    return;
  }
  for (int idx = threadIdx.x; idx < L::G * L::ROWS * L::DHP; idx += L::THREADS) {
    const int k = idx % L::DHP, row = idx / L::DHP;
    const int g = row / L::ROWS, i = row0 + row % L::ROWS;
    T v = Storage<T>::store(0.0f);
    if (i < DH && k < DH) v = R[((size_t(g) * NH + n) * DH + i) * DH + k];
    Rs[row * L::LDR + k] = v;
  }
}

// h of the CTA's sequences into a [BT][LDH] tile: from `src` laid out as
// [B, *, NH, DH] with `batch_stride` elements between sequences; zeros past B and DH.
template <class L, class T>
__device__ void load_h_tile(T* hs, const T* __restrict__ src, size_t batch_stride, int batch0, int B, int DH) {
  for (int idx = threadIdx.x; idx < L::BT * L::DHP; idx += L::THREADS) {
    const int k = idx % L::DHP, c = idx / L::DHP;
    T v = Storage<T>::store(0.0f);
    if (batch0 + c < B && k < DH) v = src[size_t(batch0 + c) * batch_stride + k];
    hs[c * L::LDH + k] = v;
  }
}

}  // namespace fusedrnn
