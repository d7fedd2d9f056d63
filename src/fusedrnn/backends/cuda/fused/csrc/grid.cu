// Translation unit: heads split over a cooperative grid of CTAs exchanging through L2.
// Its own cubin cache digest (its include closure), so editing another family's
// headers recompiles nothing here. The host names one instantiation a compile.
// The cell's struct comes before this file, in the unit's prelude (cxx.cell_unit).
#include "grid_forward.cuh"
#include "grid_backward.cuh"
