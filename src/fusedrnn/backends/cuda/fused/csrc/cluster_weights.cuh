// R of a head split over a cluster, held partly in registers: one CTA's rows of
// R are too large for its shared memory at DH = 768 (288 KiB in bf16 at 16
// CTAs), so each warp keeps the first REG_TILES of its K tiles, for every gate,
// as mma A fragments in registers (loaded once from global memory) and reads
// the rest by ldmatrix from shared memory, where a compact [G * ROWS][LDS]
// layout stores only the tiles not in registers: K slice ks keeps its tiles
// REG_TILES .. K_TILES_PER_WARP - 1 side by side at column ks * SHARED_TILES * 16.
// With REG_TILES = 0 the layout is the full [G * ROWS][LDR] one (what the
// fp32 FMA product of recurrent_product.cuh reads).
#pragma once
#include "layout.cuh"

namespace fusedrnn {

template <class L, class T, int REG_TILES_>
struct SplitWeights {
  static constexpr int REG_TILES = REG_TILES_;                          // a warp's K tiles in registers
  static constexpr int SHARED_TILES = L::K_TILES_PER_WARP - REG_TILES;  // a warp's K tiles in shared memory
  static constexpr int LDS = SHARED_TILES ? L::KSPLIT * SHARED_TILES * 16 + L::PAD : 0;
  static constexpr int ELEMS = L::G * L::ROWS * LDS;
  static_assert(REG_TILES >= 0 && SHARED_TILES >= 0, "REG_TILES within a warp's K tiles");
  static_assert(Storage<T>::tensor_cores || (REG_TILES == 0 && LDS == L::LDR), "fp32 reads all of R from shared");

  unsigned held[REG_TILES ? L::G : 1][REG_TILES ? REG_TILES : 1][4];
  const T* Rs;
  unsigned shared_row;  // shared address of this lane's ldmatrix row in the warp's first shared tile of gate 0

  // the register fragments of this warp (rows of this CTA starting at row0), straight from R [G, NH, ldr, ldr]
  // (ldr: DH, or DH + 1 zero-padded by the host where DH is odd, so every pair of columns is one aligned word)
  __device__ SplitWeights(const T* Rs_, const L& at, const T* __restrict__ R, int ldr, int n, int NH, int DH,
                          int row0)
      : Rs(Rs_),
        shared_row(shared_address(Rs_ + (at.row_block * 16 + (at.lane & 15)) * LDS + at.k_split * SHARED_TILES * 16 +
                                  (at.lane >> 4) * 8)) {
    if constexpr (REG_TILES > 0) {
#pragma unroll
      for (int g = 0; g < L::G; ++g)
#pragma unroll
        for (int kt = 0; kt < REG_TILES; ++kt)
#pragma unroll
          for (int q = 0; q < 4; ++q) {  // the mma A layout: q = 1, 3 rows + 8; q = 2, 3 columns + 8
            const int i = row0 + at.row_block * 16 + at.lane / 4 + (q & 1) * 8;
            const int k = (at.k_tile0 + kt) * 16 + 2 * (at.lane % 4) + (q >> 1) * 8;  // even
            const T* pair = R + ((size_t(g) * NH + n) * ldr + i) * ldr + k;
            // columns k, k + 1 in the lower and upper half, as ldmatrix gives them
            held[g][kt][q] = i < DH && k < DH ? *reinterpret_cast<const unsigned*>(pair) : 0u;
          }
    }
  }

