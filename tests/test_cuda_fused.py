"""The `cuda_fused` backend on the GPU against the float64 reference: every
cell x dtype x head size (non-powers of two included) at odd B and T, with
lengths and initial states; heads split over a cooperative grid and over a
thread-block cluster, each kernel family run through explicit plans (the
planner narrowed to it: kernel_check.fused_plans, planned.with_plans);
torch.compile; determinism; no recompiles. (On CPU: test_cuda_compile.py
compiles every shipped kernel, test_cuda_contract.py checks their parameters.)"""
import dataclasses
import math

import pytest
import torch

import fusedrnn
from fusedrnn.ops import registry
import fusedrnn.nn
from fusedrnn.backends.cuda.fused import cluster
from fusedrnn.backends.cuda.fused.cluster import choose_cluster, clusters_at_once, fit_to_compiler
from fusedrnn.backends.cuda.fused.cluster_backward import choose_cluster_backward
from fusedrnn.backends.cuda.fused.one_sm import fits_one_sm
from fusedrnn.backends.cuda.fused.plan import Plan
from fusedrnn.testing import random_problem
from kernel_check import check_backend, device_limits, fused_plans, fused_problem, planned

CELLS = list(fusedrnn.CELLS)
BACKEND = registry.get("cuda_fused")


def _needs_clusters():
    if torch.cuda.get_device_capability() < (9, 0):
        pytest.skip("thread-block clusters need sm_90")


def _plan_or_none(cell, dtype, B, T, NH, DH, direction, strategy):
    """The direction's plan on kernel family `strategy`, or None where that family cannot run it."""
    from fusedrnn.backends.cuda.fused.plan import plan

    try:
        return plan(fused_problem(cell, dtype, B, T, NH, DH), device_limits(), direction, strategy=strategy)
    except ValueError:
        return None


def _cluster_then_grid_backward(cell, dtype, B, T, NH, DH):
    """The backward on a cluster where one holds the head (half types), else on the grid."""
    chosen = _plan_or_none(cell, dtype, B, T, NH, DH, "backward", "cluster")
    return chosen or _plan_or_none(cell, dtype, B, T, NH, DH, "backward", "grid")


def _forward_plan(config, B, NH, why):
    """A forward plan of a hand-made cluster config, as the planner finishes one: fitted to the
    NVRTC in use where that can keep it out of local memory, with the sequences a cluster
    chosen for B on this GPU."""
    limits = device_limits()
    config = fit_to_compiler(config, limits) or config
    return Plan("forward", config.with_sequences(B, NH, clusters_at_once(config, limits)), why)


@pytest.mark.gpu
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("DH", [16, 24, 40, 48, 64, 96, 128, 144, 256])
def test_gpu_matches_reference(cell, dtype, DH):
    """The backend as fusedrnn.rnn runs it: the planner's own plans."""
    ok, why = BACKEND.supports(fused_problem(cell, dtype, 5, 37, 3, DH))
    if not ok:  # only fp32 heads whose R fits neither one SM nor a split are refused
        assert dtype == torch.float32 and DH > 64 and "KiB" in why, why
        return
    check_backend("cuda_fused", cell, dtype, B=5, T=37, NH=3, DH=DH, device="cuda")


@pytest.mark.gpu
@pytest.mark.parametrize("cell", ["lstm", "slstm"])
def test_gpu_wide_batch_no_initial_states(cell):
    check_backend("cuda_fused", cell, torch.bfloat16, B=35, T=11, NH=2, DH=64, device="cuda", with_states=False)


@pytest.mark.gpu
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("DH", [200, 256, 520])
@pytest.mark.parametrize("with_grads", [False, True])
def test_gpu_split_heads_match_reference(cell, dtype, DH, with_grads):
    """Heads split over the CTAs of a cooperative grid, forward and backward (also heads that
    would fit one SM: the grid is planned explicitly)."""
    try:
        plans = fused_plans(cell, dtype, 11, 29, 2, DH, forward="grid", backward="grid", with_grads=with_grads)
    except ValueError as error:  # fp32 R (4 bytes, no tensor cores) of the larger heads does not fit the GPU
        assert dtype == torch.float32 and DH > 256, error
        return
    assert all(p.strategy == "grid" for p in plans if p is not None)
    check_backend(planned(*plans), cell, dtype, B=11, T=29, NH=2, DH=DH, device="cuda", with_grads=with_grads)


