"""Every autodiff mode through fusedrnn.rnn and the modules: the torch.func
transforms, forward-mode AD and double backward give the float64 reference's
answer on the torch backend, and the other backends refuse clearly
(NotImplementedError naming the mode), never zeros or torch's internal errors."""
import pytest
import torch
from torch.autograd import forward_ad

import fusedrnn
from reference import reference_rnn
from fusedrnn.testing import random_problem

CELLS = ["lstm", "gru", "elman", "slstm"]
LENGTHS = torch.tensor([5, 2, 0])  # odd sizes, a sequence cut short and an empty one


def _inputs(cell):
    return random_problem(cell, 3, 5, 2, 3)


def _ours(cell, backend="torch"):
    def run(x, R, b, states):
        return fusedrnn.rnn(x, R, b, states, cell=cell, backend=backend, lengths=LENGTHS)
    return run


def _theirs(cell):
    def run(x, R, b, states):
        return reference_rnn(cell, x, R, b, states, lengths=LENGTHS)
    return run


def _loss(fn):
    def loss(*inputs):
        y, final = fn(*inputs)
        return (y.sin() * y).sum() + (final * final).sum()
    return loss


def _close(got, want):
    for g, w in zip(torch.utils._pytree.tree_leaves(got), torch.utils._pytree.tree_leaves(want)):
        assert not g.isnan().any()
        torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("cell", CELLS)
def test_jvp_matches_the_reference_and_is_not_zero(cell):
    inputs = _inputs(cell)
    tangents = tuple(torch.randn_like(t) for t in inputs)
    _, got = torch.func.jvp(_ours(cell), inputs, tangents)
    _, want = torch.func.jvp(_theirs(cell), inputs, tangents)
    assert got[0].abs().max() > 0.1
    _close(got, want)


@pytest.mark.parametrize("cell", CELLS)
def test_forward_ad_dual_tensors(cell):
    inputs = _inputs(cell)
    tangents = tuple(torch.randn_like(t) for t in inputs)
    with forward_ad.dual_level():
        duals = [forward_ad.make_dual(p, t) for p, t in zip(inputs, tangents)]
        got = [forward_ad.unpack_dual(o).tangent for o in _ours(cell)(*duals)]
    _, want = torch.func.jvp(_theirs(cell), inputs, tangents)
    assert all(t is not None for t in got)
    _close(got, want)


@pytest.mark.parametrize("transform", ["grad", "jacrev", "jacfwd", "hessian"])
def test_func_transforms(transform):
    cell = "lstm"
    x, R, b, states = _inputs(cell)
    if transform == "grad":
        make = lambda fn: torch.func.grad(_loss(fn), argnums=(0, 1, 2, 3))  # noqa: E731
    elif transform == "hessian":
        make = lambda fn: torch.func.hessian(_loss(fn), argnums=2)  # noqa: E731
    else:
        make = lambda fn: getattr(torch.func, transform)(lambda *a: fn(*a)[1], argnums=1)  # noqa: E731
    _close(make(_ours(cell))(x, R, b, states), make(_theirs(cell))(x, R, b, states))


def test_vmap_over_a_leading_dim():
    cell = "gru"
    x, R, b, states = _inputs(cell)
    xs = torch.stack([x, x.flip(0), 2 * x])
    got = torch.func.vmap(lambda x: _ours(cell)(x, R, b, states))(xs)
    want = [torch.stack(o) for o in zip(*[_theirs(cell)(x, R, b, states) for x in xs])]
    _close(got, want)


@pytest.mark.parametrize("cell", CELLS)
def test_double_backward_gradient_penalty(cell):
    def penalty(fn):
        inputs = [t.clone().requires_grad_() for t in _inputs(cell)]
        grads = torch.autograd.grad(_loss(fn)(*inputs), inputs, create_graph=True)
        sum(g.pow(2).sum() for g in grads).backward()
        return [t.grad for t in inputs]

    torch.manual_seed(1)
    got = penalty(_ours(cell))
    torch.manual_seed(1)
    want = penalty(_theirs(cell))
    _close(got, want)


