// Chunk staging for the cuda_alternating backend: at the start of each chunk
// of steps, one kernel copies what those steps read from the caller's tensors
// into the workspace, in step-major layouts. A step kernel then reads only
// fixed workspace addresses (one memory round trip a step, no pointer chasing),
// and the backward's recurrent products of the whole chunk become one GEMM.
//
// Grid-stride loops over plain element copies: a chunk moves a few MB once
// every 64 steps, far off the per-step critical path.
#pragma once
#include "alternating_call.cuh"

namespace fusedrnn {

__device__ __forceinline__ size_t grid_thread() { return size_t(blockIdx.x) * blockDim.x + threadIdx.x; }
__device__ __forceinline__ size_t grid_threads() { return size_t(gridDim.x) * blockDim.x; }

// rows of `row` elements, one per (position k, sequence b) of the chunk:
// dst[k][b][:] = src[b][t_k][:], src holding `steps` rows a sequence
template <bool BACKWARD, class V>
__device__ void stage_rows(V* __restrict__ dst, const V* __restrict__ src, const AlternatingCall* call, int chunk,
                           int B, size_t row) {
  const size_t total = size_t(chunk) * B * row;
  for (size_t e = grid_thread(); e < total; e += grid_threads()) {
    const size_t r = e / row, within = e - r * row;
    const int k = int(r / B), b = int(r - size_t(k) * B);
    const long long t = chunk_step<BACKWARD>(call, k);
    if (t >= 0 && t < call->steps) dst[e] = src[(size_t(b) * call->steps + t) * row + within];
  }
}

// reset_chunk [chunk][B]: whether step t + 1 of sequence b starts afresh, t the step position k runs
// (resets[b][t + 1]; 0 after the last step and where the call has no resets). The step kernel
// before a reset applies it, where the states pass to the next step, and tests the length itself
// (a reset at or past a sequence's length changes nothing).
template <bool BACKWARD>
__device__ void stage_next_resets(unsigned char* __restrict__ reset_chunk, const AlternatingCall* call, int chunk,
                                  int B) {
  const unsigned char* resets = call->resets;
  const long long steps = call->steps;
  for (size_t e = grid_thread(); e < size_t(chunk) * B; e += grid_threads()) {
    const int k = int(e / B), b = int(e - size_t(k) * B);
    const long long next = chunk_step<BACKWARD>(call, k) + 1;
    reset_chunk[e] = resets && next > 0 && next < steps ? resets[size_t(b) * steps + next] : 0;
  }
}

// x_chunk [chunk][B][GX][NH][DH] <- x [B][T][GX][NH][DH]; reset_chunk [chunk][B] (stage_next_resets)
template <class T>
__global__ void alternating_stage_forward(const AlternatingCall* __restrict__ call, T* __restrict__ x_chunk,
                                          unsigned char* __restrict__ reset_chunk, int chunk, int B, int GX, int NH,
                                          int DH) {
  stage_rows<false>(x_chunk, static_cast<const T*>(call->x), call, chunk, B, size_t(GX) * NH * DH);
  stage_next_resets<false>(reset_chunk, call, chunk, B);
}

// Everything the backward's steps read, position k running step t = T - 1 - (done + k):
// x_chunk [chunk][B][GX][NH][DH], dy_chunk [chunk][B][NH][DH],
// saved_chunk [chunk][S - 1][B][NH][DH] fp32 (the states 1..S-1 entering step t: the forward
// saved the initial ones there at a reset), h_chunk [NH][chunk][B][DH]: h entering step t
// (y[:, t - 1], or the initial h at t = 0 and where resets[b][t]), the left operand of the
// chunk's GEMM with R; reset_chunk [chunk][B] (stage_next_resets).
template <class T>
__global__ void alternating_stage_backward(const AlternatingCall* __restrict__ call, T* __restrict__ x_chunk,
                                           T* __restrict__ dy_chunk, float* __restrict__ saved_chunk,
                                           T* __restrict__ h_chunk, unsigned char* __restrict__ reset_chunk,
                                           int chunk, int B, int GX, int S, int NH, int DH) {
  const size_t HD = size_t(NH) * DH;
  stage_rows<true>(x_chunk, static_cast<const T*>(call->x), call, chunk, B, GX * HD);
  stage_rows<true>(dy_chunk, static_cast<const T*>(call->dy), call, chunk, B, HD);
  stage_next_resets<true>(reset_chunk, call, chunk, B);
  const long long steps = call->steps;
  if (S > 1 && call->saved_in) {
    const size_t slab = size_t(S - 1) * B * HD;  // one step of saved: contiguous
    const size_t total = size_t(chunk) * slab;
    for (size_t e = grid_thread(); e < total; e += grid_threads()) {
      const int k = int(e / slab);
      const long long t = chunk_step<true>(call, k);
      if (t >= 0) saved_chunk[e] = call->saved_in[size_t(t) * slab + (e - size_t(k) * slab)];
    }
  }
  const T* h0 = static_cast<const T*>(call->initial);  // state 0 of the initial states: [B][NH][DH]
  const T* y = static_cast<const T*>(call->y_in);
  const unsigned char* resets = call->resets;
  const size_t per_head = size_t(chunk) * B * DH, total = size_t(NH) * per_head;
  for (size_t e = grid_thread(); e < total; e += grid_threads()) {
    const int n = int(e / per_head);
    const size_t rest = e - size_t(n) * per_head;
    const int k = int(rest / (size_t(B) * DH));
    const size_t bi = rest - size_t(k) * B * DH;
    const int b = int(bi / DH), i = int(bi - size_t(b) * DH);
    const long long t = chunk_step<true>(call, k);
    if (t < 0) continue;
    const size_t unit = size_t(n) * DH + i;
    const bool afresh = t == 0 || (resets && resets[size_t(b) * steps + t]);
    h_chunk[e] = afresh ? h0[size_t(b) * HD + unit] : y[(size_t(b) * steps + t - 1) * HD + unit];
  }
}

}  // namespace fusedrnn
