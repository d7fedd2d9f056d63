"""The Triton backend against the float64 reference.

On CPU the kernels run under TRITON_INTERPRET=1 at tiny sizes, in fp32 and
fp16 (the interpreter's bf16 dot is wrong). On a GPU (`-m gpu`): every cell x
dtype x head size at odd B and T. The shipped plans run through the backend's
ops (fusedrnn.rnn); every other variant of fusedrnn.backends.triton.variants
through run_with_plans, its plans passed explicitly (check_variant).
"""
import pytest
import torch

import fusedrnn
from fusedrnn.ops import registry
from fusedrnn.backends.triton.variants import code_paths
from kernel_check import check_backend

CELLS = list(fusedrnn.CELLS)
triton_ok = fusedrnn.backends()["triton"].available
needs_triton = pytest.mark.skipif(not triton_ok, reason=fusedrnn.backends()["triton"].reason)
VARIANTS = code_paths()  # the shipped kernels and every other code path of fusedrnn.backends.triton.variants


def check_variant(name, cell, dtype, B, T, NH, DH, device, **kw) -> dict:
    """check_backend for the Triton kernels run as variant `name`: "shipped" through the
    backend's own ops (fusedrnn.rnn, which plan every call as shipped), any other with
    its plans passed explicitly (run_with_plans)."""
    from fusedrnn.backends.triton.explicit import with_variant

    run = "triton" if name == "shipped" else with_variant(name)
    return check_backend(run, cell, dtype, B=B, T=T, NH=NH, DH=DH, device=device, **kw)


@needs_triton
@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_interpreter_matches_reference(cell, dtype, name):
    if torch.cuda.is_available():
        pytest.skip("interpreter test; the GPU runs test_gpu_matches_reference")
    check_variant(name, cell, dtype, B=3, T=5, NH=2, DH=16, device="cpu")


@needs_triton
@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_interpreter_padded_head_dim_and_zero_states(cell, name):
    if torch.cuda.is_available():
        pytest.skip("interpreter test")
    check_variant(name, cell, torch.float32, B=2, T=4, NH=1, DH=12, device="cpu", with_states=False)


@needs_triton
@pytest.mark.parametrize("name", [name for name in VARIANTS if "stacked" in name])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_interpreter_stacked_gates_in_pairs(cell, name):
    # at DH_P=128 the backward holds the stacked R as two tiles of two gates (stacked.py)
    if torch.cuda.is_available():
        pytest.skip("interpreter test")
    check_variant(name, cell, torch.float16, B=2, T=3, NH=1, DH=128, device="cpu")


def test_interpreter_never_chosen_by_auto():
    # on CPU under TRITON_INTERPRET=1 the triton backend is available and supports fp32
    problem = fusedrnn.problem.Problem(fusedrnn.CELLS["lstm"], 2, 3, 1, 16, torch.float32, torch.device("cpu"),
                                       False, False)
    assert fusedrnn.api._backends.choose("auto", problem).name == "torch"


def test_heads_over_the_on_chip_budget_run_a_launch_a_step_and_auto_leaves_them():
    """fp32 R of DH 128 (256 KiB) and heads over 128 are the stepwise kernels' (stepwise.py), which
    backend='triton' runs and 'auto' does not choose until they are measured against the others."""
    from fusedrnn.backends.triton import runs_stepwise

    for DH, dtype in ((128, torch.float32), (768, torch.bfloat16), (64, torch.bfloat16)):
        problem = fusedrnn.problem.Problem(fusedrnn.CELLS["lstm"], 2, 3, 1, DH, dtype, torch.device("cuda"),
                                           False, False)
        assert registry.get("triton").supports(problem) == (True, "")
        assert runs_stepwise(problem) == (DH != 64)
        assert registry.get("triton").auto_eligible(problem) == (DH == 64)


@needs_triton
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_interpreter_runs_a_large_head_stepwise(cell):
    if torch.cuda.is_available():
        pytest.skip("interpreter test; test_gpu_matches_reference runs DH 128 in fp32 stepwise")
    check_backend("triton", cell, torch.float32, B=3, T=4, NH=1, DH=130, device="cpu")


def test_refuses_with_reason():
    x = torch.randn(1, 2, 4, 1, 256, dtype=torch.float64)
    R = torch.randn(4, 1, 256, 256, dtype=torch.float64)
    b = torch.randn(4, 1, 256, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"backend='triton' cannot run this call: .*dtype torch.float64"):
        fusedrnn.rnn(x, R, b, backend="triton")


@pytest.mark.gpu
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("DH", [16, 32, 48, 64, 128])
def test_gpu_matches_reference(cell, dtype, DH):
    problem = fusedrnn.problem.Problem(fusedrnn.CELLS[cell], 5, 37, 3, DH, dtype, torch.device("cuda"), True, True)
    assert registry.get("triton").supports(problem) == (True, "")  # fp32 at DH 128 runs stepwise
    check_backend("triton", cell, dtype, B=5, T=37, NH=3, DH=DH, device="cuda")


@pytest.mark.gpu
@pytest.mark.parametrize("name", [name for name in VARIANTS if name != "shipped"])
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("DH", [64, 128])
def test_gpu_variant_matches_reference(cell, DH, name):
    """The variants not shipped yet, in bf16 at the benchmark's head dims (tools/triton_variants.py times them)."""
    check_variant(name, cell, torch.bfloat16, B=5, T=37, NH=3, DH=DH, device="cuda")


@pytest.mark.gpu
def test_gpu_new_batch_and_length_do_not_recompile():
    from fusedrnn.backends.triton.forward import recurrence_fwd_kernel

    def compiled_variants():
        return len(recurrence_fwd_kernel.device_caches[torch.cuda.current_device()][0])

    R = torch.randn(4, 2, 32, 32, device="cuda", dtype=torch.bfloat16)
    b = torch.zeros(4, 2, 32, device="cuda", dtype=torch.bfloat16)
    fusedrnn.rnn(torch.randn(16, 10, 4, 2, 32, device="cuda", dtype=torch.bfloat16), R, b, backend="triton")
    before = compiled_variants()
    for B, T in ((9, 33), (13, 100), (16, 7)):
        fusedrnn.rnn(torch.randn(B, T, 4, 2, 32, device="cuda", dtype=torch.bfloat16), R, b, backend="triton")
    assert compiled_variants() == before
