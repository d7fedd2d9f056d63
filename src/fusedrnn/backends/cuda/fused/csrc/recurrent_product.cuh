// The two matrix products of a step, for one warp's tile of the layout:
//   recurrent_product:   acc[g] += R[g] h        (forward, and the backward's recompute)
//   transposed_product:  acc    += sum_g R[g]^T d (the gradient's way back to h)
// Half types run on tensor cores (mma.sync m16n8k16, fp32 accumulate; fragments
// from shared memory by ldmatrix); fp32 runs on FMA units, to match torch's fp32.
#pragma once
#include "layout.cuh"

namespace fusedrnn {

// The A fragments of R a warp multiplies every step: loaded once into registers
// when IN_REGISTERS (they cost 4 * G * K_TILES registers), else from shared memory each time.
template <class L, class T, bool IN_REGISTERS>
struct WeightFragments {
  unsigned held[IN_REGISTERS ? L::G : 1][IN_REGISTERS ? L::K_TILES_PER_WARP : 1][4];
  const T* Rs;

  __device__ void load(unsigned (&a)[4], const L& at, int g, int kt) const {
    const T* row = Rs + (g * L::ROWS + at.row_block * 16 + (at.lane & 15)) * L::LDR + (at.k_tile0 + kt) * 16 +
                   (at.lane >> 4) * 8;
    load_matrix_x4<false>(a, row);
  }

  __device__ WeightFragments(const T* Rs_, const L& at) : Rs(Rs_) {
    if constexpr (IN_REGISTERS) {
#pragma unroll
      for (int g = 0; g < L::G; ++g)
#pragma unroll
        for (int kt = 0; kt < L::K_TILES_PER_WARP; ++kt) load(held[g][kt], at, g, kt);
    }
  }

  __device__ void get(unsigned (&a)[4], const L& at, int g, int kt) const {
    if constexpr (IN_REGISTERS) {
#pragma unroll
      for (int q = 0; q < 4; ++q) a[q] = held[g][kt][q];
    } else {
      load(a, at, g, kt);
    }
  }
};

// over this warp's K tiles (all of them unless the CTA splits K); kt counts from k_tile0. KT_END
// stops the tensor-core product early (a timing probe of the cluster kernel; never in a result)
template <class L, int KT_END = L::K_TILES_PER_WARP, class T, class W>
__device__ __forceinline__ void recurrent_product(float (&acc)[4][L::NT][4], const W& weights, const T* hs,
                                                  const L& at) {
  if constexpr (Storage<T>::tensor_cores) {
#pragma unroll
    for (int kt = 0; kt < KT_END; ++kt) {
      unsigned b[L::NT][2];
#pragma unroll
      for (int j = 0; j < L::NT; ++j)
        load_matrix_x2(b[j][0], b[j][1], hs + (at.col0 + j * 8 + (at.lane & 7)) * L::LDH + (at.k_tile0 + kt) * 16 +
                                             ((at.lane >> 3) & 1) * 8);
#pragma unroll
      for (int g = 0; g < L::G; ++g) {
        unsigned a[4];
        weights.get(a, at, g, kt);
#pragma unroll
        for (int j = 0; j < L::NT; ++j) Storage<T>::mma(acc[g][j], a, b[j][0], b[j][1]);
      }
    }
  } else {
    const T* Rs = weights.Rs;
#pragma unroll 4
    for (int k = at.k_tile0 * 16; k < (at.k_tile0 + L::K_TILES_PER_WARP) * 16; k += 4) {
      float4 h[L::NT][2];
#pragma unroll
      for (int j = 0; j < L::NT; ++j)
#pragma unroll
        for (int e = 0; e < 2; ++e) h[j][e] = *reinterpret_cast<const float4*>(hs + at.col(j, e) * L::LDH + k);
#pragma unroll
      for (int g = 0; g < L::G; ++g) {
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          const float4 r = *reinterpret_cast<const float4*>(Rs + (g * L::ROWS + at.row(2 * half)) * L::LDR + k);
#pragma unroll
          for (int j = 0; j < L::NT; ++j)
#pragma unroll
            for (int e = 0; e < 2; ++e)
              acc[g][j][2 * half + e] += r.x * h[j][e].x + r.y * h[j][e].y + r.z * h[j][e].z + r.w * h[j][e].w;
        }
      }
    }
  }
}

// acc[j][e] += sum over gates g and the CTA's units i of R[g][i][u] * d[col][g * ROWS + i], for the
// output units u of 16-row block `out_block` (the warp's own row block when R is whole in the CTA;
// any block of the head when a split CTA sends its partial sums of R^T drec to the others)
template <class L, class T>
__device__ __forceinline__ void transposed_product(float (&acc)[L::NT][4], const T* Rs, const T* ds, const L& at,
                                                   int out_block) {
  constexpr int I_TILES = L::ROWS / 16;
  if constexpr (Storage<T>::tensor_cores) {
    const int matrix = at.lane >> 3, r = at.lane & 7;
    float part[L::G][L::NT][4] = {};  // one accumulator a gate: G short chains of mma, not one long one
#pragma unroll
    for (int it = 0; it < I_TILES; ++it) {
#pragma unroll
      for (int g = 0; g < L::G; ++g) {
        const int kt = g * I_TILES + it;
        unsigned a[4];
        // matrix m of the fragment is R's block (units it*16 + 8*(m>>1), columns out_block*16 + 8*(m&1)), transposed
        load_matrix_x4<true>(a, Rs + (g * L::ROWS + it * 16 + r + (matrix >> 1) * 8) * L::LDR + out_block * 16 +
                                    (matrix & 1) * 8);
#pragma unroll
        for (int j = 0; j < L::NT; ++j) {
          unsigned b0, b1;
          load_matrix_x2(b0, b1, ds + (at.col0 + j * 8 + r) * L::LDD + kt * 16 + (matrix & 1) * 8);
          Storage<T>::mma(part[g][j], a, b0, b1);
        }
      }
    }
#pragma unroll
    for (int g = 0; g < L::G; ++g)
#pragma unroll
      for (int j = 0; j < L::NT; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[j][e] += part[g][j][e];
  } else {
#pragma unroll 4
    for (int k = 0; k < L::G * L::ROWS; k += 4) {
      float4 d[L::NT][2];
#pragma unroll
      for (int j = 0; j < L::NT; ++j)
#pragma unroll
        for (int e = 0; e < 2; ++e) d[j][e] = *reinterpret_cast<const float4*>(ds + at.col(j, e) * L::LDD + k);
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int u = out_block * 16 + at.lane / 4 + 8 * half;
        const float r0 = Rs[(k + 0) * L::LDR + u], r1 = Rs[(k + 1) * L::LDR + u];
        const float r2 = Rs[(k + 2) * L::LDR + u], r3 = Rs[(k + 3) * L::LDR + u];
#pragma unroll
        for (int j = 0; j < L::NT; ++j)
#pragma unroll
          for (int e = 0; e < 2; ++e)
            acc[j][2 * half + e] += r0 * d[j][e].x + r1 * d[j][e].y + r2 * d[j][e].z + r3 * d[j][e].w;
      }
    }
  }
}

}  // namespace fusedrnn
