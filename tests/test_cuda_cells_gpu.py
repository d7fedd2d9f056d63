"""define_cell cells on the GPU: a summed cell (coupled input-forget LSTM) and one
that is not (a GRU-like cell with where, maximum, log and exp) through every CUDA
kernel family (one SM, grid, cluster; cuda_alternating), forward and backward,
against the float64 torch backend of the same cell (its generated torch code is
checked against independent references in test_define_cell.py) by the
FlashAttention rule, outputs poisoned and lengths drawn as for the built-ins."""
import pytest
import torch

import fusedrnn
from kernel_check import fused_plans, planned
from fusedrnn.testing import check_backend
from test_cuda_cells import gru_log_step
from user_cells import cells_restored, cifg_step

CELLS = {  # name: (step, Gx, Gr, Gb, states)
    "gpu_cifg": (cifg_step, 3, 3, 3, ("h", "c")),
    "gpu_gru_log": (gru_log_step, 3, 3, 4, ("h",)),
}
FAMILIES = {"one_sm": 40, "grid": 160, "cluster": 160}  # family: a head dim it runs


@pytest.fixture(autouse=True)
def _defined_cells():
    with cells_restored():
        for name, (step, gx, gr, gb, states) in CELLS.items():
            fusedrnn.define_cell(name, step, gates_x=gx, gates_r=gr, gates_b=gb, states=states)
        yield


@pytest.mark.gpu
@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gpu_user_cell_on_each_fused_family(cell, family, dtype):
    if family == "cluster" and (dtype == torch.float32 or torch.cuda.get_device_capability() < (9, 0)):
        pytest.skip("clusters: half types on sm_90")
    B, T, NH, DH = 5, 23, 2, FAMILIES[family]
    try:
        plans = fused_plans(cell, dtype, B, T, NH, DH, forward=family, backward=family)
    except ValueError as why:
        pytest.skip(f"{family} cannot run it: {why}")
    check_backend(planned(*plans), cell, dtype, B, T, NH, DH, "cuda")


@pytest.mark.gpu
@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gpu_user_cell_on_alternating_and_auto(cell, dtype):
    for backend in ("cuda_alternating", "auto"):
        check_backend(backend, cell, dtype, 3, 17, 2, 48, "cuda")
