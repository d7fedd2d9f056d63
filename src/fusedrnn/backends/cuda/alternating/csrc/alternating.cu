// The translation unit NVRTC compiles for the cuda_alternating backend: the
// step, staging and call kernels (alternating/kernels.py names one
// instantiation per compile). Separate from cuda_fused's translation units: it needs none of the
// persistent skeletons, so it compiles in a fraction of the time.
// The cell's struct comes before this file, in the unit's prelude (cxx.cell_unit).
#include "alternating_stage.cuh"
#include "alternating_steps.cuh"
