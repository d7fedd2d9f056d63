// The forward for heads too large for one SM, split over the PARTS = DHP / ROWS
// CTAs of one thread-block cluster (sm_90): CTA `rank` computes rows
// rank * ROWS .. + ROWS of every gate, holding those rows of R partly in
// registers and partly in shared memory (cluster_weights.cuh), and keeps a
// whole copy of h in its shared memory, double-buffered. Per step t a CTA:
//   1. multiplies its rows of R by h_{t-1} (buffer t % 2; warps may split K),
//   2. brings each element's R h together and runs the cell (cluster_cells.cuh:
//      on the first K slice's warps, or spread over all threads), writing its
//      slice of h_t into its own buffer (t + 1) % 2,
//   3. stores that slice into buffer (t + 1) % 2 of every other CTA of the
//      cluster (DSMEM, 16 bytes a store; after a __syncthreads, or warp by warp
//      as each warp's spread cells finish),
//   4. prefetches x of a later step, stores y and the saved states, and waits
//      for h_t from the other CTAs: one cluster barrier (arrive.release /
//      wait.acquire), or, with ASYNC_PUSH, the mbarrier counting their bytes.
// A buffer written at step t was last read at step t - 1, before the barrier
// that ended it, and is next read at step t + 1, after the barrier that ends
// step t: one barrier a step orders both. The last step's barrier also lets
// every CTA exit: nothing writes into another CTA's shared memory after it.
// Same tensors as one_sm_forward.cuh, R with rows of ldr elements (DH, or DH + 1 padded where DH
// is odd); a cluster runs `sequences` of the batch (BT without SPREAD_CELLS; with it 1 .. BT,
// at most SPREAD_ELEMENTS * THREADS / ROWS where that is set), the rest of its tile being
// zero padding that is never exchanged (fewer bytes through DSMEM a step, in more clusters);
// grid: (NH * PARTS, ceil(B / sequences)), clusters of (PARTS, 1, 1).
//
// OPTIONS (a bit mask of ClusterOptions, cluster_options.cuh; the plan picks ASYNC_PUSH |
// SPREAD_CELLS, with PER_SOURCE where all of R sits in registers, cluster.planned_options) builds
// other forms of the step. Probe (NoProbe in every shipped kernel) changes nothing; the timing
// probes of csrc/cluster_probes.cu, a translation unit of their own, leave out or stamp one part
// of the step (their results are wrong; tools/cluster_variants.py, tools/cluster_timeline.py).
#pragma once
#include "cluster.cuh"
#include "cluster_cells.cuh"
#include "cluster_options.cuh"
#include "cluster_weights.cuh"
#include "elements.cuh"
#include "recurrent_product.cuh"
#include "ring.cuh"

