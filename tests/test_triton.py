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
from fusedrnn.cells import get_cell
from fusedrnn.testing import JUMP_SLACK, NAMES, SANITY, SLACK, MismatchError, random_problem
from kernel_check import check_backend
from reference import reference_rnn

CELLS = list(fusedrnn.CELLS)
triton_ok = fusedrnn.backends()["triton"].available
needs_triton = pytest.mark.skipif(not triton_ok, reason=fusedrnn.backends()["triton"].reason)


def _code_paths():
    from fusedrnn.backends.triton.variants import code_paths  # imports no triton

    return code_paths()


VARIANTS = _code_paths()  # the shipped kernels and every other code path of fusedrnn.backends.triton.variants


def check_variant(name, cell, dtype, B, T, NH, DH, device, with_lengths=True, with_states=True) -> dict:
    """check_backend's rule (fusedrnn.testing) for the Triton kernels run as variant `name`.

    "shipped" is the backend itself, checked by check_backend. Any other variant is
    no backend that fusedrnn.rnn (so check_backend) could name: its plans go to
    run_with_plans, and the rule is applied here as check_backend applies it, on
    inputs drawn in the same order."""
    if name == "shipped":
        return check_backend("triton", cell, dtype, B=B, T=T, NH=NH, DH=DH, device=device,
                             with_lengths=with_lengths, with_states=with_states)
    from fusedrnn.backends.triton.explicit import run_with_plans, variant_plans

    x, R, b, s = random_problem(cell, B, T, NH, DH, dtype=dtype, device=device, with_states=with_states)
    if s is None:
        s = torch.zeros(get_cell(cell).num_states, B, NH, DH, dtype=dtype, device=device)
    inputs = (x, R, b, s)
    lengths = None
    if with_lengths:
        lengths = torch.randint(1, T + 1, (B,), device=device)
        lengths[0] = T
    ref_leaves = [t.detach().double().requires_grad_() for t in inputs]
    y_ref, final_ref = reference_rnn(cell, *ref_leaves, lengths=lengths)
    seeds = [torch.randn_like(y_ref), torch.randn_like(final_ref)]
    if cell == "slstm" and dtype != torch.float32:  # as check_backend: no loss on the raw c, n, m in half types
        seeds[1][1:] = 0
    want = [y_ref, final_ref, *torch.autograd.grad((y_ref * seeds[0]).sum() + (final_ref * seeds[1]).sum(),
                                                   ref_leaves)]
    plans = variant_plans(x, cell, lengths, name)

    def results(run):
        leaves = [t.detach().clone().requires_grad_() for t in inputs]
        y, final = run(*leaves)
        loss = (y.double() * seeds[0]).sum() + (final.double() * seeds[1]).sum()
        return [y, final, *torch.autograd.grad(loss, leaves)]

    got = results(lambda *leaves: run_with_plans(*leaves, lengths, cell, *plans))
    baseline = results(lambda *leaves: fusedrnn.rnn(*leaves, cell=cell, backend="torch", lengths=lengths))
    report = {}
    for what, g, base, ref in zip(NAMES, got, baseline, want):
        if g.dtype != dtype or g.shape != ref.shape:
            raise MismatchError(f"{what}: expected {dtype} of shape {tuple(ref.shape)}, got {g.dtype} {tuple(g.shape)}")
        if not torch.isfinite(g).all():
            raise MismatchError(f"{what}: non-finite values (unwritten output?)")
        norm = ref.norm().item() or 1.0
        report[what] = err, err_torch = (g.double() - ref).norm().item() / norm, (base.double() - ref).norm().item() / norm
        slack = SLACK[dtype] + JUMP_SLACK.get(cell, {}).get(dtype, 0.0)
        if err > 2 * err_torch + slack or err > SANITY[dtype]:
            raise MismatchError(f"{what}: error {err:.3g} vs torch's {err_torch:.3g} (slack {slack:.3g}, "
                                f"sanity bound {SANITY[dtype]:.3g})")
    return report


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


def test_refuses_fp32_weights_that_do_not_fit_on_chip():
    problem = fusedrnn.problem.Problem(fusedrnn.CELLS["lstm"], 2, 3, 1, 128, torch.float32, torch.device("cuda"),
                                       False, False)
    ok, why = fusedrnn.api._backends.registry._BACKENDS["triton"].supports(problem)
    assert not ok and "KiB" in why


def test_refuses_with_reason():
    x = torch.randn(1, 2, 4, 1, 256, dtype=torch.float64)
    R = torch.randn(4, 1, 256, 256, dtype=torch.float64)
    b = torch.randn(4, 1, 256, dtype=torch.float64)
    with pytest.raises(ValueError, match="backend='triton' cannot run this call"):
        fusedrnn.rnn(x, R, b, backend="triton")


@pytest.mark.gpu
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("DH", [16, 32, 48, 64, 128])
def test_gpu_matches_reference(cell, dtype, DH):
    problem = fusedrnn.problem.Problem(fusedrnn.CELLS[cell], 5, 37, 3, DH, dtype, torch.device("cuda"), True, True)
    ok, why = fusedrnn.api._backends.registry._BACKENDS["triton"].supports(problem)
    if not ok:  # only fp32 weights too large for shared memory are refused
        assert dtype == torch.float32 and DH == 128 and "KiB" in why
        return
    check_backend("triton", cell, dtype, B=5, T=37, NH=3, DH=DH, device="cuda")


@pytest.mark.gpu
@pytest.mark.parametrize("name", [name for name in VARIANTS if name != "shipped"])
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("DH", [64, 128])
def test_gpu_variant_matches_reference(cell, DH, name):
    """The variants not shipped yet, in bf16 at the benchmark's head dims (scripts/triton_variants.py times them)."""
    check_variant(name, cell, torch.bfloat16, B=5, T=37, NH=3, DH=DH, device="cuda")


@pytest.mark.gpu
def test_gpu_torch_compile_fullgraph():
    x = torch.randn(3, 9, 4, 2, 32, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    R = (torch.randn(4, 2, 32, 32, device="cuda") / 6).bfloat16().requires_grad_()
    b = torch.zeros(4, 2, 32, device="cuda", dtype=torch.bfloat16, requires_grad=True)

    def f(x, R, b):
        y, final = fusedrnn.rnn(x, R, b, cell="lstm", backend="triton")
        return y.float().square().sum() + final.float().sum()

    got = torch.compile(f, fullgraph=True)(x, R, b)
    grads = torch.autograd.grad(got, (x, R, b))
    want = f(x, R, b)
    want_grads = torch.autograd.grad(want, (x, R, b))
    torch.testing.assert_close(got, want)
    for g, w in zip(grads, want_grads):
        torch.testing.assert_close(g, w)


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