def test_nan_past_lengths_stays_out_of_every_mode():
    cell = "lstm"
    x, R, b, states = _inputs(cell)
    x = x.clone()
    x[1, 2:] = float("nan")
    x[2] = float("inf")
    clean = torch.where(x.isfinite(), x, 0)
    tangents = tuple(torch.randn_like(t) for t in (x, R, b, states))
    _, got = torch.func.jvp(_ours(cell), (x, R, b, states), tangents)
    _, want = torch.func.jvp(_ours(cell), (clean, R, b, states), tangents)
    _close(got, want)
    penalty = torch.func.grad(lambda R: torch.func.grad(_loss(_ours(cell)), argnums=1)(x, R, b, states).sum())
    assert penalty(R).isfinite().all()


def test_module_jvp_matches_torch_nn():
    ours = fusedrnn.nn.LSTM(5, 4, num_layers=2, bidirectional=True, backend="torch").double()
    theirs = torch.nn.LSTM(5, 4, num_layers=2, bidirectional=True).double()
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(6, 3, 5, dtype=torch.float64)
    t = torch.randn_like(x)
    _, got = torch.func.jvp(lambda x: ours(x)[0], (x,), (t,))
    _, want = torch.func.jvp(lambda x: theirs(x)[0], (x,), (t,))
    _close(got, want)


def test_kernel_backends_refuse_forward_ad_and_double_backward_by_name():
    # the Triton interpreter runs on CPU; the CUDA backends share the same wrapper
    x, R, b, states = (t.float() for t in _inputs("lstm"))
    run = _ours("lstm", backend="triton")
    with pytest.raises(NotImplementedError, match="forward-mode AD.*backend='triton'"):
        torch.func.jvp(run, (x, R, b, states), (x, R, b, states))
    xr = x.clone().requires_grad_()
    (gx,) = torch.autograd.grad(_loss(run)(xr, R, b, states), [xr], create_graph=True)
    with pytest.raises(NotImplementedError, match="double backward.*backend='triton'"):
        gx.sum().backward()
    # first-order torch.func.grad and jacrev (which run backward with create_graph) still work
    doubles = (x.double(), R.double(), b.double(), states.double())
    got = torch.func.grad(_loss(run))(x, R, b, states)
    want = torch.func.grad(_loss(_theirs("lstm")))(*doubles)
    torch.testing.assert_close(got.double(), want, rtol=2e-4, atol=2e-5)
    got = torch.func.jacrev(lambda *a: run(*a)[1][:, 0, 0, 0], argnums=2)(x, R, b, states)  # 2 rows: cheap
    want = torch.func.jacrev(lambda *a: _theirs("lstm")(*a)[1][:, 0, 0, 0], argnums=2)(*doubles)
    torch.testing.assert_close(got.double(), want, rtol=2e-4, atol=2e-5)


def test_explicit_recurrence_runs_a_backend_like_its_ops():
    """The internal call path with explicit plans (ops/custom_op.explicit_recurrence) around a
    backend's forward and backward: the same values and first-order gradients as its ops, the
    lengths checked as they are, and double backward refused by name."""
    from fusedrnn.backends import torch_loop
    from fusedrnn.ops.custom_op import explicit_recurrence

    run = explicit_recurrence("torch", torch_loop.forward, torch_loop.backward)
    x, R, b, states = (t.requires_grad_() for t in random_problem("lstm", 3, 7, 2, 5))
    lengths = torch.tensor([7, 2, 0])
    got = run(x, R, b, states, cell="lstm", lengths=lengths)
    want = fusedrnn.rnn(x, R, b, states, cell="lstm", backend="torch", lengths=lengths)
    loss = lambda y, final: (y * y).sum() + final.sum()  # noqa: E731
    for g, w in zip(torch.autograd.grad(loss(*got), (x, R, b, states)),
                    torch.autograd.grad(loss(*want), (x, R, b, states))):
        torch.testing.assert_close(g, w)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)
    with pytest.raises(ValueError, match="lengths"):
        run(x, R, b, states, cell="lstm", lengths=torch.tensor([8, 1, 1]))
    dx, = torch.autograd.grad(loss(*run(x, R, b, states, cell="lstm")), x, create_graph=True)
    with pytest.raises(NotImplementedError, match="double backward"):
        torch.autograd.grad(dx.sum(), R)
