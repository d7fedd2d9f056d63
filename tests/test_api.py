"""The public contract of fusedrnn.rnn: shapes, errors, backends, autocast, compile."""
import pytest
import torch

import fusedrnn
from reference import random_problem, reference_rnn


def _lstm(B=2, T=3, NH=2, DH=4, dtype=torch.float32):
    return random_problem("lstm", B, T, NH, DH, dtype=dtype)


def test_shapes_and_dtypes():
    x, R, b, s = _lstm(B=3, T=5, NH=2, DH=4)
    y, final = fusedrnn.rnn(x, R, b, s)
    assert y.shape == (3, 5, 2, 4) and final.shape == (2, 3, 2, 4)
    assert y.dtype == final.dtype == torch.float32


def test_backends_report():
    report = fusedrnn.backends()
    assert "torch" in report
    info = report["torch"]
    assert info.name == "torch" and info.available is True and isinstance(info.reason, str)
    for name, info in report.items():
        assert info.name == name and isinstance(info.available, bool)
        if not info.available:
            assert info.reason, f"{name} is unavailable without a reason"


@pytest.mark.parametrize(
    "change, error, words",
    [
        (dict(cell="lsmt"), ValueError, ["cell", "lstm", "lsmt"]),
        (dict(backend="cudnn"), ValueError, ["backend", "cudnn"]),
        (dict(backend=3), TypeError, ["backend"]),
        (dict(x="not a tensor"), TypeError, ["x", "str"]),
        (dict(x=torch.zeros(2, 3, 4, 2)), ValueError, ["x", "5 dims"]),
        (dict(x=torch.zeros(2, 3, 3, 2, 4)), ValueError, ["x", "Gx=4", "3"]),
        (dict(x=torch.zeros(2, 3, 4, 2, 4, dtype=torch.int64)), TypeError, ["x", "int64"]),
        (dict(x=torch.zeros(2, 0, 4, 2, 4)), ValueError, ["x", ">= 1"]),
        (dict(R=torch.zeros(4, 2, 4, 5)), ValueError, ["R", "(4, 2, 4, 4)", "(4, 2, 4, 5)"]),
        (dict(R=torch.zeros(4, 2, 4)), ValueError, ["R", "4 dims"]),
        (dict(R=torch.zeros(4, 2, 4, 4, dtype=torch.float64)), TypeError, ["R", "float32", "float64"]),
        (dict(b=torch.zeros(3, 2, 4)), ValueError, ["b", "(4, 2, 4)", "(3, 2, 4)"]),
        (dict(b=torch.zeros(4, 2, 4, dtype=torch.float16)), TypeError, ["b", "float16"]),
        (dict(states=torch.zeros(1, 2, 2, 4)), ValueError, ["states", "(2, 2, 2, 4)", "(1, 2, 2, 4)"]),
        (dict(states=torch.zeros(2, 2, 2, 4, dtype=torch.float64)), TypeError, ["states", "float64"]),
        (dict(lengths=torch.tensor([1, 2, 3])), ValueError, ["lengths", "(2,)", "(3,)"]),
        (dict(lengths=torch.tensor([1, 2], dtype=torch.int32)), TypeError, ["lengths", "int64", "int32"]),
        (dict(lengths=torch.tensor([1, 4])), ValueError, ["lengths", "T=3", "4"]),
        (dict(lengths=torch.tensor([-1, 2])), ValueError, ["lengths", "-1"]),
    ],
)
def test_bad_input_names_the_argument(change, error, words):
    x, R, b, s = _lstm()
    args = dict(x=x, R=R, b=b, states=s, cell="lstm", backend="auto", lengths=None)
    args.update(change)
    with pytest.raises(error) as info:
        fusedrnn.rnn(args.pop("x"), args.pop("R"), args.pop("b"), args.pop("states"), **args)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_mixed_devices_raise():
    x, R, b, s = _lstm()
    with pytest.raises(ValueError, match="R: expected device cpu"):
        fusedrnn.rnn(x, R.to("meta"), b, s)


def test_explicit_backend_that_cannot_run_says_why():
    unavailable = [n for n, info in fusedrnn.backends().items() if not info.available]
    if not unavailable:
        pytest.skip("every backend is available here")
    x, R, b, s = _lstm()
    with pytest.raises(ValueError, match=f"backend='{unavailable[0]}' cannot run this call"):
        fusedrnn.rnn(x, R, b, s, backend=unavailable[0])


