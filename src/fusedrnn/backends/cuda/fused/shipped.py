"""Every kernel instantiation a call can select, per family: what CI compiles
with NVRTC on a CPU (tests/test_cuda_compile.py) and fails on spills. The
calls sampled cover each built-in cell (a user's cell compiles at its first
call), dtype and padded head dim, narrow and wide batch tiles, few and many
heads; row-copy widths other than 8 are sampled at one head dim (they differ
only in how rows are staged)."""
from __future__ import annotations

import torch

from ....cells import BUILT_IN
from ..cxx import STORAGE_TYPES
from ..runtime.device import H100_SXM, DeviceLimits
from .cluster import choose_cluster
from .cluster_backward import choose_cluster_backward
from .grid import MAX_HEAD_DIM, PAD_TO, ROWS_CHOICES, split_config
from .one_sm import fits_one_sm, rule_config
from .registers import registers_needed


def one_sm_configs(device: DeviceLimits = H100_SXM) -> list:
    configs = set()
    for cell in BUILT_IN:
        for dtype in STORAGE_TYPES:
            for DHP in range(16, 257, 16):
                for DH in [DHP] + ([DHP - 2, DHP - 4, DHP - 7] if DHP == 48 else []):
                    # narrow tiles, narrow ones sharing SMs in one wave, and wide ones past a wave
                    for B, NH in ((8, 1), (16, 1), (256, 12), (2048, 12)):
                        if fits_one_sm(cell, dtype, DH, B, device):
                            for backward in (False, True):
                                configs.add(rule_config(cell, dtype, DH, B, backward, NH, device))
    return sorted(configs, key=lambda c: c.name_expression)


def split_heads():
    """(cell, dtype, DH) of every padded head dim a split kernel serves, each row-copy width at 256."""
    for cell in BUILT_IN:
        for dtype in STORAGE_TYPES:
            for DHP in range(PAD_TO, MAX_HEAD_DIM + 1, PAD_TO):
                for DH in [DHP] + ([DHP - 2, DHP - 4, DHP - 7] if DHP == 256 else []):
                    yield cell, dtype, DH


def grid_configs(device: DeviceLimits = H100_SXM) -> list:
    # tiles of 8 and 16 sequences, and of 32 where 64 sequences need them to fit one wave
    configs = {split_config(cell, dtype, DH, B, ROWS, backward, device.shared_memory_per_block, NT_choices=NT)
               for cell, dtype, DH in split_heads() for B, NT in ((8, (1,)), (16, (2, 1)), (64, (4,)))
               for ROWS in ROWS_CHOICES for backward in (False, True)}
    fitting = {c for c in configs - {None} if registers_needed(c) <= device.register_cap(c.threads)}
    return sorted(fitting, key=lambda c: c.name_expression)


def cluster_configs(device: DeviceLimits = H100_SXM) -> list:
    """The cluster forward's shapes as choose_cluster plans them (before the fit to a compiler)."""
    configs = {choose_cluster(cell, dtype, DH, B, NH, device) for cell, dtype, DH in split_heads()
               for B, NH in ((8, 1), (16, 1), (16, 3), (64, 12)) if not fits_one_sm(cell, dtype, DH, B, device)}
    return sorted(configs - {None}, key=lambda c: c.name_expression)


def cluster_backward_configs(device: DeviceLimits = H100_SXM) -> list:
    configs = set()
    for cell in BUILT_IN:
        for dtype in (torch.float16, torch.bfloat16):
            for DHP in range(128, MAX_HEAD_DIM + 1, 128):
                for DH in [DHP] + ([DHP - 2, DHP - 4, DHP - 7] if DHP == 256 else []) + (
                        [64, 96] if DHP == 128 else []):
                    for B, NH in ((16, 1), (16, 3), (16, 6), (16, 12), (64, 12)):
                        config = choose_cluster_backward(cell, dtype, DH, B, NH, device)
                        if config is not None:
                            configs.add(config)
    return sorted(configs, key=lambda c: c.name_expression)


def shipped_configs(device: DeviceLimits = H100_SXM) -> list:
    """All four families."""
    return one_sm_configs(device) + grid_configs(device) + cluster_configs(device) + cluster_backward_configs(device)
