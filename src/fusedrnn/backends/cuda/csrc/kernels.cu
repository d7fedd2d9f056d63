// The translation unit NVRTC compiles: every cell and every kernel skeleton.
// The host names one instantiation per compile (fused.py).
#include "cells/elman.cuh"
#include "cells/gru.cuh"
#include "cells/lstm.cuh"
#include "cells/slstm.cuh"
#include "forward.cuh"
#include "backward.cuh"
#include "split_forward.cuh"
#include "split_backward.cuh"
#include "cluster_forward.cuh"
#include "cluster_backward.cuh"
