// Translation unit of the cluster forward's timing probes (tools/cluster_variants.py,
// tools/cluster_timeline.py): each leaves out or stamps one part of a step, so its results are
// wrong. Outside every shipped kernel's include closure: editing a probe retires no cubin or
// tuned winner of the shipped kernels.
// The cell's struct comes before this file, in the unit's prelude (cxx.cell_unit).
#include "cluster_forward.cuh"

namespace fusedrnn::probes {

struct NoPush : NoProbe { static constexpr bool PUSH = false; };
// barrier.cluster.arrive.relaxed: no fence (racy)
struct RelaxedArrive : NoProbe { static constexpr bool RELAXED_ARRIVE = true; };
struct NoPushRelaxedArrive : NoProbe {
  static constexpr bool PUSH = false;
  static constexpr bool RELAXED_ARRIVE = true;
};
struct RegisterTilesOnly : NoProbe { static constexpr bool REGISTER_TILES_ONLY = true; };
struct NoProduct : NoProbe { static constexpr bool PRODUCT = false; };
struct NoOutput : NoProbe { static constexpr bool OUTPUT = false; };
// only the barrier, the cell and x
struct BarrierCellInput : NoProbe {
  static constexpr bool PUSH = false;
  static constexpr bool PRODUCT = false;
  static constexpr bool OUTPUT = false;
};
struct Timeline : NoProbe { static constexpr bool TIMELINE = true; };

}  // namespace fusedrnn::probes
