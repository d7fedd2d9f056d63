"""`fusedrnn bench` on the CPU: a tiny sweep writes its table, JSON, CSV and plot,
and a peer that cannot run here is reported with the reason, not dropped."""
import argparse
import json

import pytest

from fusedrnn.bench.run import add_arguments, run


def _args(tmp_path, *extra):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(["--out", str(tmp_path), "--splits", "16x2", "32x1", "--batch", "2", "--length", "8",
                              *extra])


@pytest.mark.parametrize("sweep", ["head", "batch"])
def test_cpu_sweep_writes_every_file(tmp_path, sweep):
    pytest.importorskip("matplotlib")
    rows = run(_args(tmp_path, "--providers", "torch", "torch_nn", "cudnn_fp16", "--dtypes", "float32",
                     "--sweep", sweep, "--passes", "fwd"))
    for suffix in ("json", "csv", "md", "png"):
        assert (tmp_path / f"bench-{sweep}.{suffix}").stat().st_size > 0
    timed = [r for r in rows if r["provider"] in ("torch", "torch_nn")]
    assert timed and all(r["median_ms"] > 0 for r in timed)
    cudnn = [r for r in rows if r["provider"] == "cudnn_fp16"]
    assert cudnn and all(r["median_ms"] is None and "unavailable" in r["note"] for r in cudnn)
    saved = json.loads((tmp_path / f"bench-{sweep}.json").read_text())
    assert saved["meta"]["sweep"] == sweep and len(saved["rows"]) == len(rows)


