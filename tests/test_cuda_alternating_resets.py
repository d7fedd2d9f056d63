"""`resets` on the cuda_alternating kernels, on a GPU: every cell (a define_cell one
included), fp32 and bf16 (fp16 in places), with lengths and NaN past them, against
the float64 reference of tests/test_resets.py (check_kernel_resets: y, final and the
gradients of x, R, b and the initial states, by fusedrnn.testing's rule); each check
after a warm-up call of the same shape with other resets, so that it replays the
captured graphs (which reach each call's resets through the call block); resets at
the chunks' edges; launched step by step; GEMM results in the storage type; auto's
choice. (CPU: the host loop with resets in test_cuda_alternating_host.py.)"""
from __future__ import annotations

import dataclasses

import pytest
import torch

import fusedrnn
from fusedrnn.backends.cuda.alternating.plan import AlternatingPlan
from fusedrnn.backends.cuda.alternating.plan import plan as alternating_plan
from fusedrnn.ops import registry as backends
from fusedrnn.problem import problem_of
from fusedrnn.testing import random_problem
from test_cuda_alternating import with_plan
from test_resets import CELLS, CUSTOM, _custom_cell, check_kernel_resets, edge_resets  # noqa: F401 (the fixture)

pytestmark = pytest.mark.gpu
BACKEND = "cuda_alternating"
bf16, fp16, fp32 = torch.bfloat16, torch.float16, torch.float32


def _needs_gpu():
    if not torch.cuda.is_available() or not backends.get(BACKEND).available:
        pytest.skip("cuda_alternating needs a CUDA GPU and its toolchain")


def _launched(dtype):
    """The default plan for `dtype`, launched step by step instead of replayed from graphs."""
    return dataclasses.replace(alternating_plan(dtype, torch.device("cuda")), graphs=False)


def _rnn(*args, **kwargs):
    return fusedrnn.rnn(*args, backend=BACKEND, **kwargs)


def _warm(run, cell, dtype, B, T, NH, DH):
    """A call of the same shape (other tensors, other resets, gradients too) before the checked
    one: a workspace's first call launches and captures, the checked call then replays."""
    leaves = [t.requires_grad_() for t in random_problem(cell, B, T, NH, DH, dtype=dtype, device="cuda")]
    resets = torch.rand(B, T, device="cuda") < 0.2
    y, final = run(*leaves, cell=cell, resets=resets)
    torch.autograd.grad(y.float().square().sum() + final.float().sum(), leaves)


def _lengths(B, T):
    """Every kind of length: the whole call, 0, 1, one short of T, and some in between."""
    lengths = torch.randint(1, T + 1, (B,))
    edges = torch.tensor([T, 0, 1, T - 1])[:B]
    lengths[:len(edges)] = edges
    return lengths


def _edge_resets(B, T, lengths):
    """Random resets plus: step 0 (the start it already is), two in a row, the last valid step,
    t == length (nothing changes) and past it, the last step."""
    resets = torch.rand(B, T) < 0.15
    resets[0, 0] = resets[0, T - 1] = True
    resets[1, 1] = resets[1, 2] = resets[1, 3] = True
    for b, length in enumerate(lengths.tolist()):
        resets[b, max(length - 1, 0):length + 1] = True
    return resets


@pytest.mark.parametrize("with_lengths", [False, True])
@pytest.mark.parametrize("dtype", [fp32, bf16])
@pytest.mark.parametrize("cell", CELLS)
def test_rnn_runs_resets_on_cuda_alternating(cell, dtype, with_lengths):
    # T=45: chunks of 32, 8, 4 and 1 steps
    _needs_gpu()
    B, T, NH, DH = 7, 45, 3, 48
    lengths = _lengths(B, T) if with_lengths else None
    resets = None if lengths is None else _edge_resets(B, T, lengths)
    _warm(_rnn, cell, dtype, B, T, NH, DH)
    check_kernel_resets(_rnn, "cuda", cell, dtype, B, T, NH, DH, lengths=lengths, resets=resets)


