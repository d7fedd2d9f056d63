"""The CUDA backends: `cuda_fused` (persistent kernels, fused/) and
`cuda_alternating` (a GEMM and a pointwise kernel a step, alternating/), on a
shared runtime (runtime/: NVRTC, the cubin cache, launches)."""
from . import alternating, fused  # noqa: F401  (registers both backends)
