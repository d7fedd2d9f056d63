"""The host side of the cuda_alternating backend on CPU: its step loop, chunks,
GEMMs, lengths and resets handling, saving and backward orchestration, run with
the step kernels' contract written in torch from the reference cells (no second
copy of the cell math) against the torch backend and the float64 references
(resets: tests/test_resets.py's); the chunk plan; the workspace cache;
supports(); the plan's `graphs` switch. (The kernels themselves: GPU tests in
test_cuda_alternating.py and test_cuda_alternating_resets.py; their NVRTC
compile: test_cuda_compile.py; their launch arguments against the PTX:
test_cuda_contract.py.)"""
import dataclasses
import functools

import pytest
import torch

import fusedrnn
from fusedrnn.backends import torch_loop
from fusedrnn.backends.cuda.alternating import loop as alternating
from fusedrnn.backends.cuda.alternating import supports
from fusedrnn.backends.cuda.alternating import workspace as workspaces
from fusedrnn.backends.cuda.alternating.plan import AlternatingPlan
from fusedrnn.backends.cuda.alternating.workspace import DONE, Shape
from fusedrnn.backends.step_graphs import chunk_plan, chunk_sizes
from fake_graphs import fake_graphs
from fusedrnn.ops.custom_op import explicit_recurrence
from reference import random_problem, reference_rnn
from test_resets import CELLS as RESET_CELLS
from test_resets import _custom_cell, check_kernel_resets, edge_resets, reference_with_resets  # noqa: F401 (the fixture)

CELLS = list(fusedrnn.CELLS)