@pytest.mark.gpu
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("DH", [200, 201, 256, 520, 768])
@pytest.mark.parametrize("with_grads", [False, True])
def test_gpu_cluster_heads_match_reference(cell, dtype, DH, with_grads):
    """Heads split over the CTAs of a thread-block cluster (sm_90): the forward exchanges h
    through DSMEM; the backward is the cluster's where it has a plan (half types, DH 200 to
    768 here), else the grid's, reading what the forward saved. DH 201: an odd head (R padded
    to even rows for the register fragments); 520: a cluster of 10 (non-portable, not a power
    of two) with whole CTAs of padding rows."""
    _needs_clusters()
    B, T, NH = 11, 29, 2
    forward = _plan_or_none(cell, dtype, B, T, NH, DH, "forward", "cluster")
    if forward is None:
        assert dtype == torch.float32 and DH > 256  # fp32 R of the larger heads fits no cluster
        return
    backward = _cluster_then_grid_backward(cell, dtype, B, T, NH, DH) if with_grads else None
    assert forward.strategy == "cluster" and (backward is not None or not with_grads)
    check_backend(planned(forward, backward), cell, dtype, B=B, T=T, NH=NH, DH=DH, device="cuda",
                  with_grads=with_grads)


@pytest.mark.gpu
@pytest.mark.parametrize("cell, B, T, NH, DH", [("lstm", 1, 1, 1, 768), ("lstm", 3, 2, 3, 256),
                                                ("slstm", 17, 13, 1, 384), ("gru", 5, 9, 1, 896),
                                                ("elman", 9, 40, 1, 1536)])
def test_gpu_cluster_odd_shapes(cell, B, T, NH, DH):
    """One step of one sequence, a batch over two tiles, the largest cluster heads of
    GRU (14 CTAs) and Elman, without initial states; forward only."""
    _needs_clusters()
    assert choose_cluster(cell, torch.bfloat16, DH, B, NH, device_limits()) is not None
    forward, _ = fused_plans(cell, torch.bfloat16, B, T, NH, DH, forward="cluster", with_grads=False)
    assert forward.strategy == "cluster"
    check_backend(planned(forward), cell, torch.bfloat16, B=B, T=T, NH=NH, DH=DH, device="cuda", with_states=False,
                  with_grads=False)


@pytest.mark.gpu
@pytest.mark.parametrize("cell, dtype, B, T, NH, DH", [("lstm", torch.bfloat16, 11, 29, 1, 768),
                                                       ("lstm", torch.bfloat16, 1, 1, 1, 768),
                                                       ("lstm", torch.bfloat16, 3, 2, 3, 256),
                                                       ("gru", torch.float16, 21, 9, 2, 520),
                                                       ("elman", torch.float32, 9, 17, 1, 201),
                                                       ("slstm", torch.bfloat16, 17, 13, 1, 384)])
@pytest.mark.parametrize("per_source", [False, True])
@pytest.mark.parametrize("spread", [False, True])
def test_gpu_cluster_async_push_matches_reference(cell, dtype, B, T, NH, DH, per_source, spread):
    """The exchange of h by st.async and mbarriers (ClusterOptions::ASYNC_PUSH, csrc/cluster_options.cuh),
    with one barrier for all senders or one a sender (PER_SOURCE), the cell on the first K slice's warps
    or on every thread (SPREAD_CELLS, which also sends h warp by warp and runs the sequences a cluster
    that the launch picks), on the plan's shapes: K split, odd head, one step, two batch tiles, a
    cluster of 10, fp32."""
    _needs_clusters()
    chosen = choose_cluster(cell, dtype, DH, B, NH, device_limits())
    assert chosen is not None
    options = cluster.ASYNC_PUSH | (cluster.PER_SOURCE if per_source else 0) | (cluster.SPREAD_CELLS if spread else 0)
    forward = _forward_plan(dataclasses.replace(chosen, options=options, sequences=0), B, NH, "test: async push")
    assert forward.config.options == options
    check_backend(planned(forward), cell, dtype, B=B, T=T, NH=NH, DH=DH, device="cuda", with_grads=False)


@pytest.mark.gpu
@pytest.mark.parametrize("cell, dtype, B, NH, DH", [("lstm", torch.bfloat16, 11, 1, 768),
                                                   ("gru", torch.float16, 7, 2, 384),
                                                   ("slstm", torch.bfloat16, 13, 1, 256),
                                                   ("elman", torch.float32, 5, 1, 201)])
