// R^T of a head split over a cluster, for the backward's product dh = sum_g R[g]^T drec[g]
// (cluster_backward.cuh). CTA `rank` owns units row0 .. row0 + ROWS: it computes drec for them
// and multiplies by its rows of R, transposed, for every unit of the head, a partial sum of dh
// that goes to the unit's owner. The product's K runs over the CTA's (gate, unit) pairs,
// kappa = g * ROWS + i (K_TILES tiles of 16), its M over the head's units (M_TILES blocks of
// 16), split between the warps: warp w computes blocks w * MT_PER_WARP ... (+ MT_PER_WARP).
//
// Each warp keeps its first REG_MT blocks, all K tiles of each, as mma A fragments in registers
// (loaded once, through shared memory), and reads the rest by ldmatrix.trans from shared memory,
// where Rs [G * ROWS][LDS] holds, row kappa, column (warp * SHARED_MT + block) * 16 + u, the
// element R[g][row0 + i][unit u of that block]: only the blocks not in registers.
#pragma once
#include "cluster.cuh"

namespace fusedrnn {

template <class T, int DHP, int ROWS, int G, int WARPS, int REG_MT_>
struct TransposedWeights {
  static constexpr int M_TILES = DHP / 16;
  static constexpr int MT_PER_WARP = M_TILES / WARPS;
  static constexpr int K_TILES = G * ROWS / 16;
  static constexpr int REG_MT = REG_MT_;
  static constexpr int SHARED_MT = MT_PER_WARP - REG_MT;
  static constexpr int PAD = 16 / sizeof(T);  // rows an odd number of 16 bytes apart: conflict-free ldmatrix
  static constexpr int LDS = SHARED_MT ? WARPS * SHARED_MT * 16 + PAD : 0;
  static constexpr int ELEMS = G * ROWS * LDS;
  static_assert(M_TILES % WARPS == 0 && ROWS % 16 == 0, "whole blocks of 16 units a warp");
  static_assert(REG_MT >= 0 && SHARED_MT >= 0, "REG_MT within a warp's blocks");

  unsigned held[REG_MT ? REG_MT : 1][REG_MT ? K_TILES : 1][4];
  unsigned shared_row;  // this lane's ldmatrix row of the warp's first shared block, K tile 0

  // The fragments of the warp's register blocks: block mm of every warp staged, as the shared
  // blocks are kept, in `stage` ([G * ROWS][STAGE_LD], free shared memory), then ldmatrix'd
  // (loading them from global memory one element at a time took more registers than the loop).
  static constexpr int STAGE_LD = WARPS * 16 + PAD;
  static constexpr int STAGE_ELEMS = REG_MT ? G * ROWS * STAGE_LD : 0;

  __device__ TransposedWeights(const T* Rs, T* stage, const T* __restrict__ R, int warp, int lane, int n, int NH,
                               int DH, int row0)
      : shared_row(shared_address(Rs + ((lane & 7) + (lane >> 4) * 8) * LDS + warp * SHARED_MT * 16 +
                                  ((lane >> 3) & 1) * 8)) {
    const T* stage_row = stage + ((lane & 7) + (lane >> 4) * 8) * STAGE_LD + warp * 16 + ((lane >> 3) & 1) * 8;
#pragma unroll
    for (int mm = 0; mm < REG_MT; ++mm) {
      copy_columns<STAGE_LD>(stage, R, n, NH, DH, row0, WARPS * 16,
                              [=](int column) { return (column / 16 * MT_PER_WARP + mm) * 16 + column % 16; });
      __syncthreads();
#pragma unroll
      for (int kt = 0; kt < K_TILES; ++kt) load_matrix_x4<true>(held[mm][kt], stage_row + kt * 16 * STAGE_LD);
      __syncthreads();
    }
  }

  // columns [0, COLUMNS) of `to` ([G * ROWS][LD]): row kappa = g * ROWS + i, column holding unit
  // unit_of(column) of R[g][row0 + i]; 16 bytes a thread where rows allow, zeros past DH
  template <int LD, class UnitOf>
  __device__ static void copy_columns(T* to, const T* __restrict__ R, int n, int NH, int DH, int row0, int COLUMNS,
                                      UnitOf unit_of) {
    constexpr int V = 16 / sizeof(T);
    const bool wide = DH % V == 0 && reinterpret_cast<size_t>(R) % 16 == 0;
    for (int idx = threadIdx.x; idx < K_TILES * 16 * (COLUMNS / V); idx += 32 * WARPS) {
      const int kappa = idx / (COLUMNS / V), column = idx % (COLUMNS / V) * V;
      const int g = kappa / ROWS, i = row0 + kappa % ROWS, u = unit_of(column);  // V consecutive units from u
      const T* from = R + ((size_t(g) * NH + n) * DH + i) * DH + u;
      T* at = to + kappa * LD + column;
      if (wide) {
        uint4 v = make_uint4(0, 0, 0, 0);
        if (i < DH && u < DH) v = *reinterpret_cast<const uint4*>(from);
        *reinterpret_cast<uint4*>(at) = v;
      } else {
#pragma unroll
        for (int e = 0; e < V; ++e) at[e] = i < DH && u + e < DH ? from[e] : Storage<T>::store(0.0f);
      }
    }
  }