def test_cpu_defaults_are_small(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CPU defaults")
    args = _args(tmp_path)
    args.splits = args.batch = args.length = None
    from fusedrnn.bench.run import CPU_DEFAULTS, resolve_defaults

    resolve_defaults(args)
    assert args.providers == CPU_DEFAULTS["providers"] and args.length == CPU_DEFAULTS["length"]


# --- the flashrnn provider against a fake `flashrnn` module (flashrnn is not installed
# here): the adapter must call the API flashrnn's README documents,
#   states, last_states = flashrnn(Wx, R, b, states=states_initial, function=..., backend="cuda_fused")
# Wx [B, T, G, N, D], R [G, N, D, D], b [G, N, D], states_initial [S, B, 1, N, D]

import sys  # noqa: E402
import types  # noqa: E402

import torch  # noqa: E402

from fusedrnn.bench import providers  # noqa: E402
from fusedrnn.bench.harness import measure  # noqa: E402
from fusedrnn.bench.providers import PROVIDERS, Case, Unavailable, unavailable_reason  # noqa: E402
from fusedrnn.cells import get_cell  # noqa: E402


def _fake_flashrnn(monkeypatch, with_dtype=True, initial_step=True):
    """Install a fake `flashrnn` package whose `flashrnn` records each call and
    returns the documented shapes: states [S, B, T+1, N, D] (initial_step) or
    [S, B, T, N, D], last states [S, B, N, D]; differentiable in Wx, R and b."""
    calls = []

    def respond(Wx, R, b, states):
        B, T, G, N, D = Wx.shape
        h = torch.tanh(Wx.sum(2) + R.sum((0, 3))[None, None] + b.sum(0)[None, None])  # [B, T, N, D]
        sequence = h[None].expand(states.shape[0], B, T, N, D)
        if initial_step:
            sequence = torch.cat([states.to(h.dtype), sequence], dim=2)
        return sequence, sequence[:, :, -1]

    if with_dtype:
        def flashrnn(Wx, R, b, states=None, function="lstm", backend="cuda_fused", dtype="bfloat16"):
            calls.append(dict(Wx=Wx, R=R, b=b, states=states, function=function, backend=backend, dtype=dtype))
            return respond(Wx, R, b, states)
    else:
        def flashrnn(Wx, R, b, states=None, function="lstm", backend="cuda_fused"):
            calls.append(dict(Wx=Wx, R=R, b=b, states=states, function=function, backend=backend))
            return respond(Wx, R, b, states)

    module = types.ModuleType("flashrnn")
    module.flashrnn = flashrnn
    monkeypatch.setitem(sys.modules, "flashrnn", module)
    monkeypatch.setattr(providers, "_has_cuda", lambda: True)  # the fake runs on the CPU tensors
    return calls


@pytest.mark.parametrize("cell, function", [("lstm", "lstm"), ("gru", "gru"), ("elman", "elman"), ("slstm", "slstm")])
def test_flashrnn_adapter_passes_the_documented_call(monkeypatch, cell, function):
    calls = _fake_flashrnn(monkeypatch)
    B, T, NH, DH = 2, 5, 3, 4
    out = PROVIDERS["flashrnn"](Case(cell, torch.bfloat16, B, T, NH, DH, False, "cpu"))()
    (call,) = calls
    spec = get_cell(cell)
    assert call["function"] == function and call["backend"] == "cuda_fused" and call["dtype"] == "bfloat16"
    assert call["Wx"].shape == (B, T, spec.gates_x, NH, DH)
    assert call["R"].shape == (spec.gates_r, NH, DH, DH)
    assert call["b"].shape == (spec.gates_b, NH, DH)
    assert call["states"].shape == (len(spec.state_names), B, 1, NH, DH) and not call["states"].any()
    assert all(call[k].dtype == torch.bfloat16 and call[k].device.type == "cpu" for k in ("Wx", "R", "b", "states"))
    assert out.shape == (B, T, NH, DH)  # h, the initial step left out


def test_flashrnn_lstm_is_the_readme_example(monkeypatch):
    calls = _fake_flashrnn(monkeypatch)
    PROVIDERS["flashrnn"](Case("lstm", torch.bfloat16, 8, 16, 3, 32, False, "cpu"))()
    (call,) = calls
    G, S = 4, 2  # the README's LSTM: 4 gates, states h and c
    assert call["Wx"].shape == (8, 16, G, 3, 32) and call["R"].shape == (G, 3, 32, 32)
    assert call["b"].shape == (G, 3, 32) and call["states"].shape == (S, 8, 1, 3, 32)


@pytest.mark.parametrize("initial_step", [True, False])
def test_flashrnn_forward_backward(monkeypatch, initial_step):
    """The gradients of h over the sequence with respect to Wx, R and b, whether
    the returned states count the initial one as a step or not."""
    calls = _fake_flashrnn(monkeypatch, initial_step=initial_step)
    B, T, NH, DH = 2, 3, 2, 4
    grads = PROVIDERS["flashrnn"](Case("lstm", torch.float32, B, T, NH, DH, True, "cpu"))()
    (call,) = calls
    assert call["dtype"] == "float32"
    assert [g.shape for g in grads] == [call["Wx"].shape, call["R"].shape, call["b"].shape]
    assert all(torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)


def test_flashrnn_without_a_dtype_parameter(monkeypatch):
    """The README's call has no dtype argument: where the function takes none,
    the adapter passes none (the tensors carry the dtype)."""
    calls = _fake_flashrnn(monkeypatch, with_dtype=False)
    PROVIDERS["flashrnn"](Case("gru", torch.float16, 1, 2, 1, 8, False, "cpu"))()
    (call,) = calls
    assert call["function"] == "gru" and call["Wx"].dtype == torch.float16 and "dtype" not in call


def test_flashrnn_timed_through_the_harness(monkeypatch):
    calls = _fake_flashrnn(monkeypatch)
    m = measure("flashrnn", Case("slstm", torch.float32, 2, 4, 2, 8, True, "cpu"))
    assert m.note == "" and m.median_ms > 0 and m.first_call_s > 0
    assert len(calls) == 7 and all(c["function"] == "slstm" for c in calls)  # first call, warm-up, 5 timed


def test_flashrnn_refusals(monkeypatch):
    case = Case("lstm", torch.bfloat16, 1, 2, 1, 8, False, "cpu")
    monkeypatch.setitem(sys.modules, "flashrnn", None)  # `import flashrnn` raises ImportError
    with pytest.raises(Unavailable, match="flashrnn not importable: ModuleNotFoundError"):
        PROVIDERS["flashrnn"](case)
    assert unavailable_reason("flashrnn").startswith("flashrnn not importable")
    assert "flashrnn not importable" in measure("flashrnn", case).note

    _fake_flashrnn(monkeypatch)
    monkeypatch.setattr(providers, "_has_cuda", lambda: False)
    with pytest.raises(Unavailable, match="flashrnn needs a CUDA GPU"):
        PROVIDERS["flashrnn"](case)
    assert unavailable_reason("flashrnn") == "flashrnn needs a CUDA GPU"

    monkeypatch.setattr(providers, "_has_cuda", lambda: True)
    assert unavailable_reason("flashrnn") is None
    with pytest.raises(Unavailable, match="flashrnn has no elman_relu"):
        PROVIDERS["flashrnn"](Case("elman_relu", torch.bfloat16, 1, 2, 1, 8, False, "cpu"))

    monkeypatch.setitem(sys.modules, "flashrnn", types.ModuleType("flashrnn"))  # importable, no function
    with pytest.raises(Unavailable, match="has no function flashrnn"):
        PROVIDERS["flashrnn"](case)


def test_bench_sweep_with_the_fake_flashrnn(tmp_path, monkeypatch):
    """A whole (CPU) sweep with flashrnn beside the torch loop: its rows are timed."""
    _fake_flashrnn(monkeypatch)
    rows = run(_args(tmp_path, "--providers", "torch", "flashrnn", "--dtypes", "float32", "--passes", "fwd"))
    flash = [r for r in rows if r["provider"] == "flashrnn"]
    assert len(flash) == 2 and all(r["median_ms"] > 0 and r["note"] == "" for r in flash)


def test_plan_rows_beside_the_providers(tmp_path):
    """--plan FWD/BWD adds a cuda_fused row a plan spec, each reported (here: no GPU), never dropped;
    a bad spec is an argparse error naming the option."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("the CPU report of a GPU-only provider")
    rows = run(_args(tmp_path, "--providers", "torch", "--dtypes", "float32", "--passes", "fwd",
                     "--plan", "one_sm/cluster", "auto/grid", "one_sm/cluster"))
    planned = [r for r in rows if r["provider"].startswith("cuda_fused:")]
    assert sorted({r["provider"] for r in planned}) == ["cuda_fused:auto/grid", "cuda_fused:one_sm/cluster"]
    assert all(r["median_ms"] is None and "unavailable" in r["note"] for r in planned)
    with pytest.raises(SystemExit):
        _args(tmp_path, "--plan", "one_sm")