@pytest.mark.parametrize("sequences", [1, 3, 5, 8])
def test_gpu_cluster_fewer_sequences_match_reference(cell, dtype, B, NH, DH, sequences):
    """A cluster running fewer sequences than its batch tile (the spread cells' launch argument):
    the tile's other columns are padding nobody sends; the last cluster runs what is left of B
    (11 = 3 + 3 + 3 + 2, 5 + 5 + 1, ...); with lengths, and gradients through the saved states
    (the backward on a cluster where one holds the head, else the grid)."""
    _needs_clusters()
    T, limits = 19, device_limits()
    chosen = choose_cluster(cell, dtype, DH, B, NH, limits)
    assert chosen is not None and chosen.options & cluster.SPREAD_CELLS
    sequences = min(sequences, chosen.batch_tile)
    built = dataclasses.replace(chosen, elements=math.ceil(chosen.ROWS * sequences / chosen.threads))
    assert built.most_sequences >= sequences
    built = fit_to_compiler(built, limits) or built
    forward = Plan("forward", dataclasses.replace(built, sequences=sequences), "test: fewer sequences a cluster")
    with_grads = dtype != torch.float32
    backward = _cluster_then_grid_backward(cell, dtype, B, T, NH, DH) if with_grads else None
    check_backend(planned(forward, backward), cell, dtype, B=B, T=T, NH=NH, DH=DH, device="cuda",
                  with_lengths=True, with_grads=with_grads)


@pytest.mark.gpu
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("B, T, NH, DH", [(11, 29, 2, 201), (11, 29, 2, 256), (11, 29, 2, 768), (5, 17, 1, 384),
                                          (11, 29, 3, 64), (9, 21, 2, 100)])
def test_gpu_cluster_backward_matches_reference(cell, dtype, B, T, NH, DH):
    """The backward on a cluster (csrc/cluster_backward.cuh): every cell and half type; an odd
    head (scalar copies, padding units), clusters of 16 with R partly in registers, two batch
    tiles (the second part padding), heads that fit one SM (64, 100: padded to 128), lengths
    and initial states. The forward: one SM where the head fits, else a cluster."""
    _needs_clusters()
    limits = device_limits()
    one_sm = fits_one_sm(cell, dtype, DH, B, limits)
    if choose_cluster_backward(cell, dtype, DH, B, NH, limits) is None:
        # Elman heads that fit one SM keep the one-SM kernel (sLSTM 768 has a cluster: x in rh)
        assert one_sm and cell.startswith("elman")
        return
    plans = fused_plans(cell, dtype, B, T, NH, DH, forward="one_sm" if one_sm else "cluster", backward="cluster")
    assert plans[1].strategy == "cluster"
    check_backend(planned(*plans), cell, dtype, B=B, T=T, NH=NH, DH=DH, device="cuda", with_grads=True)


@pytest.mark.gpu
@pytest.mark.parametrize("cell, B, T, NH, DH", [("lstm", 1, 1, 1, 768), ("elman", 3, 7, 1, 1280),
                                                ("gru", 16, 33, 3, 512), ("slstm", 2, 2, 1, 256)])
def test_gpu_cluster_backward_odd_shapes(cell, B, T, NH, DH):
    """One step of one sequence; the largest Elman head; three heads of GRU; no initial states."""
    _needs_clusters()
    assert choose_cluster_backward(cell, torch.bfloat16, DH, B, NH, device_limits()) is not None
    plans = fused_plans(cell, torch.bfloat16, B, T, NH, DH, forward="cluster", backward="cluster")
    check_backend(planned(*plans), cell, torch.bfloat16, B=B, T=T, NH=NH, DH=DH, device="cuda", with_states=False)


@pytest.mark.gpu
@pytest.mark.parametrize("cell, NH, DH", [("lstm", 2, 256), ("slstm", 1, 768)])
def test_gpu_cluster_backward_a_few_tiles_a_launch(cell, NH, DH):
    """The backward in launches of a few tiles each (as with_sequences splits a call whose clusters
    run in waves: R h computed for each launch's sequences alone; sLSTM 768's x inside it): the
    reference's values, and the bits of one launch."""
    _needs_clusters()
    B, T = 21, 19  # three tiles, the last of 5 sequences
    forward, backward = fused_plans(cell, torch.bfloat16, B, T, NH, DH, forward="cluster", backward="cluster")
    assert backward.config.launch_tiles == 0  # one wave
    split = Plan("backward", dataclasses.replace(backward.config, launch_tiles=2), "two tiles, then one")
    check_backend(planned(forward, split), cell, torch.bfloat16, B=B, T=T, NH=NH, DH=DH, device="cuda")
    torch.manual_seed(0)
    x, R, b, states = random_problem(cell, B, T, NH, DH, dtype=torch.bfloat16, device="cuda")
    leaves = [t.requires_grad_() for t in (x, R, b, states)]
    grads = []
    for plans in ((forward, backward), (forward, split)):
        y, final = planned(*plans)(*leaves, cell=cell)
        grads.append(torch.autograd.grad(y.float().sum() + final.float().sum(), leaves))
    for one, split_grad in zip(*grads):
        assert torch.equal(one, split_grad)


