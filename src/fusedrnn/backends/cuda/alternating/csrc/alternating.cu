// The translation unit NVRTC compiles for the cuda_alternating backend: every
// cell and the step, staging and call kernels (alternating/kernels.py names one
// instantiation per compile). Separate from cuda_fused's translation units: it needs none of the
// persistent skeletons, so it compiles in a fraction of the time.
#include "cells/elman.cuh"
#include "cells/gru.cuh"
#include "cells/lstm.cuh"
#include "cells/slstm.cuh"
#include "alternating_stage.cuh"
#include "alternating_steps.cuh"
