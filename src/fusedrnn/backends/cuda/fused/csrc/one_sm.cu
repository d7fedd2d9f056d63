// Translation unit: heads on one SM: one CTA a head and batch tile, R on chip.
// Its own cubin cache digest (its include closure), so editing another family's
// headers recompiles nothing here. The host names one instantiation a compile.
#include "cells/elman.cuh"
#include "cells/gru.cuh"
#include "cells/lstm.cuh"
#include "cells/slstm.cuh"
#include "one_sm_forward.cuh"
#include "one_sm_backward.cuh"
