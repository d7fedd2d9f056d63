// Thread-block clusters (sm_90+): the CTAs of one cluster run at once on one
// GPC and can store into each other's shared memory (DSMEM). Used by heads
// split over the CTAs of a cluster (cluster_forward.cuh): each CTA pushes its
// slice of h_t into every CTA's copy of h, then all meet at one cluster barrier.
//
// Ordering (PTX ISA, barrier.cluster): arrive.release makes this thread's
// earlier memory accesses (DSMEM stores included) visible to every thread of
// the cluster that has passed the matching wait.acquire. The barrier counts
// every non-exited thread of the cluster, so it also orders the CTA's own
// threads, as __syncthreads would.
#pragma once
#include "storage.cuh"

namespace fusedrnn {

__device__ __forceinline__ int cluster_rank() {
  unsigned rank;
  asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(rank));
  return int(rank);
}

// The .aligned forms need the whole warp to execute them together: __syncwarp
// reconverges a warp that left a loop of per-thread trip counts.
__device__ __forceinline__ void cluster_arrive() {
  __syncwarp();
  asm volatile("barrier.cluster.arrive.release.aligned;" ::: "memory");
}

__device__ __forceinline__ void cluster_wait() {
  asm volatile("barrier.cluster.wait.acquire.aligned;" ::: "memory");
}

__device__ __forceinline__ void cluster_sync() {
  cluster_arrive();
  cluster_wait();
}

// An arrive that orders nothing (no MEMBAR.ALL.GPU before it, which the .release form costs on
// sm_90): for timing probes only, it does not publish the DSMEM stores.
__device__ __forceinline__ void cluster_arrive_relaxed() {
  __syncwarp();
  asm volatile("barrier.cluster.arrive.relaxed.aligned;" ::: "memory");
}

// mbarriers (sm_90) that count the bytes other CTAs of the cluster store into this one by
// st.async: a phase completes once its one arrival (arm) and all its expected bytes came.
__device__ __forceinline__ void mbarrier_init(unsigned bar, unsigned arrivals) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(arrivals) : "memory");
}

// the inits visible to the other CTAs of the cluster (before the cluster barrier that precedes any st.async)
__device__ __forceinline__ void fence_mbarrier_init() {
  asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
}

// the one arrival of the barrier's current phase, which also expects `bytes` of st.async stores
__device__ __forceinline__ void mbarrier_arm(unsigned bar, unsigned bytes) {
  asm volatile("mbarrier.arrive.expect_tx.relaxed.cta.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(bytes)
               : "memory");
}

// until the phase of parity `parity` completed; acquire at cluster scope: the st.async stores it
// counted (from other CTAs) are visible to this thread afterwards
__device__ __forceinline__ void mbarrier_wait(unsigned bar, unsigned parity) {
  unsigned done;
  do {
    asm volatile(
        "{\n\t.reg .pred p;\n\t"
        "mbarrier.try_wait.parity.acquire.cluster.shared::cta.b64 p, [%1], %2;\n\t"
        "selp.u32 %0, 1, 0, p;\n\t}"
        : "=r"(done)
        : "r"(bar), "r"(parity)
        : "memory");
  } while (!done);
}

__device__ __forceinline__ unsigned map_to_rank(unsigned local, int rank) {
  unsigned remote;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(remote) : "r"(local), "r"(rank));
  return remote;
}

// 16 bytes into CTA `rank` at this CTA's offset `local`, counted by that CTA's mbarrier at offset `bar`
__device__ __forceinline__ void store_async_to_rank(unsigned local, unsigned bar, int rank, const uint4& v) {
  asm volatile("st.async.shared::cluster.mbarrier::complete_tx::bytes.v4.b32 [%0], {%1, %2, %3, %4}, [%5];" ::"r"(
                   map_to_rank(local, rank)),
               "r"(v.x), "r"(v.y), "r"(v.z), "r"(v.w), "r"(map_to_rank(bar, rank))
               : "memory");
}

// 16 bytes of this CTA's shared memory at `local` into the same offset of CTA
// `rank` of the cluster (a fire-and-forget store; the barrier publishes it).
__device__ __forceinline__ void store_to_rank(unsigned local, int rank, const uint4& v) {
  unsigned remote;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(remote) : "r"(local), "r"(rank));
  asm volatile("st.shared::cluster.v4.b32 [%0], {%1, %2, %3, %4};" ::"r"(remote), "r"(v.x), "r"(v.y), "r"(v.z),
               "r"(v.w)
               : "memory");
}

// This CTA's columns [col0, col0 + COLS) of the first BT rows of the [*][LD] tile
// `tile` (already written locally) into the same place of the tile in every other
// CTA of the cluster, in 16-byte pieces. Threads that share a piece of the tile send it to
// several CTAs; each starts at its own rank, so the CTAs do not all hit rank 0 first.
// With ASYNC the stores are st.async, each counted by the destination's mbarrier at offset `bar`
// (which expects (PARTS - 1) * BT * COLS * sizeof(T) bytes a phase); otherwise plain DSMEM
// stores that a cluster barrier publishes.
template <class T, int COLS, int LD, int BT, int PARTS, int THREADS, bool ASYNC = false>
__device__ __forceinline__ void broadcast_columns(const T* tile, int col0, int rank, unsigned bar = 0) {
  constexpr int PER_PIECE = 16 / sizeof(T);
  static_assert(COLS % PER_PIECE == 0 && (LD * sizeof(T)) % 16 == 0, "16-byte pieces");
  constexpr int PIECES_PER_ROW = COLS / PER_PIECE;
  constexpr int PIECES = BT * PIECES_PER_ROW;  // one destination's share
  constexpr int GROUPS = THREADS >= PIECES ? THREADS / PIECES : 1;  // threads holding the same piece
  constexpr int OTHERS = PARTS - 1;
  for (int idx = threadIdx.x; idx < GROUPS * PIECES; idx += THREADS) {
    const int piece = idx % PIECES, group = idx / PIECES;
    const T* at = tile + piece / PIECES_PER_ROW * LD + col0 + piece % PIECES_PER_ROW * PER_PIECE;
    const uint4 v = *reinterpret_cast<const uint4*>(at);
    const unsigned local = shared_address(at);
    for (int d = group; d < OTHERS; d += GROUPS) {
      int dest = rank + 1 + d;
      if (dest >= PARTS) dest -= PARTS;
      if constexpr (ASYNC) {
        store_async_to_rank(local, bar, dest, v);
      } else {
        store_to_rank(local, dest, v);
      }
    }
  }
}

}  // namespace fusedrnn