class TorchPointwise:
    """What the staging and step kernels do (csrc/alternating_*.cuh), in torch."""

    def set_call(self, ws, call):
        self.call = call
        ws.call.zero_()

    def _steps(self, ws, chunk):
        done, T = int(ws.call[DONE]), self.call.steps
        return [T - 1 - done - k if ws.shape.backward else done + k for k in range(chunk)]

    def _resets(self, ws):
        """[B, T + 1] bool: the call's resets, none past the last step."""
        call = self.call
        none = torch.zeros(ws.shape.B, call.steps + 1, dtype=torch.bool)
        return none if call.resets is None else torch.cat([call.resets.bool(), none[:, :1]], 1)

    def stage(self, ws, chunk):
        s, spec, call = ws.shape, fusedrnn.CELLS[ws.shape.cell], self.call
        steps = self._steps(ws, chunk)
        ws.chunk_view("x_chunk", (chunk, s.B, spec.gates_x, s.NH, s.DH)).copy_(call.x[:, steps].transpose(0, 1))
        resets = self._resets(ws)  # [k][b]: the step after position k's starts afresh
        ws.chunk_view("reset_chunk", (chunk, s.B)).copy_(resets[:, [t + 1 for t in steps]].t())
        if not s.backward:
            return
        ws.chunk_view("dy_chunk", (chunk, s.B, s.NH, s.DH)).copy_(call.dy[:, steps].transpose(0, 1))
        if call.saved_in is not None:
            ws.chunk_view("saved_chunk", (chunk, *call.saved_in.shape[1:])).copy_(call.saved_in[steps])
        h0 = call.initial[0][:, None]
        h_prev = torch.cat([h0, call.y_in[:, :-1]], 1)  # [B, T, NH, DH]
        h_prev = torch.where(resets[:, :-1, None, None], h0, h_prev)[:, steps]
        ws.chunk_view("h_chunk", (s.NH, chunk, s.B, s.DH)).copy_(h_prev.permute(2, 1, 0, 3))

    def step(self, ws, k, chunk):
        s, spec, call = ws.shape, fusedrnn.CELLS[ws.shape.cell], self.call
        t = self._steps(ws, chunk)[k]
        length = ws.lengths.view(s.B, 1, 1)
        # the step after this one starts from the initial states (inside the length)
        next_afresh = ws.chunk_view("reset_chunk", (chunk, s.B))[k].bool().view(s.B, 1, 1) & (t + 1 < length)
        x = ws.chunk_view("x_chunk", (chunk, s.B, spec.gates_x, s.NH, s.DH))[k].float()
        bias = ws.bias.float()
        if not s.backward:
            rec = ws.rec.view(s.NH, s.B, spec.gates_r, s.DH).permute(1, 2, 0, 3).float()
            states = list(ws.state.unbind(0))
            new = [torch.where(t < length, n, p) for n, p in zip(spec.forward(x, rec, bias, states), states)]
            call.y[:, t] = torch.where(t < length, new[0], 0.0)
            new = [torch.where(next_afresh, i.float(), n) for i, n in zip(call.initial, new)]
            ws.state.copy_(torch.stack(new))
            ws.h_operand.copy_(new[0].transpose(0, 1))
            if call.saved is not None:
                call.saved[t + 1] = torch.stack(new[1:])
            return
        d = list(ws.d_state.unbind(0))
        dh = torch.where(t + 1 < length, ws.dh.transpose(0, 1).float(), 0.0)
        # where the next step started afresh, what reached its entering states is the initial states'
        handed = [q + dh if i == 0 else q for i, q in enumerate(d)]
        ws.d_initial.add_(torch.stack([torch.where(next_afresh, q, 0.0) for q in handed]))
        d = [torch.where(next_afresh, 0.0, q) for q in handed]
        d[0] = d[0] + torch.where(t < length, ws.chunk_view("dy_chunk", (chunk, s.B, s.NH, s.DH))[k].float(), 0.0)
        h = ws.chunk_view("h_chunk", (s.NH, chunk, s.B, s.DH))[:, k].transpose(0, 1).float()
        saved = ws.chunk_view("saved_chunk", (chunk, spec.num_states - 1, s.B, s.NH, s.DH))[k].unbind(0)
        rec = ws.chunk_view("rec_chunk", (s.NH, chunk, s.B, spec.gates_r, s.DH))[:, k].permute(1, 2, 0, 3).float()
        dg = [torch.where(t < length, q, 0.0) for q in d]
        dx, drec, db, dprev = spec.backward(x, rec, bias, [h, *saved], dg)
        dx, drec, db = (torch.where(t < length[..., None], g, 0.0) for g in (dx, drec, db))  # zero_past_length
        call.dx[:, t] = dx
        if call.drec is not None:  # None where the gates are sums: dR reads dx
            call.drec.view(s.NH, s.B, call.steps, spec.gates_r, s.DH)[:, :, t] = drec.permute(2, 0, 1, 3)
        ws.drec_step.view(s.NH, s.B, spec.gates_r, s.DH).copy_(drec.permute(2, 0, 1, 3))
        ws.db_acc.add_(db)
        ws.d_state.copy_(torch.stack([torch.where(t < length, g, q) for g, q in zip(dprev, d)]))


@pytest.fixture(autouse=True)
def _fresh_workspaces(monkeypatch):
    monkeypatch.setattr(workspaces, "MAX_CHUNK", 8)  # T=37: chunks 8, 8, 8, 8, 4, 1
    workspaces.clear_workspaces()
    yield
    workspaces.clear_workspaces()