def test_auto_runs_on_cpu():
    x, R, b, s = _lstm(dtype=torch.float64)
    y, final = fusedrnn.rnn(x, R, b, s)
    y_ref, final_ref = reference_rnn("lstm", x, R, b, s)
    torch.testing.assert_close(y, y_ref)


def test_autocast_runs_in_the_autocast_dtype():
    x, R, b, s = _lstm()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, final = fusedrnn.rnn(x, R, b, s)
    assert y.dtype == torch.bfloat16
    y_ref, _ = reference_rnn("lstm", x, R, b, s)
    assert (y.double() - y_ref).abs().max() < 0.1


def test_no_grad_keeps_no_history():
    x, R, b, s = _lstm()
    x.requires_grad_()
    with torch.no_grad():
        y, _ = fusedrnn.rnn(x, R, b, s)
    assert not y.requires_grad


def test_torch_compile_fullgraph_matches_eager():
    x, R, b, s = _lstm(B=3, T=5, NH=2, DH=4)
    lengths = torch.tensor([5, 2, 4])

    def loss(x, R, b, s):
        y, final = fusedrnn.rnn(x * 1.5, R, b, s, cell="lstm", backend="torch", lengths=lengths)
        return (y * y).sum() + final.sum()

    compiled = torch.compile(loss, fullgraph=True)
    inputs = [t.clone().requires_grad_() for t in (x, R, b, s)]
    got = compiled(*inputs)
    got_grads = torch.autograd.grad(got, inputs)
    inputs = [t.clone().requires_grad_() for t in (x, R, b, s)]
    want = loss(*inputs)
    want_grads = torch.autograd.grad(want, inputs)
    torch.testing.assert_close(got, want)
    for g, w in zip(got_grads, want_grads):
        torch.testing.assert_close(g, w)


def test_custom_ops_pass_opcheck():
    x, R, b, s = _lstm(dtype=torch.float64)
    args = (x.requires_grad_(), R.requires_grad_(), b, s, torch.tensor([3, 1]), None, "lstm", True)
    torch.library.opcheck(torch.ops.fusedrnn.torch_fwd.default, args)


def test_custom_ops_are_pt2_compliant_and_refuse_a_backward_of_their_backward():
    """Tagged pt2-compliant (Dynamo runs them under only_allow_pt2_compliant_ops); a second
    backward through the ops themselves (torch.ops callers, a jit.trace) raises, naming the
    backward op, rather than skipping it silently."""
    assert torch.Tag.pt2_compliant_tag in torch.ops.fusedrnn.torch_fwd.default.tags
    assert torch.Tag.pt2_compliant_tag in torch.ops.fusedrnn.torch_bwd.default.tags
    x, R, b, s = _lstm(dtype=torch.float64)
    x, R = x.requires_grad_(), R.requires_grad_()
    y, _, _ = torch.ops.fusedrnn.torch_fwd(x, R, b, s, None, None, "lstm", True)
    dx, _ = torch.autograd.grad(y.sum(), (x, R), create_graph=True)
    with pytest.raises(NotImplementedError, match="fusedrnn::torch_bwd"):
        torch.autograd.grad(dx.sum(), (x, R))


def test_bare_import_reaches_the_modules():
    # the README's `import fusedrnn` then `fusedrnn.nn.LSTM(...)`, in a fresh interpreter
    import subprocess
    import sys

    code = "import fusedrnn; print(fusedrnn.nn.LSTM.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "LSTM", out.stderr[-2000:]


@pytest.mark.parametrize("bad", [[3, 4], [-1, 2]])
def test_lengths_out_of_range_raise_under_torch_compile(bad):
    x, R, b, s = _lstm()
    compiled = torch.compile(lambda x, lengths: fusedrnn.rnn(x, R, b, s, backend="torch", lengths=lengths)[0],
                             fullgraph=True)
    compiled(x, torch.tensor([3, 1]))  # T = 3: in range, compiles
    with pytest.raises(ValueError, match=r"lengths: expected values in \[0, T=3\]"):
        compiled(x, torch.tensor(bad))
    with pytest.raises(ValueError, match=r"lengths: expected values in \[0, T=3\]"):
        fusedrnn.rnn(x, R, b, s, backend="torch", lengths=torch.tensor(bad))
