// The forms of the cluster forward's step (OPTIONS, a bit mask) and the hooks a timing probe may
// change (Probe). The host reads ClusterOptions from this file (fused/cluster.py), so the bits
// are written once, here.
#pragma once

namespace fusedrnn {

struct ClusterOptions {
  // h_t into the other CTAs by st.async, counted by an mbarrier a buffer in each receiver, which
  // waits for its (PARTS - 1) slices: one-way signals instead of the cluster barrier and its
  // release fence (MEMBAR.ALL.GPU on sm_90). Correct; 16 more bytes of shared memory (the barriers).
  static constexpr int ASYNC_PUSH = 1;
  // with ASYNC_PUSH: an mbarrier for each sender (16 bytes each a buffer), so that a warp's product
  // starts on the slices of h that have come and waits for each of the others just before its first
  // K tile
  static constexpr int PER_SOURCE = 64;
  // the cell on all threads, each element's R h gathered through shared memory (SpreadCells of
  // cluster_cells.cuh), not on the first K slice's warps in the mma layout (OwnerCells)
  static constexpr int SPREAD_CELLS = 256;
};

// What every shipped kernel does at each point a probe (cluster_probes.cu) may change.
struct NoProbe {
  static constexpr bool PUSH = true;                  // h_t pushed to the other CTAs (DSMEM)
  static constexpr bool RELAXED_ARRIVE = false;       // the cluster barrier's arrive without its fence
  static constexpr bool PRODUCT = true;               // the recurrent product
  static constexpr bool REGISTER_TILES_ONLY = false;  // the product over R's register tiles only
  static constexpr bool OUTPUT = true;                // y and the saved states stored
  // lane 0 of every warp of the first batch tile's cluster stamps the SM clock at eight points of
  // each step into `saved` ([steps][PARTS][WARPS][8] floats, cycles since the loop began) instead
  // of the saved states
  static constexpr bool TIMELINE = false;
};

}  // namespace fusedrnn
