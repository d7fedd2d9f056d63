// Translation unit: heads split over a cooperative grid of CTAs exchanging through L2.
// Its own cubin cache digest (its include closure), so editing another family's
// headers recompiles nothing here. The host names one instantiation a compile.
#include "cells/elman.cuh"
#include "cells/gru.cuh"
#include "cells/lstm.cuh"
#include "cells/slstm.cuh"
#include "grid_forward.cuh"
#include "grid_backward.cuh"
