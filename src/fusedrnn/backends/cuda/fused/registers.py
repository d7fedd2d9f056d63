"""Registers a thread of a kernel instantiation needs before ptxas spills,
estimated from what the kernels keep live across the time loop.

A thread owns NT column tiles of 4 elements. For each element it keeps the
accumulator of every recurrent gate and every state (each about twice over:
the value and the operand copy the pointwise step works on) and ~11 registers
of bookkeeping (64-bit pointers into y and the saved states, its valid length,
its offset). The forward may also hold its A fragments of R: 4 registers per
gate and 16-wide K tile. The backward keeps ~38 more (the drec tile, the
gradient states, the db sums).

Calibrated with NVRTC on a CPU (ptxas -v for sm_90, __launch_bounds__(THREADS,
1)) over 2223 instantiations: every shipped one, single-SM and split, plus 74
chosen to sit near the limit; 34 of them spill. The estimate admits every
shipped one; it admits two that spill (a GRU backward of 512 threads, 140
bytes; a split Elman backward at DH 2048, 92 bytes) and rejects seven that do
not, all backward kernels of 512 threads, where the 4-gate cells spill or not
depending on the head dim. The search compiles what it times and drops what
spills.
"""
from __future__ import annotations

from ....cells import get_cell

PER_VALUE = 2  # registers a gate or state value of one element costs
PER_ELEMENT = 11  # pointers and bookkeeping of one element
BACKWARD_EXTRA = 38


def registers_needed(config) -> int:
    """A FusedConfig's or SplitConfig's register need per thread."""
    spec = get_cell(config.cell)
    per_tile = 4 * (PER_VALUE * (spec.gates_r + spec.num_states) + PER_ELEMENT)
    need = config.NT * per_tile + (BACKWARD_EXTRA if config.backward else 0)
    if getattr(config, "r_in_registers", False):
        need += 4 * spec.gates_r * config.DHP // 16
    return need