namespace fusedrnn {

template <class Cell, class T, int DHP, int ROWS, int KSPLIT, int NT, int DEPTH, int VEC, int REG_TILES, bool FAST,
          int OPTIONS = 0, int SPREAD_ELEMENTS = 0, class Probe = NoProbe, bool RESETS = false>
__global__ void __launch_bounds__(Layout<T, DHP, Cell::GR, NT, 1, ROWS, KSPLIT>::THREADS, 1)
    fused_cluster_forward_kernel(const T* __restrict__ x, const T* __restrict__ R, const T* __restrict__ bias,
                                 const T* __restrict__ states, const long long* __restrict__ lengths,
                                 const unsigned* __restrict__ resets, T* __restrict__ y,
                                 T* __restrict__ final_states, float* __restrict__ saved,
                                 int ldr, int B, int steps, int NH, int DH, int sequences) {
  using L = Layout<T, DHP, Cell::GR, NT, 1, ROWS, KSPLIT>;
  using W = SplitWeights<L, T, REG_TILES>;
  using XRing = StepRing<T, Cell::GX, ROWS, L::BT, DEPTH>;
  if constexpr (!RESETS) resets = nullptr;  // folds every reset test away: the kernel of a call without resets
  constexpr int PARTS = DHP / ROWS;
  constexpr bool ASYNC = OPTIONS & ClusterOptions::ASYNC_PUSH;
  constexpr bool PER_SOURCE = ASYNC && (OPTIONS & ClusterOptions::PER_SOURCE) && Storage<T>::tensor_cores;
  constexpr bool TIMELINE = Probe::TIMELINE;
  constexpr bool SPREAD = OPTIONS & ClusterOptions::SPREAD_CELLS;
  using Cells = typename ClusterCellsOf<SPREAD, Cell, L, T, FAST, SPREAD_ELEMENTS>::type;
  // (the host keeps `sequences` within what SPREAD_ELEMENTS elements a thread hold)
  constexpr int BARRIERS = PER_SOURCE ? PARTS : 1;  // a buffer: one for all senders, or one a sender
  static_assert(PARTS >= 2 && PARTS <= 16 && DHP % ROWS == 0, "a cluster of 2 to 16 CTAs");
  static_assert(L::K_TILES % KSPLIT == 0, "whole K tiles a warp");
  static_assert(!PER_SOURCE || L::K_TILES_PER_WARP % (ROWS / 16) == 0, "whole slices of h a warp");
  extern __shared__ __align__(16) unsigned char smem[];
  T* Rs = reinterpret_cast<T*>(smem);
  T* hs = Rs + W::ELEMS;  // [2][BT][LDH]: all of h_{t-1} in half t % 2
  const XRing xr{hs + 2 * L::H_ELEMS};
  float* partial = reinterpret_cast<float*>(xr.base + XRing::ELEMS);  // Cells::SCRATCH floats
  // ASYNC: after the partial sums, 2 x BARRIERS mbarriers; arrivals + (b * BARRIERS + s) * 8 counts the
  // stores of h into buffer b (from sender s with PER_SOURCE)
  const unsigned arrivals = shared_address(partial + Cells::SCRATCH);

  const int rank = cluster_rank(), n = blockIdx.x / PARTS, row0 = rank * ROWS, batch0 = blockIdx.y * sequences;
  // the reset words, after the mbarriers' 2 x BARRIERS x 8 bytes (with RESETS only)
  unsigned* reset_slots = reinterpret_cast<unsigned*>(partial + Cells::SCRATCH) + (ASYNC ? 4 * BARRIERS : 0);
  const ResetRing<L::BT, DEPTH, !SPREAD> reset_ring{reset_slots, resets, batch0, B, steps};
  const L at;
  const size_t head_stride = size_t(NH) * DH, state_stride = size_t(B) * head_stride;
  const int valid_sequences = min(sequences, B - batch0), batch_end = batch0 + valid_sequences;
  const unsigned slice_bytes = sequences * ROWS * sizeof(T);  // one CTA's h_t: (PARTS - 1) of them arrive a step
  const unsigned expected = PER_SOURCE ? slice_bytes : (PARTS - 1) * slice_bytes;  // bytes a phase

  if constexpr (ASYNC) {
    if (threadIdx.x == 0) {  // all armed for their first use: h_0 into buffer 1, h_1 into buffer 0
      for (int k = 0; k < 2 * BARRIERS; ++k) mbarrier_init(arrivals + 8 * k, 1);
      fence_mbarrier_init();  // published to the cluster by the cluster_sync before the loop
      for (int k = 0; k < 2 * BARRIERS; ++k) mbarrier_arm(arrivals + 8 * k, expected);
    }
  }
  xr.zero(L::THREADS);
  load_shared_weights<L, W>(Rs, R, ldr, n, NH, DH, row0);
  load_h_tile<L>(hs, states + n * DH, head_stride, batch0, batch_end, DH);  // h_0, all of it
  // buffer 1's columns past the cluster's sequences are read (as padding) and never written
  for (int idx = threadIdx.x; idx < L::H_ELEMS; idx += L::THREADS) hs[L::H_ELEMS + idx] = Storage<T>::store(0.0f);
  __syncthreads();  // the ring's zeros land before any copy into it
  const auto x_copier = make_copier<XRing, T, Cell::GX, ROWS, L::BT, VEC, L::THREADS>(
      xr, [=](int c, int g) { return x + (size_t(batch0 + c) * steps * Cell::GX + g) * head_stride + n * DH + row0; },
      valid_sequences, min(ROWS, DH - row0), Cell::GX * head_stride);
  const auto fill_step = [&](int t) {
    x_copier.fill(t % DEPTH, t);
    if constexpr (RESETS) reset_ring.fill(t % DEPTH, t);
  };
  for (int s = 0; s < DEPTH - 1; ++s) {
    if (s < steps) fill_step(s);
    commit_copies();
  }
  const W weights(Rs, at, R, ldr, n, NH, DH, row0);

  Cells cells(sequences, batch0, valid_sequences, row0, n, NH, DH, steps, lengths, bias, states, state_stride, y);
  if (resets) cells.hold_initial_states(states, state_stride);
  if (saved && !TIMELINE) cells.template store_states<1>(saved, state_stride);  // slot 0: the initial states 1..S-1
  // this lane's ldmatrix row of h in buffer 0 (the product's one address of h)
  const unsigned h_row =
      shared_address(hs + (at.col0 + (at.lane & 7)) * L::LDH + at.k_tile0 * 16 + ((at.lane >> 3) & 1) * 8);
  wait_copies<DEPTH - 2>();
  cluster_sync();  // every CTA of the cluster runs (its shared memory may be written) and has step 0's x
  const long long clock0 = clock64();
  const auto stamp = [&](int t, int point) {
    if constexpr (TIMELINE)
      if (at.lane == 0 && blockIdx.y == 0 && saved)
        saved[((size_t(t) * PARTS + rank) * L::WARPS + threadIdx.x / 32) * 8 + point] = float(clock64() - clock0);
  };

  for (int t = 0; t < steps; ++t) {
    stamp(t, 0);
    T* h_next = hs + ((t + 1) % 2) * L::H_ELEMS;
    float acc[4][L::NT][4] = {};
    constexpr int KT_END = !Probe::PRODUCT               ? 0
                           : Probe::REGISTER_TILES_ONLY ? REG_TILES
                                                        : L::K_TILES_PER_WARP;
    if constexpr (PER_SOURCE) {  // (tensor cores only: the FMA product reads h all at once)
      // h_{t-1} (buffer t % 2) from sender `source` before its K tiles; the warps of the first row
      // block re-arm each barrier for h_{t+1} once they have seen it complete
      const auto wait = [&](int slice) {
        const int source = at.k_tile0 / (ROWS / 16) + slice;
        if (t == 0 || source == rank) return;
        const unsigned bar = arrivals + ((t % 2) * BARRIERS + source) * 8;
        mbarrier_wait(bar, ((t - 1) >> 1) & 1);
        if (at.row_block == 0 && at.lane == 0 && t + 2 < steps) mbarrier_arm(bar, expected);
      };
      split_recurrent_product<L, T, KT_END>(acc, weights, h_row + (t % 2) * unsigned(L::H_ELEMS * sizeof(T)), wait);
    } else if constexpr (Storage<T>::tensor_cores) {
      split_recurrent_product<L, T, KT_END>(acc, weights, h_row + (t % 2) * unsigned(L::H_ELEMS * sizeof(T)));
    } else if constexpr (KT_END > 0) {
      recurrent_product<L>(acc, weights, hs + (t % 2) * L::H_ELEMS, at);
    }
    stamp(t, 1);
    cells.gather(acc, partial, at);
    stamp(t, 2);
    // the resets of step t + 1, tested after the cell: their slot, as x's, is whole once gather() has
    // met the CTA (or, with one K slice of owners, since the barrier ending step t - 1)
    if constexpr (RESETS) cells.read_resets(reset_ring, t % DEPTH);
    cells.step(acc, xr, partial, h_next, row0, t);
    stamp(t, 3);
    const bool more = t + 1 < steps;  // ASYNC: the last h_t goes nowhere (no one waits for it)
    const unsigned bar = arrivals + ((t + 1) % 2 * BARRIERS + (PER_SOURCE ? rank : 0)) * 8;
    if constexpr (SPREAD && ASYNC) {
      // each warp sends its part of h_t as soon as it has it; then the CTA meets: its slice of h_t is
      // whole before the next product reads it, and the partial sums are read before they are rewritten
      if (more) cells.template push<PARTS>(h_next, row0, rank, bar);
      stamp(t, 4);
      __syncthreads();
    } else {
      __syncthreads();  // the CTA's slice of h_t is complete
      stamp(t, 4);
      if constexpr (ASYNC) {
        if (more) broadcast_columns<T, ROWS, L::LDH, L::BT, PARTS, L::THREADS, true>(h_next, row0, rank, bar);
      } else if constexpr (Probe::PUSH) {
        broadcast_columns<T, ROWS, L::LDH, L::BT, PARTS, L::THREADS>(h_next, row0, rank);
      }
    }
    // x of a later step while h_t travels: its ring slot was last read by step t - 1's cells
    if (t + DEPTH - 1 < steps) fill_step(t + DEPTH - 1);
    commit_copies();
    stamp(t, 5);
    wait_copies<DEPTH - 2>();  // the next step's x (this thread's share), published by the barrier
    if constexpr (Probe::RELAXED_ARRIVE) {
      cluster_arrive_relaxed();
    } else if constexpr (!ASYNC) {
      cluster_arrive();
    }
    if constexpr (Probe::OUTPUT)  // y and the saved states while h_t travels
      cells.store_outputs(TIMELINE ? nullptr : saved, state_stride, head_stride, t);
    stamp(t, 6);
    if constexpr (ASYNC) {
      // h_t from every other CTA. Buffer (t + 1) % 2 was last read by this CTA at step t - 1, and
      // each sender stored into it only after it had h_{t-1} from here, sent after that read.
      if (more && !PER_SOURCE) {  // (PER_SOURCE: the next product waits, a sender at a time)
        mbarrier_wait(bar, (t >> 1) & 1);  // its (t / 2)-th phase: h_t for even t into buffer 1, odd into 0
        if (threadIdx.x == 0) mbarrier_arm(bar, expected);  // for h_{t+2}
      }
      // every thread's share of the next x (gather() syncs where the K slices or the spread cells meet)
      if constexpr (KSPLIT == 1 && !SPREAD) __syncthreads();
    } else {
      cluster_wait();
    }
    stamp(t, 7);
  }
  if constexpr (ASYNC) cluster_sync();  // no CTA leaves while another may still store into it

  cells.template store_states<0>(final_states, state_stride);
}

}  // namespace fusedrnn
