"""fusedrnn.nn modules against torch.nn with the same state dict, in float64."""
import itertools

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import fusedrnn.nn as fnn
from reference import reference_rnn

PAIRS = {
    "LSTM": (fnn.LSTM, torch.nn.LSTM, {}),
    "GRU": (fnn.GRU, torch.nn.GRU, {}),
    "RNN_tanh": (fnn.RNN, torch.nn.RNN, {"nonlinearity": "tanh"}),
    "RNN_relu": (fnn.RNN, torch.nn.RNN, {"nonlinearity": "relu"}),
}
TOL = dict(rtol=1e-10, atol=1e-10)
# "auto" on a CPU runs torch's own kernels for one head; "torch" runs fusedrnn.rnn's loop
BACKENDS = ["auto", "torch"]


def _pair(kind, backend="auto", **options):
    ours_cls, torch_cls, extra = PAIRS[kind]
    ref = torch_cls(5, 6, dtype=torch.float64, **extra, **options)
    ours = ours_cls(5, 6, dtype=torch.float64, **extra, **options, backend=backend)
    ours.load_state_dict(ref.state_dict())
    return ours, ref


def _hidden_tensors(hidden):
    return list(hidden) if isinstance(hidden, tuple) else [hidden]


def _make_hx(kind, layers, batch, hidden_size=6):
    shape = (layers,) + ((batch,) if batch else ()) + (hidden_size,)
    h = torch.randn(shape, dtype=torch.float64)
    return (h, torch.randn(shape, dtype=torch.float64)) if kind == "LSTM" else h


def _compare(ours, ref, make_input, hx):
    results = []
    for module in (ours, ref):
        inp, leaf = make_input()
        hx_leaf = None
        if hx is not None:
            hx_leaf = tuple(t.clone().requires_grad_() for t in _hidden_tensors(hx))
        out, hidden = module(inp, None if hx is None else (hx_leaf if len(hx_leaf) > 1 else hx_leaf[0]))
        data = out.data if hasattr(out, "batch_sizes") else out
        loss = (data * torch.linspace(-1, 1, data.numel(), dtype=data.dtype).view(data.shape)).sum()
        loss = loss + sum((h * h).sum() for h in _hidden_tensors(hidden))
        params = list(module.parameters())
        grads = torch.autograd.grad(loss, params + [leaf] + list(hx_leaf or ()), allow_unused=True)
        results.append((out, hidden, grads))
    (o1, h1, g1), (o2, h2, g2) = results
    if hasattr(o2, "batch_sizes"):
        assert torch.equal(o1.batch_sizes, o2.batch_sizes)
        for a, b in ((o1.sorted_indices, o2.sorted_indices), (o1.unsorted_indices, o2.unsorted_indices)):
            assert (a is None and b is None) or torch.equal(a, b)
        o1, o2 = o1.data, o2.data
    torch.testing.assert_close(o1, o2, **TOL)
    assert type(h1) is type(h2)
    for a, b in zip(_hidden_tensors(h1), _hidden_tensors(h2)):
        torch.testing.assert_close(a, b, **TOL)
    names = [n for n, _ in ours.named_parameters()] + ["input"] + ["hx"] * 2
    for name, a, b in zip(names, g1, g2):
        assert (a is None) == (b is None), name
        if a is not None:
            torch.testing.assert_close(a, b, **TOL, msg=lambda m: f"grad {name}: {m}")


OPTIONS = list(itertools.product(BACKENDS, PAIRS, [1, 2], [True, False], [False, True], [False, True]))


@pytest.mark.parametrize("backend, kind, layers, bias, batch_first, bidirectional", OPTIONS)
def test_parity_padded(backend, kind, layers, bias, batch_first, bidirectional):
    ours, ref = _pair(kind, backend, num_layers=layers, bias=bias, batch_first=batch_first,
                      bidirectional=bidirectional)
    x = torch.randn(3, 7, 5, dtype=torch.float64)
    x = x if batch_first else x.transpose(0, 1).contiguous()
    hx = _make_hx(kind, layers * (2 if bidirectional else 1), 3)

    def make_input():
        leaf = x.clone().requires_grad_()
        return leaf, leaf

    _compare(ours, ref, make_input, hx)
    _compare(ours, ref, make_input, None)