  // fragment (gate G, K tile KT of this warp): from registers, or by ldmatrix at a fixed distance
  // from this lane's row of the first shared tile (an immediate of the instruction: one address register)
  template <int G, int KT>
  __device__ __forceinline__ void get(unsigned (&a)[4]) const {
    if constexpr (KT < REG_TILES) {
#pragma unroll
      for (int q = 0; q < 4; ++q) a[q] = held[G][KT][q];
    } else {
      load_matrix_x4_at<(G * L::ROWS * LDS + (KT - REG_TILES) * 16) * int(sizeof(T))>(a, shared_row);
    }
  }
};

// acc[g] += R[g] h on tensor cores over the warp's K tiles KT .. KT_END - 1 (KT_END short of all of
// them only in a timing probe): h_row is the shared address of this lane's ldmatrix row of h (the
// warp's first column and K tile of the [BT][LDH] tile). Every fragment is read at a constant distance
// from it or from the weights' one address (the tile indices are template arguments, the distances
// immediates of the instructions), so the product keeps two addresses however many tiles it reads.
template <class L, class T, int KT, int J = 0>
__device__ __forceinline__ void load_h_fragments(unsigned (&b)[L::NT][2], unsigned h_row) {
  if constexpr (J < L::NT) {
    load_matrix_x2_at<(J * 8 * L::LDH + KT * 16) * int(sizeof(T))>(b[J][0], b[J][1], h_row);
    load_h_fragments<L, T, KT, J + 1>(b, h_row);
  }
}

template <class L, class T, int KT, int G = 0, class W>
__device__ __forceinline__ void multiply_gates(float (&acc)[4][L::NT][4], const W& weights,
                                               const unsigned (&b)[L::NT][2]) {
  if constexpr (G < L::G) {
    unsigned a[4];
    weights.template get<G, KT>(a);
#pragma unroll
    for (int j = 0; j < L::NT; ++j) Storage<T>::mma(acc[G][j], a, b[j][0], b[j][1]);
    multiply_gates<L, T, KT, G + 1>(acc, weights, b);
  }
}

struct NoWait {
  __device__ void operator()(int) const {}
};

// wait(slice) is called before the first K tile of each slice of ROWS units of h (the slice one CTA
// of the cluster sends), counted from the warp's first K tile: the product can start on the slices
// that have come while others are still on their way.
template <class L, class T, int KT_END, int KT = 0, class W, class Wait = NoWait>
__device__ __forceinline__ void split_recurrent_product(float (&acc)[4][L::NT][4], const W& weights, unsigned h_row,
                                                        const Wait& wait = {}) {
  if constexpr (KT < KT_END) {
    if constexpr (KT % (L::ROWS / 16) == 0) wait(KT / (L::ROWS / 16));
    unsigned b[L::NT][2];
    load_h_fragments<L, T, KT>(b, h_row);
    multiply_gates<L, T, KT>(acc, weights, b);
    split_recurrent_product<L, T, KT_END, KT + 1>(acc, weights, h_row, wait);
  }
}

// The shared-memory part of SplitWeights: rows row0 .. row0 + ROWS of each gate of head n, zero-padded
template <class L, class W, class T>
__device__ void load_shared_weights(T* Rs, const T* __restrict__ R, int ldr, int n, int NH, int DH, int row0) {
  if constexpr (W::SHARED_TILES > 0) {
    constexpr int SLICE = W::SHARED_TILES * 16, COLUMNS = L::KSPLIT * SLICE, V = 16 / sizeof(T);
    // 16 bytes a thread where rows allow: a one-step call is mostly this load (768x1 took 115 us
    // a step loading 2 bytes at a time)
    const int per = DH % V == 0 && ldr % V == 0 && reinterpret_cast<size_t>(R) % 16 == 0 ? V : 1;
    for (int idx = threadIdx.x; idx < L::G * L::ROWS * COLUMNS / per; idx += L::THREADS) {
      const int row = idx * per / COLUMNS, column = idx * per % COLUMNS;
      const int k = (column / SLICE * L::K_TILES_PER_WARP + W::REG_TILES) * 16 + column % SLICE;
      const int g = row / L::ROWS, i = row0 + row % L::ROWS;
      const T* from = R + ((size_t(g) * NH + n) * ldr + i) * ldr + k;
      if (per == V) {  // k and DH are multiples of V: the chunk lies wholly inside or past DH
        uint4 v = make_uint4(0, 0, 0, 0);
        if (i < DH && k < DH) v = *reinterpret_cast<const uint4*>(from);
        *reinterpret_cast<uint4*>(Rs + row * W::LDS + column) = v;
      } else {
        Rs[row * W::LDS + column] = i < DH && k < DH ? *from : Storage<T>::store(0.0f);
      }
    }
  }
}

}  // namespace fusedrnn
