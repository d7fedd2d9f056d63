// The translation unit NVRTC compiles: every cell and both kernel skeletons.
// The host names one instantiation per compile (fused.py).
#include "cells/elman.cuh"
#include "cells/gru.cuh"
#include "cells/lstm.cuh"
#include "cells/slstm.cuh"
#include "forward.cuh"
#include "backward.cuh"