@pytest.mark.parametrize("backend, kind, bidirectional, enforce_sorted",
                         list(itertools.product(BACKENDS, PAIRS, [False, True], [False, True])))
def test_parity_packed(backend, kind, bidirectional, enforce_sorted):
    ours, ref = _pair(kind, backend, num_layers=2, bidirectional=bidirectional, batch_first=True)
    lengths = torch.tensor([9, 7, 7, 2]) if enforce_sorted else torch.tensor([4, 9, 1, 6])
    x = torch.randn(4, 9, 5, dtype=torch.float64)
    hx = _make_hx(kind, 2 * (2 if bidirectional else 1), 4)

    def make_input():
        leaf = x.clone().requires_grad_()
        return pack_padded_sequence(leaf, lengths, batch_first=True, enforce_sorted=enforce_sorted), leaf

    _compare(ours, ref, make_input, hx)
    _compare(ours, ref, make_input, None)


@pytest.mark.parametrize("backend, kind, bidirectional", list(itertools.product(BACKENDS, PAIRS, [False, True])))
def test_parity_unbatched(backend, kind, bidirectional):
    ours, ref = _pair(kind, backend, num_layers=2, bidirectional=bidirectional)
    x = torch.randn(7, 5, dtype=torch.float64)
    hx = _make_hx(kind, 2 * (2 if bidirectional else 1), None)

    def make_input():
        leaf = x.clone().requires_grad_()
        return leaf, leaf

    _compare(ours, ref, make_input, hx)
    _compare(ours, ref, make_input, None)


@pytest.mark.parametrize("kind", PAIRS)
def test_parameters_match_torch(kind):
    ours, ref = _pair(kind, num_layers=2, bidirectional=True)
    ours_shapes = {n: p.shape for n, p in ours.named_parameters()}
    ref_shapes = {n: p.shape for n, p in ref.named_parameters()}
    assert ours_shapes == ref_shapes
    fresh = PAIRS[kind][0](5, 6, num_layers=2, bidirectional=True, **PAIRS[kind][2])
    bound = 1 / 6**0.5
    flat = torch.cat([p.detach().flatten() for p in fresh.parameters()])
    assert flat.abs().max() <= bound  # torch's init: uniform in +-1/sqrt(hidden_size)
    assert abs(flat.std() - bound / 3**0.5) < 0.1 * bound