def _lstm_inputs(B, T, NH, DH):
    x = torch.randn(B, T, 4, NH, DH, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    R = (torch.randn(4, NH, DH, DH, device="cuda") / DH**0.5).bfloat16().requires_grad_()
    b = torch.randn(4, NH, DH, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    states = torch.zeros(2, B, NH, DH, device="cuda", dtype=torch.bfloat16)
    return x, R, b, states


@pytest.mark.gpu
def test_gpu_cluster_backward_is_deterministic():
    """Two runs, the same bits: every dh is summed over the cluster in rank order."""
    _needs_clusters()
    torch.manual_seed(0)
    B, T, NH, DH = 13, 50, 1, 768
    run = planned(*fused_plans("lstm", torch.bfloat16, B, T, NH, DH, forward="cluster", backward="cluster"))
    x, R, b, states = _lstm_inputs(B, T, NH, DH)
    dy = torch.randn(B, T, NH, DH, device="cuda", dtype=torch.bfloat16)
    runs = []
    for _ in range(2):
        y, _ = run(x, R, b, states, cell="lstm")
        runs.append(torch.autograd.grad(y, (x, R, b), dy))
    for first, second in zip(*runs):
        assert torch.equal(first, second)


@pytest.mark.gpu
def test_gpu_cluster_two_column_tiles():
    """Batch tiles of 16 (two column tiles a warp), which the plan takes for many clusters."""
    _needs_clusters()
    limits = device_limits()
    wide = next(c for c in cluster.cluster_configs("lstm", torch.bfloat16, 256, 8, True,
                                                   limits.shared_memory_per_block) if c.NT == 2)
    forward = _forward_plan(wide, 21, 2, "test: two column tiles")
    assert forward.config.NT == 2
    check_backend(planned(forward), "lstm", torch.bfloat16, B=21, T=9, NH=2, DH=256, device="cuda", with_grads=False)


@pytest.mark.gpu
def test_gpu_cluster_is_the_default_split_on_hopper(tmp_path, monkeypatch):
    """By default (no tuned winner) a split head runs on a cluster where the NVRTC in use
    compiles the plan without local memory (always at 256x3; at 768x1 it depends on the
    NVRTC version) and the sequence is long enough, on the grid elsewhere."""
    from fusedrnn.backends.cuda.fused.plan import CLUSTER_MIN_STEPS, plan

    _needs_clusters()
    monkeypatch.setenv("FUSEDRNN_CACHE_DIR", str(tmp_path))  # no tuned winners: the rules
    limits = device_limits()
    for DH, NH in ((768, 1), (256, 3)):
        fitted = fit_to_compiler(choose_cluster("lstm", torch.bfloat16, DH, 16, NH, limits), limits)
        chosen = plan(fused_problem("lstm", torch.bfloat16, 16, 64, NH, DH), limits, "forward")
        if fitted is None:
            assert chosen.strategy == "grid", DH
        else:
            assert chosen.config == fitted.with_sequences(16, NH, clusters_at_once(fitted, limits)), DH
        # a few steps (decoding) stay on the grid: the cluster's longer load of R is not repaid
        short = plan(fused_problem("lstm", torch.bfloat16, 16, CLUSTER_MIN_STEPS - 1, NH, DH), limits, "forward")
        assert short.strategy == "grid", DH
        if DH == 256:
            assert fitted is not None and fitted.parts <= 8 and fitted.shared_tiles == 0


@pytest.mark.gpu
@pytest.mark.parametrize("dtype, DH, words", [(torch.bfloat16, 4096, ["DH=4096", "2048"]),
                                              (torch.float32, 2048, ["DH=2048", "split over CTAs"])])
def test_gpu_refuses_heads_too_large_even_split(dtype, DH, words):
    ok, why = BACKEND.supports(fused_problem("lstm", dtype, 16, 10, 1, DH))
    assert not ok and all(w in why for w in words), why


@pytest.mark.gpu
@pytest.mark.parametrize("DH, strategy", [(64, None), (256, "grid"), (256, "cluster"), (768, "cluster")])
def test_gpu_two_runs_bitwise_identical(DH, strategy):
    """One SM a head (the backend as fusedrnn.rnn runs it); a head split over a cooperative
    grid or a cluster (planned explicitly)."""
    if strategy == "cluster":
        _needs_clusters()
    NH = 3 if DH <= 256 else 1  # the grid backward of a 768 head takes most SMs
    B, T = 7, 33
    if strategy is None:
        run = lambda *a, **k: fusedrnn.rnn(*a, backend="cuda_fused", **k)  # noqa: E731
    else:
        plans = fused_plans("lstm", torch.bfloat16, B, T, NH, DH, forward=strategy, backward=strategy)
        assert all(p.strategy == strategy for p in plans)
        run = planned(*plans)
    x, R, b, states = _lstm_inputs(B, T, NH, DH)
    runs = []
    for _ in range(2):
        y, final = run(x, R, b, states, cell="lstm")
        grads = torch.autograd.grad(y.float().sum() + final.float().square().sum(), (x, R, b))
        runs.append((y, final, *grads))
    for first, second in zip(*runs):
        assert torch.equal(first, second)


@pytest.mark.gpu
def test_gpu_new_batch_and_length_do_not_recompile():
    from fusedrnn.backends.cuda.runtime import launch

    R = torch.randn(4, 2, 32, 32, device="cuda", dtype=torch.bfloat16)
    b = torch.zeros(4, 2, 32, device="cuda", dtype=torch.bfloat16)
    fusedrnn.rnn(torch.randn(16, 10, 4, 2, 32, device="cuda", dtype=torch.bfloat16), R, b, backend="cuda_fused")
    before = launch.load_kernel.cache_info().currsize
    for B, T in ((9, 33), (13, 100), (16, 7), (40, 3)):
        fusedrnn.rnn(torch.randn(B, T, 4, 2, 32, device="cuda", dtype=torch.bfloat16), R, b, backend="cuda_fused")
    assert launch.load_kernel.cache_info().currsize == before


@pytest.mark.gpu
def test_gpu_first_call_compiles_fast_and_cache_loads_faster(tmp_path, monkeypatch):
    """A new kernel: <= 5 s cold (NVRTC); from the disk cache in a fresh process
    (simulated by clearing the in-process cache): <= 50 ms."""
    import time

    from fusedrnn.backends.cuda.runtime import launch

    monkeypatch.setenv("FUSEDRNN_CACHE_DIR", str(tmp_path))
    x = torch.randn(3, 5, 3, 2, 40, device="cuda", dtype=torch.float16)  # GRU at DH 40: no other test's kernel
    R = torch.randn(3, 2, 40, 40, device="cuda", dtype=torch.float16) / 7
    b = torch.zeros(4, 2, 40, device="cuda", dtype=torch.float16)
    timings = []
    for _ in range(2):
        launch.load_kernel.cache_clear()
        torch.cuda.synchronize()
        start = time.perf_counter()
        fusedrnn.rnn(x, R, b, cell="gru", backend="cuda_fused")
        torch.cuda.synchronize()
        timings.append(time.perf_counter() - start)
    cold, warm = timings
    assert cold <= 5.0, timings
    assert warm <= 0.05, timings


@pytest.mark.gpu
@pytest.mark.parametrize("hidden, heads", [(256, 4), (512, 1)])  # one SM a head; one head split over CTAs (fp32 splits reach 640)
def test_gpu_nn_lstm_is_a_drop_in_for_cudnn(hidden, heads, monkeypatch):
    """fusedrnn.nn.LSTM loaded with a torch.nn.LSTM state dict (block-diagonal for
    heads > 1 is not torch's, so heads=1 is compared with cuDNN) trains on the
    cuda_fused backend: outputs and gradients close to cuDNN's in fp32."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # cuDNN in true fp32, as we are
    ours = fusedrnn.nn.LSTM(64, hidden, batch_first=True, num_heads=heads, backend="cuda_fused", device="cuda")
    inp = torch.randn(5, 23, 64, device="cuda")
    if heads == 1:
        reference = torch.nn.LSTM(64, hidden, batch_first=True, device="cuda")
        ours.load_state_dict(reference.state_dict())
    else:  # the torch backend of the same module is the reference
        reference = fusedrnn.nn.LSTM(64, hidden, batch_first=True, num_heads=heads, backend="torch", device="cuda")
        reference.load_state_dict(ours.state_dict())
    out, (h, c) = ours(inp)
    want, (h_want, c_want) = reference(inp)
    torch.testing.assert_close(out, want, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(c, c_want, atol=2e-5, rtol=1e-4)
    out.square().sum().backward()
    want.square().sum().backward()
    for (name, got), (_, expected) in zip(ours.named_parameters(), reference.named_parameters()):
        torch.testing.assert_close(got.grad, expected.grad, atol=1e-4, rtol=1e-3, msg=name)
