// A barrier across the CTAs that share one head, for heads split over CTAs:
// they exchange h through global memory every step. `arrived` counts arrivals
// and is never reset within a launch: step t waits for (t + 1) * parties. The
// CTAs must be co-resident (a cooperative launch guarantees it or fails).
#pragma once

namespace fusedrnn {

__device__ __forceinline__ void grid_barrier(unsigned* arrived, unsigned target) {
  __syncthreads();  // the CTA's writes of this step are done; the release below is
                    // cumulative, so it publishes them device-wide with thread 0's arrival
  if (threadIdx.x == 0) {
    asm volatile("red.release.gpu.global.add.u32 [%0], 1;" ::"l"(arrived) : "memory");
    unsigned seen;
    do {
      asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(seen) : "l"(arrived) : "memory");
    } while (seen < target);
  }
  __syncthreads();
}

}  // namespace fusedrnn
