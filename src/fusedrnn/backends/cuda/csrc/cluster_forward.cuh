// The forward for heads too large for one SM, split over the PARTS = DHP / ROWS
// CTAs of one thread-block cluster (sm_90): CTA `rank` computes rows
// rank * ROWS .. + ROWS of every gate, holding those rows of R partly in
// registers and partly in shared memory (cluster_weights.cuh), and keeps a
// whole copy of h in its shared memory, double-buffered. Per step t a CTA:
//   1. multiplies its rows of R by h_{t-1} (buffer t % 2; warps may split K and
//      sum their slices through shared memory),
//   2. runs the cell on its rows, writing its slice of h_t into its own buffer (t + 1) % 2,
//   3. after a __syncthreads, stores that slice into buffer (t + 1) % 2 of every
//      other CTA of the cluster (DSMEM, 16 bytes a store),
//   4. meets the cluster at one barrier (arrive.release / wait.acquire), which
//      publishes h_t to every CTA; y and the saved states are stored meanwhile.
// A buffer written at step t was last read at step t - 1, before the barrier
// that ended it, and is next read at step t + 1, after the barrier that ends
// step t: one barrier a step orders both. The last step's barrier also lets
// every CTA exit: nothing writes into another CTA's shared memory after it.
// Same tensors as forward.cuh, R with rows of ldr elements (DH, or DH + 1 padded where DH
// is odd); grid: (NH * PARTS, tiles), clusters of (PARTS, 1, 1).
//
// OPTIONS (a bit mask of ClusterOptions; the plan picks ASYNC_PUSH, with PER_SOURCE where all of
// R sits in registers, cluster.planned_options) builds other forms of the step: ASYNC_PUSH
// exchanges h with st.async stores that the receiving CTA's mbarriers count (no cluster barrier
// and no MEMBAR.ALL.GPU a step); the others are timing probes for scripts/cluster_variants.py,
// each leaving out one part of the step (their results are wrong).
#pragma once
#include "cluster.cuh"
#include "cluster_weights.cuh"
#include "elements.cuh"
#include "recurrent_product.cuh"
#include "ring.cuh"

