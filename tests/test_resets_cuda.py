"""`resets` on the cuda_fused kernels (issue 18), on a GPU: every kernel family, forward
and backward, against the float64 reference of tests/test_resets.py (y, final and the
gradients of x, R, b and the initial states, with lengths and NaN past them), each
family run on explicit plans built to read resets; and the public path."""
from __future__ import annotations

import pytest
import torch

import fusedrnn
from fusedrnn.ops import registry as backends
from fusedrnn.problem import problem_of
from fusedrnn.testing import random_problem
from kernel_check import fused_plans, planned
from test_resets import CELLS, CUSTOM, _custom_cell, check_kernel_resets, edge_resets  # noqa: F401 (the fixture)

pytestmark = pytest.mark.gpu
bf16, fp16, fp32 = torch.bfloat16, torch.float16, torch.float32


def _needs_gpu():
    if not torch.cuda.is_available() or not backends.get("cuda_fused").available:
        pytest.skip("cuda_fused needs a CUDA GPU and its toolchain")


@pytest.mark.parametrize("cell, dtype, B, T, NH, DH, forward, backward", [
    ("lstm", bf16, 11, 29, 2, 48, "one_sm", "one_sm"),
    ("gru", fp16, 11, 29, 2, 48, "one_sm", "one_sm"),
    (CUSTOM, bf16, 9, 23, 2, 40, "one_sm", "one_sm"),
    ("elman", fp32, 7, 19, 2, 200, "grid", "grid"),
    ("lstm", bf16, 9, 21, 2, 256, "grid", "grid"),
    ("slstm", bf16, 5, 21, 3, 64, "one_sm", "cluster"),
    ("lstm", bf16, 11, 29, 1, 768, "cluster", "cluster"),  # spread cells, R partly in shared memory
    ("slstm", bf16, 5, 17, 1, 768, "cluster", "cluster"),  # the backward with x in rh
    ("gru", bf16, 11, 19, 2, 201, "cluster", "cluster"),  # an odd head
    ("lstm", fp16, 11, 20, 2, 256, "cluster", "cluster"),
])
def test_every_kernel_family_runs_resets(cell, dtype, B, T, NH, DH, forward, backward):
    _needs_gpu()
    plans = fused_plans(cell, dtype, B, T, NH, DH, forward=forward, backward=backward, resets=True)
    assert all(p.config.resets for p in plans) and [p.strategy for p in plans] == [forward, backward]
    lengths = torch.randint(1, T + 1, (B,))
    lengths[0] = T
    check_kernel_resets(planned(*plans), "cuda", cell, dtype, B, T, NH, DH, lengths=lengths)


@pytest.mark.parametrize("cell", CELLS)
def test_rnn_runs_resets_on_cuda_fused(cell):
    _needs_gpu()
    run = lambda *a, **k: fusedrnn.rnn(*a, backend="cuda_fused", **k)  # noqa: E731
    check_kernel_resets(run, "cuda", cell, bf16, B=7, T=33, NH=3, DH=64, with_states=False)


def test_a_plan_without_resets_refuses_them():
    _needs_gpu()
    x, R, b, states = random_problem("lstm", 2, 20, 1, 64, dtype=bf16, device="cuda")
    plans = fused_plans("lstm", bf16, 2, 20, 1, 64)
    with pytest.raises(ValueError, match="resets"):
        planned(*plans)(x, R, b, states, cell="lstm", resets=torch.zeros(2, 20, dtype=torch.bool, device="cuda"))


def test_auto_takes_cuda_fused_for_resets():
    _needs_gpu()
    x, R, b, states = random_problem("lstm", 3, 20, 2, 64, dtype=bf16, device="cuda")
    resets = torch.zeros(3, 20, dtype=torch.bool, device="cuda")
    assert backends.get("cuda_fused").supports(problem_of(x, "lstm", None, True, resets)) == (True, "")


@pytest.mark.parametrize("T", [1, 2, 17])
def test_resets_at_the_edges_of_lengths_and_short_calls(T):
    """Deterministic edges: a reset at exactly t = lengths[b] (changes nothing), at the last valid
    step, a sequence of length 0, and calls of one or two steps (one SM and cluster plans)."""
    _needs_gpu()
    B = 6
    lengths = torch.tensor([T, max(T - 1, 0), 0, 1, T, max(T // 2, 1)])
    resets = edge_resets(lengths, T)
    for DH, NH, family in ((48, 2, "one_sm"), (256, 1, "cluster")):
        plans = fused_plans("lstm", bf16, B, T, NH, DH, forward=family, backward=family, resets=True)
        check_kernel_resets(planned(*plans), "cuda", "lstm", bf16, B, T, NH, DH, lengths=lengths, resets=resets)


def test_a_plan_built_for_resets_runs_a_call_without_them():
    _needs_gpu()
    x, R, b, states = random_problem("gru", 5, 20, 2, 48, dtype=bf16, device="cuda")
    with_resets = fused_plans("gru", bf16, 5, 20, 2, 48, resets=True)
    plain = fused_plans("gru", bf16, 5, 20, 2, 48)
    inputs = [t.clone().requires_grad_() for t in (x, R, b, states)]
    got = planned(*with_resets)(*inputs, cell="gru")
    got_grads = torch.autograd.grad(sum(t.float().sum() for t in got), inputs)
    inputs = [t.clone().requires_grad_() for t in (x, R, b, states)]
    want = planned(*plain)(*inputs, cell="gru")
    want_grads = torch.autograd.grad(sum(t.float().sum() for t in want), inputs)
    for g, w in zip((*got, *got_grads), (*want, *want_grads)):
        torch.testing.assert_close(g, w)  # the same arithmetic: only the reset tests differ