def _run(cell, inputs, lengths, dy, dfinal, backend, pointwise=None, resets=None, plan=None):
    x, R, b, s = inputs
    extra = {} if backend is torch_loop else dict(pointwise=pointwise or TorchPointwise(), plan=plan)
    y, final, saved = backend.forward(x, R, b, s, lengths, cell, True, resets=resets, **extra)
    grads = backend.backward(dy, dfinal, x, R, b, s, lengths, y, final, saved, cell, resets=resets, **extra)
    return [y, final, *grads]


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("lengths", [None, [37, 1, 20], [0, 37, 8]])
def test_loop_matches_torch_backend_and_reference(cell, lengths):
    B, T, NH, DH = 3, 37, 2, 5
    inputs = random_problem(cell, B, T, NH, DH, dtype=torch.float32)
    lengths = None if lengths is None else torch.tensor(lengths)
    dy = torch.randn(B, T, NH, DH)
    dfinal = torch.randn(fusedrnn.CELLS[cell].num_states, B, NH, DH)
    got = _run(cell, inputs, lengths, dy, dfinal, alternating)
    want = _run(cell, inputs, lengths, dy, dfinal, torch_loop)
    for name, g, w in zip(("y", "final", "dx", "dR", "db", "dstates"), got, want):
        assert torch.isfinite(g).all(), name
        torch.testing.assert_close(g, w, rtol=2e-4, atol=2e-5, msg=name)
    leaves = [t.double().requires_grad_() for t in inputs]
    y, final = reference_rnn(cell, *leaves, lengths=lengths)
    ref = torch.autograd.grad((y * dy.double()).sum() + (final * dfinal.double()).sum(), leaves)
    for name, g, r in zip(("y", "final", "dx", "dR", "db", "dstates"), got, [y, final, *ref]):
        torch.testing.assert_close(g.double(), r, rtol=1e-3, atol=1e-4, msg=name)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_loop_in_half_precision_stays_close(dtype):
    inputs = random_problem("lstm", 3, 11, 2, 8, dtype=dtype)
    dy, dfinal = torch.randn(3, 11, 2, 8, dtype=dtype), torch.randn(2, 3, 2, 8, dtype=dtype)
    got = _run("lstm", inputs, torch.tensor([11, 4, 9]), dy, dfinal, alternating)
    want = _run("lstm", inputs, torch.tensor([11, 4, 9]), dy, dfinal, torch_loop)
    for g, w in zip(got, want):
        assert g.dtype == dtype and torch.isfinite(g).all()
        torch.testing.assert_close(g.float(), w.float(), rtol=5e-2, atol=5e-2)


def test_carrying_final_equals_one_call():
    x, R, b, s = random_problem("slstm", 2, 23, 2, 4, dtype=torch.float32)
    pointwise = TorchPointwise()
    y, final, _ = alternating.forward(x, R, b, s, None, "slstm", False, pointwise=pointwise)
    y1, mid, _ = alternating.forward(x[:, :9], R, b, s, None, "slstm", False, pointwise=pointwise)
    y2, end, _ = alternating.forward(x[:, 9:], R, b, mid, None, "slstm", False, pointwise=pointwise)
    torch.testing.assert_close(torch.cat([y1, y2], 1), y)
    torch.testing.assert_close(end, final)

def test_replayed_chunks_equal_launched_ones(monkeypatch):
    """The graph path's control flow: a workspace's first call runs eagerly and
    captures every chunk size once, later calls (any T) only replay (a fake graph
    re-runs the captured chunk), and results do not change."""
    captured = fake_graphs(monkeypatch)
    x, R, b, s = random_problem("gru", 3, 37, 2, 5, dtype=torch.float32)
    dy, dfinal = torch.randn(3, 37, 2, 5), torch.randn(1, 3, 2, 5)
    pointwise = TorchPointwise()  # a graph bakes what it captured: the same object every call
    runs = [_run("gru", (x, R, b, s), None, dy, dfinal, alternating, pointwise) for _ in range(3)]
    assert sorted(captured) == [1, 1, 2, 2, 4, 4, 8, 8]  # forward and backward workspaces
    short = alternating.forward(x[:, :6], R, b, s, None, "gru", False, pointwise=pointwise)
    assert len(captured) == 8
    for run in runs[1:]:
        for got, first in zip(run, runs[0]):
            assert torch.equal(got, first)
    torch.testing.assert_close(short[0], runs[0][0][:, :6])
    # a plan with graphs off launches its chunks one by one: nothing captured or replayed
    replays = []
    for ws in workspaces._WORKSPACES.values():
        for chunk, graph in ws.steps.graphs.items():
            graph.replay = lambda chunk=chunk: replays.append(chunk)
    launched = alternating.forward(x, R, b, s, None, "gru", False, pointwise=pointwise,
                                   plan=AlternatingPlan(torch.float32, graphs=False))
    assert len(captured) == 8 and not replays
    assert torch.equal(launched[0], runs[0][0]) and torch.equal(launched[1], runs[0][1])


