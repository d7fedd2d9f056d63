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
# The split forward (grid.cu) has its own estimate: the one above, right for its tiles of 8 and
# 16 sequences, counts twice what ptxas takes for each more (LSTM bf16 at DH 768: 172 registers at
# NT=2, 249 at NT=4). Calibrated with NVRTC 13.0 (sm_90) on 70 split forwards at NT 2 and 4, every
# built-in cell, fp32 and bf16, DHP 128 and 768, 16 and 32 rows a CTA, and the 227 shipped at NT 4:
# it admits every one that compiles clean at NT 2, and at NT 4 the LSTM, GRU and Elman of half
# types and the Elman of fp32; it rejects what spills there (LSTM, GRU and sLSTM in fp32, sLSTM of
# 32 rows in bf16, the LSTM's resets form in bf16) and some that reach 255 registers without
# spilling (sLSTM's bf16 forms of 16 rows, GRU's fp32 ones at DHP 128).
SPLIT_FORWARD_BASE = 48
SPLIT_FORWARD_PER_VALUE = 8  # a tile's gate or state values (G + S of each element's)
SPLIT_FORWARD_FMA = 20  # a tile's more in fp32 (its FMA product holds h as floats)
SPLIT_FORWARD_RESETS = 4  # a tile's initial states held per state (the resets form)


def registers_needed(config) -> int:
    """A FusedConfig's or SplitConfig's register need per thread."""
    spec = get_cell(config.cell)
    if getattr(config, "split_forward", False):  # SplitConfig's forward (grid.py)
        per_tile = SPLIT_FORWARD_PER_VALUE * (spec.gates_r + spec.num_states)
        per_tile += SPLIT_FORWARD_FMA if config.dtype.itemsize == 4 else 0
        per_tile += SPLIT_FORWARD_RESETS * spec.num_states if config.resets else 0
        return SPLIT_FORWARD_BASE + config.NT * per_tile
    per_tile = 4 * (PER_VALUE * (spec.gates_r + spec.num_states) + PER_ELEMENT)
    need = config.NT * per_tile + (BACKWARD_EXTRA if config.backward else 0)
    if getattr(config, "r_in_registers", False):
        need += 4 * spec.gates_r * config.DHP // 16
    return need