@pytest.mark.parametrize("cell", ["lstm", "gru", "slstm", CUSTOM])
def test_resets_without_initial_states(cell):
    _needs_gpu()
    _warm(_rnn, cell, bf16, 5, 21, 2, 64)
    check_kernel_resets(_rnn, "cuda", cell, bf16, 5, 21, 2, 64, with_states=False, lengths=_lengths(5, 21))


@pytest.mark.parametrize("cell, dtype, B, T, NH, DH", [
    ("lstm", fp16, 5, 23, 2, 40),
    ("gru", bf16, 3, 9, 1, 257),   # an odd head
    ("lstm", bf16, 3, 9, 1, 1024),  # one large head
    ("elman_relu", fp32, 9, 17, 4, 16),
])
def test_resets_at_other_shapes(cell, dtype, B, T, NH, DH):
    _needs_gpu()
    lengths = _lengths(B, T)
    _warm(_rnn, cell, dtype, B, T, NH, DH)
    check_kernel_resets(_rnn, "cuda", cell, dtype, B, T, NH, DH, lengths=lengths,
                        resets=_edge_resets(B, T, lengths))


@pytest.mark.parametrize("graphs", [True, False])
@pytest.mark.parametrize("cell", ["lstm", "gru", "slstm"])
def test_resets_at_the_chunks_edges(cell, graphs):
    """T=150: chunks of 64, 64, 16, 4 and 2 steps; resets on both sides of each edge (the
    flag of a chunk's first step is staged with the chunk before), replayed and launched."""
    _needs_gpu()
    B, T, NH, DH = 6, 150, 2, 64
    lengths = torch.tensor([150, 64, 65, 128, 129, 100])
    resets = torch.rand(B, T) < 0.02
    resets[:, [63, 64, 127, 128, 144, 148, 149]] = True
    run = _rnn if graphs else with_plan(_launched(bf16))
    if graphs:
        _warm(run, cell, bf16, B, T, NH, DH)
    check_kernel_resets(run, "cuda", cell, bf16, B, T, NH, DH, lengths=lengths, resets=resets, explicit=not graphs)


