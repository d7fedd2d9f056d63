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

  // the register fragments of this warp (rows of this CTA starting at row0), straight from R [G, NH, ldr, ldr]
  // (ldr: DH, or DH + 1 zero-padded by the host where DH is odd, so every pair of columns is one aligned word)
  __device__ SplitWeights(const T* Rs_, const L& at, const T* __restrict__ R, int ldr, int n, int NH, int DH,
                          int row0)
      : Rs(Rs_) {
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

  __device__ void get(unsigned (&a)[4], const L& at, int g, int kt) const {
    if (kt < REG_TILES) {  // kt is a constant in the unrolled product: no run-time branch
#pragma unroll
      for (int q = 0; q < 4; ++q) a[q] = held[REG_TILES ? g : 0][kt < REG_TILES ? kt : 0][q];
    } else {
      const int column = (at.k_split * SHARED_TILES + kt - REG_TILES) * 16 + (at.lane >> 4) * 8;
      load_matrix_x4<false>(a, Rs + (g * L::ROWS + at.row_block * 16 + (at.lane & 15)) * LDS + column);
    }
  }
};

// The shared-memory part of SplitWeights: rows row0 .. row0 + ROWS of each gate of head n, zero-padded
template <class L, class W, class T>
__device__ void load_shared_weights(T* Rs, const T* __restrict__ R, int ldr, int n, int NH, int DH, int row0) {
  if constexpr (W::SHARED_TILES > 0) {
    constexpr int SLICE = W::SHARED_TILES * 16, COLUMNS = L::KSPLIT * SLICE;
    for (int idx = threadIdx.x; idx < L::G * L::ROWS * COLUMNS; idx += L::THREADS) {
      const int row = idx / COLUMNS, column = idx % COLUMNS;
      const int k = (column / SLICE * L::K_TILES_PER_WARP + W::REG_TILES) * 16 + column % SLICE;
      const int g = row / L::ROWS, i = row0 + row % L::ROWS;
      T v = Storage<T>::store(0.0f);
      if (i < DH && k < DH) v = R[((size_t(g) * NH + n) * ldr + i) * ldr + k];
      Rs[row * W::LDS + column] = v;
    }
  }
}

}  // namespace fusedrnn
