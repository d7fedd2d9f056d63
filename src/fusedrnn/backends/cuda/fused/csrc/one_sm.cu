// Translation unit: heads on one SM: one CTA a head and batch tile, R on chip.
// Its own cubin cache digest (its include closure), so editing another family's
// headers recompiles nothing here. The host names one instantiation a compile.
// The cell's struct comes before this file, in the unit's prelude (cxx.cell_unit).
#include "one_sm_forward.cuh"
#include "one_sm_backward.cuh"