namespace fusedrnn {

struct ClusterOptions {
  // h_t into the other CTAs by st.async, counted by an mbarrier a buffer in each receiver, which
  // waits for its (PARTS - 1) slices: one-way signals instead of the cluster barrier and its
  // release fence (MEMBAR.ALL.GPU on sm_90). Correct; 16 more bytes of shared memory (the barriers).
  static constexpr int ASYNC_PUSH = 1;
  // timing probes (wrong results):
  static constexpr int NO_PUSH = 2;              // no DSMEM stores of h
  static constexpr int RELAXED_ARRIVE = 4;       // barrier.cluster.arrive.relaxed: no fence (racy)
  static constexpr int REGISTER_TILES_ONLY = 8;  // the product over the register tiles of R only
  static constexpr int NO_PRODUCT = 16;          // no product at all
  static constexpr int NO_OUTPUT = 32;           // no y or saved states stored
  // with ASYNC_PUSH: an mbarrier for each sender (16 bytes each a buffer), so that a warp's product
  // starts on the slices of h that have come and waits for each of the others just before its first
  // K tile
  static constexpr int PER_SOURCE = 64;
};

template <class Cell, class T, int DHP, int ROWS, int KSPLIT, int NT, int DEPTH, int VEC, int REG_TILES, bool FAST,
          int OPTIONS = 0>
__global__ void __launch_bounds__(Layout<T, DHP, Cell::GR, NT, 1, ROWS, KSPLIT>::THREADS, 1)
    fused_cluster_forward_kernel(const T* __restrict__ x, const T* __restrict__ R, const T* __restrict__ bias,
                                 const T* __restrict__ states, const long long* __restrict__ lengths,
                                 T* __restrict__ y, T* __restrict__ final_states, float* __restrict__ saved,
                                 int ldr, int B, int steps, int NH, int DH) {
  using L = Layout<T, DHP, Cell::GR, NT, 1, ROWS, KSPLIT>;
  using W = SplitWeights<L, T, REG_TILES>;
  using XRing = StepRing<T, Cell::GX, ROWS, L::BT, DEPTH>;
  constexpr int PARTS = DHP / ROWS;
  constexpr bool ASYNC = OPTIONS & ClusterOptions::ASYNC_PUSH;
  constexpr unsigned SLICE_BYTES = L::BT * ROWS * sizeof(T);  // one CTA's h_t: (PARTS - 1) of them arrive a step
  constexpr bool PER_SOURCE = ASYNC && (OPTIONS & ClusterOptions::PER_SOURCE) && Storage<T>::tensor_cores;
  constexpr int BARRIERS = PER_SOURCE ? PARTS : 1;  // a buffer: one for all senders, or one a sender
  constexpr unsigned EXPECTED = PER_SOURCE ? SLICE_BYTES : (PARTS - 1) * SLICE_BYTES;  // bytes a phase
  static_assert(PARTS >= 2 && PARTS <= 16 && DHP % ROWS == 0, "a cluster of 2 to 16 CTAs");
  static_assert(L::K_TILES % KSPLIT == 0, "whole K tiles a warp");
  static_assert(!PER_SOURCE || L::K_TILES_PER_WARP % (ROWS / 16) == 0, "whole slices of h a warp");
  extern __shared__ __align__(16) unsigned char smem[];
  T* Rs = reinterpret_cast<T*>(smem);
  T* hs = Rs + W::ELEMS;  // [2][BT][LDH]: all of h_{t-1} in half t % 2
  const XRing xr{hs + 2 * L::H_ELEMS};
  float* partial = reinterpret_cast<float*>(xr.base + XRing::ELEMS);  // [KSPLIT-1][ROW_BLOCKS][G][NT][4][32]
  // ASYNC: after the partial sums, 2 x BARRIERS mbarriers; arrivals + (b * BARRIERS + s) * 8 counts the
  // stores of h into buffer b (from sender s with PER_SOURCE)
  const unsigned arrivals = shared_address(partial + (KSPLIT - 1) * L::ROW_BLOCKS * 4 * NT * 4 * 32);

  const int rank = cluster_rank(), n = blockIdx.x / PARTS, row0 = rank * ROWS, batch0 = blockIdx.y * L::BT;
  const L at;
  const bool owner = at.k_split == 0;  // the warps that run the cell on the CTA's rows
  const size_t head_stride = size_t(NH) * DH, state_stride = size_t(B) * head_stride;
  const int valid_sequences = min(L::BT, B - batch0);

  if constexpr (ASYNC) {
    if (threadIdx.x == 0) {  // all armed for their first use: h_0 into buffer 1, h_1 into buffer 0
      for (int k = 0; k < 2 * BARRIERS; ++k) mbarrier_init(arrivals + 8 * k, 1);
      fence_mbarrier_init();  // published to the cluster by the cluster_sync before the loop
      for (int k = 0; k < 2 * BARRIERS; ++k) mbarrier_arm(arrivals + 8 * k, EXPECTED);
    }
  }
  xr.zero(L::THREADS);
  load_shared_weights<L, W>(Rs, R, ldr, n, NH, DH, row0);
  load_h_tile<L>(hs, states + n * DH, head_stride, batch0, B, DH);  // h_0, all of it
  __syncthreads();  // the ring's zeros land before any copy into it
  const auto x_copier = make_copier<XRing, T, Cell::GX, ROWS, L::BT, VEC, L::THREADS>(
      xr, [=](int c, int g) { return x + (size_t(batch0 + c) * steps * Cell::GX + g) * head_stride + n * DH + row0; },
      valid_sequences, min(ROWS, DH - row0), Cell::GX * head_stride);
  for (int s = 0; s < DEPTH - 1; ++s) {
    if (s < steps) x_copier.fill(s % DEPTH, s);
    commit_copies();
  }
  const W weights(Rs, at, R, ldr, n, NH, DH, row0);

  const ThreadElements<L> el(at, owner, batch0, row0, n, B, NH, DH, steps, lengths);
  const auto& inside = el.inside;
  const auto& valid_steps = el.valid_steps;
  const auto& offset = el.offset;
  float s[4][L::NT][4] = {}, b[4][2] = {};
  el.template load<Cell::S>(s, states, state_stride);
  if (saved) el.template store<Cell::S, 1>(saved, s, state_stride);  // slot 0: the initial states 1..S-1
  load_biases<Cell::GB>(b, bias, at, row0, n, NH, DH);
  T* y_at[L::NT][4];  // this thread's elements of the current step in y
  output_pointers(y_at, y, at, batch0, row0, n, DH, steps, head_stride);
  // this lane's ldmatrix row of h in buffer 0 (the product's one address of h)
  const unsigned h_row =
      shared_address(hs + (at.col0 + (at.lane & 7)) * L::LDH + at.k_tile0 * 16 + ((at.lane >> 3) & 1) * 8);
  wait_copies<DEPTH - 2>();
  cluster_sync();  // every CTA of the cluster runs (its shared memory may be written) and has step 0's x

  for (int t = 0; t < steps; ++t) {
    if (t + DEPTH - 1 < steps) x_copier.fill((t + DEPTH - 1) % DEPTH, t + DEPTH - 1);
    commit_copies();
    T* h_next = hs + ((t + 1) % 2) * L::H_ELEMS;
    float acc[4][L::NT][4] = {};
    constexpr int KT_END = OPTIONS & ClusterOptions::NO_PRODUCT           ? 0
                           : OPTIONS & ClusterOptions::REGISTER_TILES_ONLY ? REG_TILES
                                                                           : L::K_TILES_PER_WARP;
    if constexpr (PER_SOURCE) {  // (tensor cores only: the FMA product reads h all at once)
      // h_{t-1} (buffer t % 2) from sender `source` before its K tiles; the warps of the first row
      // block re-arm each barrier for h_{t+1} once they have seen it complete
      const auto wait = [&](int slice) {
        const int source = at.k_tile0 / (ROWS / 16) + slice;
        if (t == 0 || source == rank) return;
        const unsigned bar = arrivals + ((t % 2) * BARRIERS + source) * 8;
        mbarrier_wait(bar, ((t - 1) >> 1) & 1);
        if (at.row_block == 0 && at.lane == 0 && t + 2 < steps) mbarrier_arm(bar, EXPECTED);
      };
      split_recurrent_product<L, T, KT_END>(acc, weights, h_row + (t % 2) * unsigned(L::H_ELEMS * sizeof(T)), wait);
    } else if constexpr (Storage<T>::tensor_cores) {
      split_recurrent_product<L, T, KT_END>(acc, weights, h_row + (t % 2) * unsigned(L::H_ELEMS * sizeof(T)));
    } else if constexpr (KT_END > 0) {
      recurrent_product<L>(acc, weights, hs + (t % 2) * L::H_ELEMS, at);
    }
    add_k_slices<Cell::GR>(acc, partial, at);  // the other K slices into the owners' accumulators
    if (owner)
#pragma unroll
      for (int j = 0; j < L::NT; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int c = at.col(j, e), i = at.row(e);
          Gates next = {};
          cell_forward_at<Cell, FAST>(xr, acc, b, s, at, t, j, e, next);
          if (t < valid_steps[j][e])
#pragma unroll
            for (int k = 0; k < Cell::S; ++k) s[k][j][e] = next[k];
          // padding (units past DH, sequences past B) stays 0: the next product reads it
          h_next[c * L::LDH + row0 + i] = Storage<T>::store(inside[j][e] ? s[0][j][e] : 0.0f);
        }
    __syncthreads();  // the CTA's slice of h_t is complete
    const bool more = t + 1 < steps;  // ASYNC: the last h_t goes nowhere (no one waits for it)
    if constexpr (ASYNC) {
      if (more)
        broadcast_columns<T, ROWS, L::LDH, L::BT, PARTS, L::THREADS, true>(
            h_next, row0, rank, arrivals + ((t + 1) % 2 * BARRIERS + (PER_SOURCE ? rank : 0)) * 8);
    } else if constexpr (!(OPTIONS & ClusterOptions::NO_PUSH)) {
      broadcast_columns<T, ROWS, L::LDH, L::BT, PARTS, L::THREADS>(h_next, row0, rank);
    }
    wait_copies<DEPTH - 2>();  // the next step's x (this thread's share), published by the barrier
    if constexpr (OPTIONS & ClusterOptions::RELAXED_ARRIVE) {
      cluster_arrive_relaxed();
    } else if constexpr (!ASYNC) {
      cluster_arrive();
    }
    if (owner && !(OPTIONS & ClusterOptions::NO_OUTPUT))  // y and the saved states while the barrier completes
#pragma unroll
      for (int j = 0; j < L::NT; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          if (inside[j][e]) {
            *y_at[j][e] = t < valid_steps[j][e] ? Storage<T>::store(s[0][j][e]) : Storage<T>::store(0.0f);
            if (saved)
#pragma unroll
              for (int k = 1; k < Cell::S; ++k)
                saved[(size_t(t + 1) * (Cell::S - 1) + k - 1) * state_stride + offset[j][e]] = s[k][j][e];
          }
          y_at[j][e] += head_stride;
        }
    if constexpr (ASYNC) {
      // h_t from every other CTA. Buffer (t + 1) % 2 was last read by this CTA at step t - 1, and
      // each sender stored into it only after it had h_{t-1} from here, sent after that read.
      if (more && !PER_SOURCE) {  // (PER_SOURCE: the next product waits, a sender at a time)
        const unsigned bar = arrivals + ((t + 1) % 2) * 8;
        mbarrier_wait(bar, (t >> 1) & 1);  // its (t / 2)-th phase: h_t for even t into buffer 1, odd into 0
        if (threadIdx.x == 0) mbarrier_arm(bar, EXPECTED);  // for h_{t+2}
      }
      if constexpr (KSPLIT == 1) __syncthreads();  // every thread's share of the next x (add_k_slices syncs otherwise)
    } else {
      cluster_wait();
    }
  }
  if constexpr (ASYNC) cluster_sync();  // no CTA leaves while another may still store into it

  el.template store<Cell::S>(final_states, s, state_stride);
}

}  // namespace fusedrnn
