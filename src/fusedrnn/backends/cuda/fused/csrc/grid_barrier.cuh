// A barrier across the CTAs that share one head, for heads split over CTAs:
// they exchange h through global memory every step. Each CTA owns a flag (its
// own 128-byte line, so arrivals never contend) and raises it to the step
// number with a release store; PARTS threads of every CTA then poll the PARTS
// flags in parallel with acquire loads. Flags only grow within a launch
// (zeroed before it). The CTAs must be co-resident: a cooperative launch
// guarantees it or fails.
#pragma once

namespace fusedrnn {

constexpr int FLAG_STRIDE = 32;  // unsigned ints: one 128-byte line a flag

template <int PARTS>
__device__ __forceinline__ void grid_barrier(unsigned* flags, int part, unsigned step) {
  static_assert(PARTS <= 1024, "one polling thread a part");
  __syncthreads();  // the CTA's writes of this step are done; the release store below is
                    // cumulative, so it publishes them device-wide with the flag
  if (threadIdx.x == 0)
    asm volatile("st.release.gpu.global.u32 [%0], %1;" ::"l"(flags + part * FLAG_STRIDE), "r"(step) : "memory");
  if (threadIdx.x < PARTS) {
    const unsigned* flag = flags + threadIdx.x * FLAG_STRIDE;
    unsigned seen;
    do {
      asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(seen) : "l"(flag) : "memory");
    } while (seen < step);
  }
  __syncthreads();
}

}  // namespace fusedrnn