# ---------------------------------------------------------------- resets

def _edge_resets(B, T, lengths):
    """Random resets plus each case the loop may get wrong, for B=5, T=37, chunks of 8: step 0
    (the start it already is); two in a row, the second at a chunk's first step (its flag staged
    with the chunk before); the last valid step; t == length and past it (nothing changes);
    the last step."""
    resets = torch.rand(B, T) < 0.15
    resets[0, 0] = True
    resets[0, 7] = resets[0, 8] = True
    resets[1, 16] = resets[1, 17] = resets[1, 18] = True
    resets[:, T - 1] = True
    if lengths is not None:
        for b, length in enumerate(lengths.tolist()):
            resets[b, length - 1:length + 1] = True  # the last valid step, and t == length
    return resets[:, :T]


def _past(lengths, B, T):
    """[B, T] bool: the steps past each length (none without lengths)."""
    if lengths is None:
        return torch.zeros(B, T, dtype=torch.bool)
    return torch.arange(T)[None, :] >= lengths[:, None]


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("lengths", [None, [37, 1, 20, 0, 16]])
def test_loop_with_resets_matches_torch_backend_and_reference(cell, lengths):
    """y, final and every gradient of the loop with resets (and lengths, with NaN in x and dy past
    them), against the torch backend's and the float64 reference of tests/test_resets.py."""
    B, T, NH, DH = 5, 37, 2, 5
    x, R, b, s = random_problem(cell, B, T, NH, DH, dtype=torch.float32)
    lengths = None if lengths is None else torch.tensor(lengths)
    resets = _edge_resets(B, T, lengths)
    past = _past(lengths, B, T)
    dy = torch.randn(B, T, NH, DH).masked_fill(past[:, :, None, None], 0.0)  # y is 0 past a length: so is dy
    dfinal = torch.randn(fusedrnn.CELLS[cell].num_states, B, NH, DH)
    clean = x.masked_fill(past[:, :, None, None, None], 0.0)
    poisoned = x.masked_fill(past[:, :, None, None, None], float("nan"))
    got = _run(cell, (poisoned, R, b, s), lengths, dy.masked_fill(past[:, :, None, None], float("nan")), dfinal,
               alternating, resets=resets)
    want = _run(cell, (poisoned, R, b, s), lengths, dy, dfinal, torch_loop, resets=resets)
    names = ("y", "final", "dx", "dR", "db", "dstates")
    for name, g, w in zip(names, got, want):
        assert torch.isfinite(g).all(), name
        torch.testing.assert_close(g, w, rtol=2e-4, atol=2e-5, msg=name)
    leaves = [t.double().requires_grad_() for t in (clean, R, b, s)]
    y, final = reference_with_resets(cell, *leaves, lengths, resets)
    ref = torch.autograd.grad((y * dy.double()).sum() + (final * dfinal.double()).sum(), leaves)
    for name, g, r in zip(names, got, [y, final, *ref]):
        torch.testing.assert_close(g.double(), r, rtol=1e-3, atol=1e-4, msg=name)


def _loop_in_rnn_form(pointwise=None):
    """The loop, with the kernels' contract in torch, as a function of rnn's call form (states required)."""
    pointwise = pointwise or TorchPointwise()
    return explicit_recurrence("cuda_alternating", functools.partial(alternating.forward, pointwise=pointwise),
                               functools.partial(alternating.backward, pointwise=pointwise))