@pytest.mark.parametrize("T", [1, 2, 17, 65])
def test_resets_at_the_edges_of_lengths_and_short_calls(T):
    """Deterministic edges: a reset at exactly t = lengths[b] (changes nothing), at the last valid
    step, at step 1, a sequence of length 0, and calls of one or two steps."""
    _needs_gpu()
    B = 6
    lengths = torch.tensor([T, max(T - 1, 0), 0, 1, T, max(T // 2, 1)])
    resets = edge_resets(lengths, T)
    _warm(_rnn, "lstm", bf16, B, T, 2, 48)
    check_kernel_resets(_rnn, "cuda", "lstm", bf16, B, T, 2, 48, lengths=lengths, resets=resets)


@pytest.mark.parametrize("graphs", [False, True])
@pytest.mark.parametrize("cell, dtype", [(c, d) for c in ("lstm", "gru") for d in (fp16, bf16)])
def test_resets_with_storage_type_products(cell, dtype, graphs):
    """GEMM results in the storage type (the plan where torch cannot give fp32 ones)."""
    _needs_gpu()
    run = with_plan(AlternatingPlan(dtype, graphs=graphs))
    lengths = _lengths(5, 37)
    if graphs:
        _warm(run, cell, dtype, 5, 37, 3, 48)
    check_kernel_resets(run, "cuda", cell, dtype, 5, 37, 3, 48, lengths=lengths, resets=_edge_resets(5, 37, lengths),
                        explicit=True)


def test_replays_read_each_calls_resets():
    """The same inputs, other resets (and lengths) each call: every replay gives what a launch
    step by step gives for its own resets, and no two calls the same."""
    _needs_gpu()
    B, T, NH, DH = 5, 70, 2, 32
    leaves = [t.requires_grad_() for t in random_problem("lstm", B, T, NH, DH, dtype=fp32, device="cuda")]
    launched = with_plan(_launched(fp32))
    outputs = []
    for lengths in (None, torch.tensor([70, 3, 33, 0, 69], device="cuda"), None, None):
        resets = torch.rand(B, T, device="cuda") < 0.1
        runs = []
        for run in (_rnn, launched):
            y, final = run(*leaves, cell="lstm", lengths=lengths, resets=resets)
            grads = torch.autograd.grad(y.square().sum() + final.sum(), leaves)
            runs.append([y, final, *grads])
        for replayed, stepped in zip(*runs):
            torch.testing.assert_close(replayed, stepped, rtol=1e-5, atol=1e-6)
        outputs.append(runs[0][0])
    assert not torch.equal(outputs[2], outputs[3])


@pytest.mark.parametrize("cell", ["lstm", "slstm"])
def test_no_resets_and_all_false_resets_agree(cell):
    _needs_gpu()
    leaves = [t.requires_grad_() for t in random_problem(cell, 5, 40, 2, 64, dtype=bf16, device="cuda")]
    lengths = torch.tensor([40, 7, 0, 39, 20], device="cuda")
    results = []
    for resets in (None, torch.zeros(5, 40, dtype=torch.bool, device="cuda"), None):
        y, final = _rnn(*leaves, cell=cell, lengths=lengths, resets=resets)
        results.append([y, final, *torch.autograd.grad(y.float().square().sum() + final.float().sum(), leaves)])
    for name, plain, none_set in zip(("y", "final", "dx", "dR", "db", "dstates"), results[2], results[1]):
        if name == "dR":  # without resets dR reads y one row behind (no copy of h): another order of sums
            torch.testing.assert_close(plain, none_set, rtol=1e-2, atol=1e-3)
        else:
            assert torch.equal(plain, none_set), name  # both replays


def test_resets_under_torch_compile_fullgraph():
    _needs_gpu()
    x, R, b, states = random_problem("lstm", 3, 6, 2, 64, dtype=bf16, device="cuda")
    lengths = torch.tensor([6, 2, 5], device="cuda")
    resets = torch.rand(3, 6, device="cuda") < 0.35
    resets[0, 3] = True

    def loss(x, R, b, states, resets):
        y, final = _rnn(x * 1.5, R, b, states, lengths=lengths, resets=resets)
        return y.float().square().sum() + final.float().sum()

    compiled = torch.compile(loss, fullgraph=True)
    results = []
    for run in (compiled, compiled, loss):
        inputs = [t.clone().requires_grad_() for t in (x, R, b, states)]
        value = run(*inputs, resets)
        results.append([value, *torch.autograd.grad(value, inputs)])
    for got, want in zip(results[1], results[2]):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("B, NH, DH, needs_grad", [
    (256, 1, 768, False),  # large-batch inference of a head over one SM: not cuda_fused (plan.alternating_is_faster)
    (3, 2, 64, True),
    (2, 1, 4096, True),  # a head no fused backend runs
])
def test_supports_and_auto_with_resets(B, NH, DH, needs_grad):
    """cuda_alternating runs resets; auto's choice does not depend on them."""
    _needs_gpu()
    x = torch.empty(B, 16, 4, NH, DH, dtype=bf16, device="cuda")
    resets = torch.zeros(B, 16, dtype=torch.bool, device="cuda")
    with_resets, plain = problem_of(x, "lstm", None, needs_grad, resets), problem_of(x, "lstm", None, needs_grad)
    assert backends.get(BACKEND).supports(with_resets) == (True, "")
    chosen = backends.choose("auto", with_resets).name
    assert chosen == backends.choose("auto", plain).name
    if B == 256:
        assert chosen != "cuda_fused"
    if DH == 4096:
        assert chosen == BACKEND