  // the shared blocks into Rs
  __device__ static void load_shared(T* Rs, const T* __restrict__ R, int n, int NH, int DH, int row0) {
    if constexpr (SHARED_MT > 0)
      copy_columns<LDS>(Rs, R, n, NH, DH, row0, WARPS * SHARED_MT * 16, [](int column) {
        const int block = column / 16;
        return (block / SHARED_MT * MT_PER_WARP + REG_MT + block % SHARED_MT) * 16 + column % 16;
      });
  }

  template <int MM, int KT>
  __device__ __forceinline__ void get(unsigned (&a)[4]) const {
    if constexpr (MM < REG_MT) {
#pragma unroll
      for (int q = 0; q < 4; ++q) a[q] = held[MM][KT][q];
    } else {
      // matrix m of the fragment: R rows kappa + 8 (m >> 1), units + 8 (m & 1), transposed
      load_matrix_x4_at<(KT * 16 * LDS + (MM - REG_MT) * 16) * int(sizeof(T)), true>(a, shared_row);
    }
  }
};

// acc[mm] += (the warp's block mm of R^T) drec over all K tiles, K tile outermost: MT_PER_WARP
// independent chains of mma (a block at a time made one chain of K_TILES dependent mma: the
// backward's warps then stalled mostly on mma latency, Nsight Compute). d_row: this lane's
// ldmatrix row of the [8][LDD] drec tile.
template <class W, class T, int KT, int MM = 0>
__device__ __forceinline__ void multiply_blocks(float (&acc)[W::MT_PER_WARP][4], const W& weights, unsigned b0,
                                                unsigned b1) {
  if constexpr (MM < W::MT_PER_WARP) {
    unsigned a[4];
    weights.template get<MM, KT>(a);
    Storage<T>::mma(acc[MM], a, b0, b1);
    multiply_blocks<W, T, KT, MM + 1>(acc, weights, b0, b1);
  }
}

template <class W, class T, int KT = 0>
__device__ __forceinline__ void transposed_blocks(float (&acc)[W::MT_PER_WARP][4], const W& weights, unsigned d_row) {
  if constexpr (KT < W::K_TILES) {
    unsigned b0, b1;
    load_matrix_x2_at<KT * 16 * int(sizeof(T))>(b0, b1, d_row);
    multiply_blocks<W, T, KT>(acc, weights, b0, b1);
    transposed_blocks<W, T, KT + 1>(acc, weights, d_row);
  }
}

// The warp's blocks of R^T drec, each to the CTA owning its units: into slot `rank` of that CTA's
// inbox [PARTS][ROWS][BT] (at `inbox`, the same offset in every CTA), by st.async counted by its
// mbarrier `bar`, or by a plain store where the owner is this CTA. Lanes 2l and 2l + 1 swap half
// their accumulators first, so each lane holds 4 sequences of one unit: one 16-byte store.
template <class W, class T, int ROWS, int PARTS, int BT>
__device__ __forceinline__ void send_transposed_product(const W& weights, unsigned d_row, float* inbox, unsigned bar,
                                                        int rank, int warp, int lane) {
  static_assert(BT == 8, "a block's sums are 16 units x 8 sequences");
  float acc[W::MT_PER_WARP][4] = {};
  transposed_blocks<W, T>(acc, weights, d_row);
  const bool odd = lane & 1;
#pragma unroll
  for (int mm = 0; mm < W::MT_PER_WARP; ++mm) {
    // accumulator e: unit lane / 4 (+ 8 for e >= 2), sequence 2 (lane % 4) (+ 1 for odd e)
    const float s0 = __shfl_xor_sync(0xffffffffu, odd ? acc[mm][0] : acc[mm][2], 1);
    const float s1 = __shfl_xor_sync(0xffffffffu, odd ? acc[mm][1] : acc[mm][3], 1);
    const uint4 v = odd ? make_uint4(__float_as_uint(s0), __float_as_uint(s1), __float_as_uint(acc[mm][2]),
                                     __float_as_uint(acc[mm][3]))
                        : make_uint4(__float_as_uint(acc[mm][0]), __float_as_uint(acc[mm][1]), __float_as_uint(s0),
                                     __float_as_uint(s1));
    const int unit = (warp * W::MT_PER_WARP + mm) * 16 + lane / 4 + (odd ? 8 : 0);
    const int owner = unit / ROWS;  // the same for the whole block: ROWS is a multiple of 16
    float* at = inbox + (rank * ROWS + unit % ROWS) * BT + (lane & 2) * 2;
    if (owner == rank) {
      *reinterpret_cast<uint4*>(at) = v;
    } else {
      store_async_to_rank(shared_address(at), bar, owner, v);
    }
  }
}

}  // namespace fusedrnn