@pytest.mark.parametrize("with_lengths", [False, True])
@pytest.mark.parametrize("with_states", [False, True])
@pytest.mark.parametrize("cell", RESET_CELLS)
def test_loop_with_resets_by_the_rule(cell, with_states, with_lengths):
    """tests/test_resets.py's check of a kernel backend (its cells, a define_cell one included, its
    resets, NaN past the lengths), through the explicit path."""
    lengths = torch.tensor([9, 6, 0, 3, 8]) if with_lengths else None
    check_kernel_resets(_loop_in_rnn_form(), "cpu", cell, torch.float32, B=5, T=9, NH=2, DH=3,
                        with_states=with_states, lengths=lengths, explicit=True)


@pytest.mark.parametrize("T", [1, 2, 17])
def test_resets_at_the_edges_of_lengths_and_short_calls(T):
    """Deterministic edges: a reset at exactly t = lengths[b], at the last valid step, at step 1,
    a sequence of length 0, and calls of one or two steps (one chunk of 1 or 2)."""
    B = 6
    lengths = torch.tensor([T, max(T - 1, 0), 0, 1, T, max(T // 2, 1)])
    resets = edge_resets(lengths, T)
    check_kernel_resets(_loop_in_rnn_form(), "cpu", "lstm", torch.float32, B, T, 2, 4, lengths=lengths,
                        resets=resets, explicit=True)


def test_a_reset_at_step_t_equals_a_fresh_call_from_t():
    x, R, b, s = random_problem("slstm", 3, 21, 2, 4, dtype=torch.float32)
    resets = torch.zeros(3, 21, dtype=torch.bool)
    resets[:, 13] = True
    pointwise = TorchPointwise()
    y, final, _ = alternating.forward(x, R, b, s, None, "slstm", False, pointwise=pointwise, resets=resets)
    head, _, _ = alternating.forward(x[:, :13], R, b, s, None, "slstm", False, pointwise=pointwise)
    tail, end, _ = alternating.forward(x[:, 13:], R, b, s, None, "slstm", False, pointwise=pointwise)
    torch.testing.assert_close(y, torch.cat([head, tail], 1))
    torch.testing.assert_close(final, end)


def test_no_resets_and_all_false_resets_agree():
    inputs = random_problem("gru", 3, 19, 2, 5, dtype=torch.float32)
    lengths = torch.tensor([19, 4, 11])
    dy, dfinal = torch.randn(3, 19, 2, 5), torch.randn(1, 3, 2, 5)
    plain = _run("gru", inputs, lengths, dy, dfinal, alternating)
    none_set = _run("gru", inputs, lengths, dy, dfinal, alternating, resets=torch.zeros(3, 19, dtype=torch.bool))
    for name, a, b in zip(("y", "final", "dx", "dR", "db", "dstates"), plain, none_set):
        if name == "dR":  # without resets dR reads y one row behind (no copy of h): another order of sums
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
        else:
            assert torch.equal(a, b), name


@pytest.mark.parametrize("bad", [torch.zeros(3, 8, dtype=torch.bool), torch.zeros(3, 7, dtype=torch.uint8),
                                 torch.zeros(3, 7, dtype=torch.bool, device="meta")])
def test_bad_resets_raise_naming_resets(bad):
    """The explicit path skips rnn()'s checks: the loop checks the resets it hands the kernels."""
    x, R, b, s = random_problem("lstm", 3, 7, 2, 4, dtype=torch.float32)
    with pytest.raises(ValueError, match=r"resets: expected a torch.bool tensor of shape \(3, 7\)"):
        alternating.forward(x, R, b, s, None, "lstm", False, pointwise=TorchPointwise(), resets=bad)
    y = torch.zeros(3, 7, 2, 4)
    with pytest.raises(ValueError, match="resets"):
        alternating.backward(y, torch.zeros_like(s), x, R, b, s, None, y, s, torch.zeros(0), "lstm",
                             pointwise=TorchPointwise(), resets=bad)


def test_replays_read_each_calls_resets(monkeypatch):
    """A captured chunk reaches the resets through the call block: replays with other resets
    (and lengths) give what launches give (fake graphs re-run the captured chunk)."""
    fake_graphs(monkeypatch)
    inputs = random_problem("lstm", 3, 37, 2, 5, dtype=torch.float32)
    dy, dfinal = torch.randn(3, 37, 2, 5), torch.randn(2, 3, 2, 5)
    pointwise = TorchPointwise()
    runs = []
    for lengths in (None, torch.tensor([37, 12, 30]), None):
        resets = torch.rand(3, 37) < 0.2
        replayed = _run("lstm", inputs, lengths, dy, dfinal, alternating, pointwise, resets=resets)
        launched = _run("lstm", inputs, lengths, dy, dfinal, alternating, pointwise, resets=resets,
                        plan=AlternatingPlan(torch.float32, graphs=False))
        for a, b in zip(replayed, launched):
            assert torch.equal(a, b)
        runs.append(replayed)
    assert not torch.equal(runs[0][0], runs[2][0])  # other resets, other outputs
    assert all(ws.steps.warm for ws in workspaces._WORKSPACES.values())


def test_plan():
    from fusedrnn.backends.cuda.alternating.plan import fp32_products_supported, plan

    assert plan(torch.float32, torch.device("cpu")) == AlternatingPlan(torch.float32, graphs=True)
    # fp32 GEMM results from half inputs wherever torch can ask cuBLAS for them (not on the CPU)
    for dtype in (torch.float16, torch.bfloat16):
        product = torch.float32 if fp32_products_supported(torch.device("cpu")) else dtype
        assert plan(dtype, torch.device("cpu")) == AlternatingPlan(product)


@pytest.mark.parametrize("T, capacity, plan", [
    (1, 64, [1]), (37, 64, [32, 4, 1]), (64, 64, [64]), (1024, 64, [64] * 16), (130, 64, [64, 64, 2]),
    (37, 8, [8, 8, 8, 8, 4, 1]), (5, 1, [1] * 5), (0, 4, []),
])
def test_chunk_plan(T, capacity, plan):
    assert chunk_plan(T, capacity) == plan and sum(plan) == T


def test_chunk_sizes_cover_every_plan():
    for capacity in (1, 8, 64):
        assert all(set(chunk_plan(T, capacity)) <= set(chunk_sizes(capacity)) for T in range(300))
    assert chunk_sizes(8) == [8, 4, 2, 1]


def test_chunk_plan_rejects_a_capacity_not_a_power_of_two():
    with pytest.raises(ValueError, match="capacity"):
        chunk_plan(10, 6)


def _shape(**change):
    base = Shape(torch.device("cpu"), 0, False, "lstm", torch.float32, torch.float32, 3, 2, 8)
    return dataclasses.replace(base, **change)


def test_chunk_capacity_shrinks_with_large_steps(monkeypatch):
    monkeypatch.setattr(workspaces, "MAX_CHUNK", 64)
    assert workspaces.chunk_capacity(_shape()) == 64
    big = _shape(backward=True, B=64, NH=1, DH=4096)  # ~11 MiB a step
    capacity = workspaces.chunk_capacity(big)
    assert capacity & (capacity - 1) == 0 and capacity * workspaces.step_bytes(big) <= workspaces.CHUNK_BUDGET
    assert 2 * capacity * workspaces.step_bytes(big) > workspaces.CHUNK_BUDGET


def test_workspace_cache_keys_and_evicts(monkeypatch):
    first = workspaces.workspace(_shape())
    assert workspaces.workspace(_shape()) is first
    assert workspaces.workspace(_shape(backward=True)) is not first
    assert workspaces.workspace(_shape(stream=7)) is not first  # another stream, other buffers
    for B in range(4, 4 + workspaces.MAX_WORKSPACES):
        workspaces.workspace(_shape(B=B))
    assert len(workspaces._WORKSPACES) == workspaces.MAX_WORKSPACES and _shape() not in workspaces._WORKSPACES
    monkeypatch.setattr(workspaces, "WORKSPACE_BUDGET", 1)
    last = workspaces.workspace(_shape(B=99))
    assert list(workspaces._WORKSPACES.values()) == [last]  # the most recent stays, whatever its size


def test_a_workspace_a_caller_captured_is_never_evicted(monkeypatch):
    """A caller's own CUDA graph bakes the buffers of the workspace its capture used and may replay it
    any time: that workspace stays past every bound (streams and capture faked on the CPU)."""
    from fusedrnn.backends import step_graphs

    monkeypatch.setattr(workspaces, "_WORKSPACES", type(workspaces._WORKSPACES)())
    monkeypatch.setattr(step_graphs, "capturing", lambda device: True)
    captured = workspaces.workspace(_shape(B=3))
    monkeypatch.setattr(step_graphs, "capturing", lambda device: False)
    for B in range(4, 6 + workspaces.MAX_WORKSPACES):
        workspaces.workspace(_shape(B=B))
    assert captured.pinned and workspaces._WORKSPACES[_shape(B=3)] is captured
    assert len(workspaces._WORKSPACES) == workspaces.MAX_WORKSPACES + 1


def test_workspace_buffers_match_the_kernels_layouts():
    ws = workspaces.workspace(_shape(backward=True, cell="gru", product_dtype=torch.float16, dtype=torch.float16))
    assert ws.W.shape == (2, 8, 24) and ws.bias.shape == (4, 2, 8) and ws.db_acc.shape == (3, 4, 2, 8)
    assert ws.rec_chunk.numel() == 2 * ws.capacity * 3 * 24 and ws.rec_chunk.dtype == torch.float16
    assert ws.call.numel() == 12 and ws.call.dtype == torch.int64  # struct AlternatingCall
    assert ws.reset_chunk.shape == (ws.capacity * 3,) and ws.reset_chunk.dtype == torch.uint8
    assert ws.d_initial.shape == ws.d_state.shape == (1, 3, 2, 8) and ws.d_initial.dtype == torch.float32
    view = ws.chunk_view("h_chunk", (2, 3 * 3, 8))
    assert view.is_contiguous() and view.data_ptr() == ws.h_chunk.data_ptr()


def _problem(**change):
    base = fusedrnn.problem.Problem(fusedrnn.CELLS["lstm"], 2, 3, 1, 4096, torch.bfloat16, torch.device("cuda", 0),
                                    False, True)
    return dataclasses.replace(base, **change)


@pytest.mark.parametrize("change, words", [
    (dict(device=torch.device("cpu")), ["device cpu", "CUDA GPU"]),
    (dict(dtype=torch.float64), ["float64", "float16, bfloat16, float32"]),
    (dict(batch=2**20, heads=64), ["B * NH * DH", "2147483647"]),
])
def test_supports_names_the_limit(change, words, monkeypatch):
    from fusedrnn.backends.cuda.runtime import toolchain

    monkeypatch.setattr(toolchain, "capability", lambda index: (9, 0))  # a recent GPU: the call's own limit
    ok, why = supports(_problem(**change))
    assert not ok and all(w in why for w in words), why


def test_supports_resets(monkeypatch):
    from fusedrnn.backends.cuda.runtime import toolchain

    monkeypatch.setattr(toolchain, "capability", lambda index: (9, 0))
    assert supports(_problem(has_resets=True)) == (True, "")


def test_supports_any_head_size_on_a_recent_gpu(monkeypatch):
    from fusedrnn.backends.cuda.runtime import toolchain

    monkeypatch.setattr(toolchain, "capability", lambda index: (9, 0))
    assert supports(_problem()) == (True, "")
    monkeypatch.setattr(toolchain, "capability", lambda index: (7, 5))
    ok, why = supports(_problem())
    assert not ok and "(7, 5)" in why


def test_registered_below_the_fused_backends():
    from fusedrnn.ops import registry

    order = registry.names()
    assert order.index("cuda_fused") < order.index("triton") < order.index("cuda_alternating") < order.index("torch")
    if not torch.cuda.is_available():
        assert not fusedrnn.backends()["cuda_alternating"].available