@pytest.mark.parametrize("backend", BACKENDS)
def test_dropout_between_layers(backend):
    m = fnn.LSTM(5, 6, num_layers=2, dropout=1.0, dtype=torch.float64, backend=backend)
    x = torch.randn(7, 3, 5, dtype=torch.float64)
    m.train()
    out, _ = m(x)
    # dropout=1 zeroes the second layer's input: it sees only its biases
    layer2 = fnn.LSTM(12 // 2, 6, dtype=torch.float64, backend=backend)
    layer2.load_state_dict({k.replace("l1", "l0"): v for k, v in m.state_dict().items() if "l1" in k})
    want, _ = layer2(torch.zeros(7, 3, 6, dtype=torch.float64))
    torch.testing.assert_close(out, want, **TOL)
    m.eval()
    ref = torch.nn.LSTM(5, 6, num_layers=2, dropout=1.0, dtype=torch.float64)
    ref.load_state_dict(m.state_dict())
    ref.eval()
    torch.testing.assert_close(m(x)[0], ref(x)[0], **TOL)


def test_heads_equal_block_diagonal_torch_lstm():
    H, NH = 8, 2
    DH = H // NH
    ours = fnn.LSTM(5, H, num_heads=NH, dtype=torch.float64)
    assert ours.weight_hh_l0.shape == (4 * H, DH)
    ref = torch.nn.LSTM(5, H, dtype=torch.float64)
    state = dict(ours.state_dict())
    dense = torch.zeros(4 * H, H, dtype=torch.float64)
    w = state["weight_hh_l0"].view(4, NH, DH, DH)
    for g in range(4):
        for n in range(NH):
            dense[g * H + n * DH : g * H + (n + 1) * DH, n * DH : (n + 1) * DH] = w[g, n]
    state["weight_hh_l0"] = dense
    ref.load_state_dict(state)
    x = torch.randn(6, 3, 5, dtype=torch.float64)
    (o1, (h1, c1)), (o2, (h2, c2)) = ours(x), ref(x)
    for a, b in ((o1, o2), (h1, h2), (c1, c2)):
        torch.testing.assert_close(a, b, **TOL)


def test_slstm_module_matches_reference():
    H, NH = 8, 2
    m = fnn.SLSTM(5, H, num_heads=NH, batch_first=True, dtype=torch.float64)
    x = torch.randn(3, 6, 5, dtype=torch.float64)
    out, (h, c, n, mm) = m(x)
    gates = torch.nn.functional.linear(x, m.weight_ih_l0, m.bias_ih_l0).view(3, 6, 4, NH, H // NH)
    y_ref, final = reference_rnn(
        "slstm", gates, m.weight_hh_l0.view(4, NH, H // NH, H // NH), m.bias_hh_l0.view(4, NH, H // NH)
    )
    torch.testing.assert_close(out, y_ref.reshape(3, 6, H), **TOL)
    for got, want in zip((h, c, n, mm), final):
        torch.testing.assert_close(got[0], want.reshape(3, H), **TOL)


@pytest.mark.parametrize(
    "make, error, words",
    [
        (lambda: fnn.LSTM(5, 6, num_heads=4), ValueError, ["num_heads", "hidden_size=6", "4"]),
        (lambda: fnn.LSTM(0, 6), ValueError, ["input_size", "0"]),
        (lambda: fnn.GRU(5, 6, num_layers=0), ValueError, ["num_layers"]),
        (lambda: fnn.LSTM(5, 6, dropout=1.5), ValueError, ["dropout", "1.5"]),
        (lambda: fnn.RNN(5, 6, nonlinearity="gelu"), ValueError, ["nonlinearity", "gelu"]),
    ],
)
def test_constructor_errors(make, error, words):
    with pytest.raises(error) as info:
        make()
    for word in words:
        assert word in str(info.value)


def test_forward_errors():
    m = fnn.LSTM(5, 6)
    with pytest.raises(ValueError, match="input_size=5"):
        m(torch.randn(3, 2, 4))
    with pytest.raises(ValueError, match="2D .* or 3D"):
        m(torch.randn(3, 2, 4, 5))
    with pytest.raises(TypeError, match="input: expected dtype torch.float32"):
        m(torch.randn(3, 2, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="hx: expected state 'h' of shape \\(1, 2, 6\\)"):
        m(torch.randn(3, 2, 5), (torch.zeros(1, 3, 6), torch.zeros(1, 3, 6)))
    with pytest.raises(TypeError, match="hx: expected a tuple of 2"):
        m(torch.randn(3, 2, 5), torch.zeros(1, 2, 6))


def test_backend_option_is_used():
    m = fnn.LSTM(5, 6, backend="nonexistent")
    with pytest.raises(ValueError, match="backend"):
        m(torch.randn(3, 2, 5))


# -- the rest of torch.nn's surface ----------------------------------------------


def test_lstm_positional_order_is_torchs():
    ours = fnn.LSTM(4, 6, 2, True, True, 0.0, True, 3, None, torch.float64)
    ref = torch.nn.LSTM(4, 6, 2, True, True, 0.0, True, 3, None, torch.float64)
    assert (ours.proj_size, ours.batch_first, ours.bidirectional, ours.weight_hh_l0.dtype) == (3, True, True, torch.float64)
    assert {n: p.shape for n, p in ours.named_parameters()} == {n: p.shape for n, p in ref.named_parameters()}
    fnn.LSTM(4, 6, 1, True, False, 0.0, False, 0)  # torch's order, all positional
    gru, rnn = fnn.GRU(4, 6, 1, True, False, 0.0, False, "cpu"), fnn.RNN(4, 6, 1, "relu", True, False, 0.0, True)
    assert gru.weight_hh_l0.device.type == "cpu" and rnn.bidirectional and rnn.mode == "RNN_RELU"


@pytest.mark.parametrize("backend, bidirectional, packed", list(itertools.product(BACKENDS, [False, True], [False, True])))
def test_proj_size_matches_torch(backend, bidirectional, packed):
    ref = torch.nn.LSTM(5, 6, num_layers=2, bidirectional=bidirectional, proj_size=4, dtype=torch.float64,
                        batch_first=True)
    ours = fnn.LSTM(5, 6, num_layers=2, bidirectional=bidirectional, proj_size=4, dtype=torch.float64,
                    batch_first=True, backend=backend)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(3, 7, 5, dtype=torch.float64)
    x[1, 3:] = float("nan")  # padding past a length, when packed, never reaches anything
    lengths = torch.tensor([7, 3, 5])
    D = 2 if bidirectional else 1
    hx = (torch.randn(2 * D, 3, 4, dtype=torch.float64), torch.randn(2 * D, 3, 6, dtype=torch.float64))

    def make_input():
        leaf = (x if packed else torch.nan_to_num(x)).clone().requires_grad_()
        inp = pack_padded_sequence(leaf, lengths, batch_first=True, enforce_sorted=False) if packed else leaf
        return inp, leaf

    _compare(ours, ref, make_input, hx)
    out, (h, c) = ours(make_input()[0])
    assert (h.shape, c.shape) == ((2 * D, 3, 4), (2 * D, 3, 6))


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda: fnn.LSTM(5, 6, proj_size=6), ["proj_size", "hidden_size=6", "6"]),
        (lambda: fnn.LSTM(5, 6, proj_size=-1), ["proj_size", "-1"]),
        (lambda: fnn.LSTM(5, 6, proj_size=2, num_heads=2), ["num_heads", "proj_size"]),
        (lambda: fnn.LSTM(5, 6, proj_size=2, backend="triton"), ["backend", "proj_size", "triton"]),
    ],
)
def test_proj_size_errors(make, words):
    with pytest.raises(ValueError) as info:
        make()
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize("backend, heads, kind", list(itertools.product(BACKENDS, [1, 2], PAIRS)))
def test_empty_batch_returns_empty_outputs(backend, heads, kind):
    ours_cls, torch_cls, extra = PAIRS[kind]
    ours = ours_cls(5, 6, num_layers=2, bidirectional=True, num_heads=heads, backend=backend, **extra)
    ref = torch_cls(5, 6, num_layers=2, bidirectional=True, **extra)
    x = torch.randn(4, 0, 5, requires_grad=True)
    (out, hidden), (want, want_hidden) = ours(x), ref(x)
    assert out.shape == want.shape == (4, 0, 12)
    for a, b in zip(_hidden_tensors(hidden), _hidden_tensors(want_hidden)):
        assert a.shape == b.shape
    out.sum().backward()
    assert x.grad.shape == x.shape


@pytest.mark.parametrize("backend, heads", [("auto", 1), ("auto", 2), ("torch", 1)])
def test_meta_device_infers_shapes(backend, heads):
    ours = fnn.LSTM(5, 6, num_layers=2, bidirectional=True, num_heads=heads, backend=backend, device="meta")
    out, (h, c) = ours(torch.empty(7, 3, 5, device="meta"))
    assert out.device.type == "meta"
    assert (out.shape, h.shape, c.shape) == ((7, 3, 12), (4, 3, 6), (4, 3, 6))


@pytest.mark.parametrize("kind, proj", [("LSTM", 0), ("LSTM", 3), ("GRU", 0), ("RNN_relu", 0)])
def test_rnnbase_attributes_match_torch(kind, proj):
    ours_cls, torch_cls, extra = PAIRS[kind]
    options = dict(num_layers=2, bidirectional=True, **extra, **({"proj_size": proj} if proj else {}))
    ours, ref = ours_cls(5, 6, **options), torch_cls(5, 6, **options)
    assert ours.mode == ref.mode and ours.proj_size == ref.proj_size
    assert ours._flat_weights_names == ref._flat_weights_names
    assert [w.shape for w in ours._flat_weights] == [w.shape for w in ref._flat_weights]
    assert [[w.shape for w in ws] for ws in ours.all_weights] == [[w.shape for w in ws] for ws in ref.all_weights]
    assert all(w is getattr(ours, n) for w, n in zip(ours._flat_weights, ours._flat_weights_names))


@pytest.mark.parametrize("backend, heads", [("auto", 1), ("torch", 2)])
def test_jit_trace_replays_outputs_and_gradients(backend, heads):
    m = fnn.LSTM(5, 6, num_heads=heads, backend=backend)
    traced = torch.jit.trace(m, (torch.randn(7, 3, 5),))
    x = torch.randn(4, 2, 5)  # a new shape replays the same graph
    got, want = traced(x), m(x)
    for a, b in zip(torch.utils._pytree.tree_leaves(got), torch.utils._pytree.tree_leaves(want)):
        torch.testing.assert_close(a, b)
    grads = []
    for fn in (traced, m):
        out = fn(x)[0]
        grads.append(torch.autograd.grad(out.sum(), list(m.parameters())))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)


