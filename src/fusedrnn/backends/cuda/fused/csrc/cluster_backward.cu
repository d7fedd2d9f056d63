// Translation unit: the backward of heads split over a thread-block cluster.
// Its own cubin cache digest (its include closure), so editing another family's
// headers recompiles nothing here. The host names one instantiation a compile.
// The cell's struct comes before this file, in the unit's prelude (cxx.cell_unit).
#include "cluster_backward.cuh"