def test_jit_script_refuses_clearly():
    with pytest.raises(RuntimeError, match="torch.jit.script: fusedrnn.nn.GRU cannot be scripted"):
        torch.jit.script(fnn.GRU(5, 6))


def test_compile_with_packed_input_matches_eager():
    # torch.compile(fullgraph=True) cannot trace torch's pad_packed_sequence (the README says so);
    # without fullgraph the module still compiles, and gives eager's answer
    m = fnn.LSTM(5, 6, batch_first=True, num_heads=2, backend="torch")
    x = torch.randn(3, 7, 5)
    packed = pack_padded_sequence(x, torch.tensor([7, 2, 5]), batch_first=True, enforce_sorted=False)
    got = torch.compile(m)(packed)[0].data
    torch.testing.assert_close(got, m(packed)[0].data)


@pytest.mark.gpu
@pytest.mark.parametrize("bidirectional", [False, True])
def test_proj_size_on_the_gpu_runs_torchs_kernels_and_matches(bidirectional):
    ref = torch.nn.LSTM(5, 16, num_layers=2, bidirectional=bidirectional, proj_size=8, batch_first=True,
                        dtype=torch.float64)
    ours = fnn.LSTM(5, 16, num_layers=2, bidirectional=bidirectional, proj_size=8, batch_first=True).cuda()
    ours.load_state_dict(ref.state_dict())
    assert ours.runs_natively(torch.device("cuda"))
    assert not fnn.LSTM(5, 16).runs_natively(torch.device("cuda"))  # no projection: fusedrnn's kernels
    x = torch.randn(3, 9, 5, dtype=torch.float64)
    lengths = torch.tensor([9, 4, 6])
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    want, (h, c) = ref(packed)
    on_gpu = pack_padded_sequence(x.float().cuda(), lengths, batch_first=True, enforce_sorted=False)
    got, (gh, gc) = ours(on_gpu)
    # torch's own module on the GPU runs the same cuDNN kernels (TF32 as torch's settings say); its
    # weights may sit in one flattened buffer, ours not, so allow for another order of sums
    same, (sh, sc) = ref.float().cuda()(on_gpu)
    for a, b in ((got.data, same.data), (gh, sh), (gc, sc)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for a, b in ((got.data, want.data), (gh, h), (gc, c)):  # and the float64 answer, to TF32's precision
        torch.testing.assert_close(a.double().cpu(), b, rtol=1e-3, atol=2e-4)
    got.data.sum().backward()
    assert all(p.grad is not None and p.grad.isfinite().all() for p in ours.parameters())
