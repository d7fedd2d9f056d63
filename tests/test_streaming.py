"""Token-by-token decoding (docs/streaming.md): feeding a sequence in pieces
with the states carried gives the outputs of one call over all of it."""
import pytest
import torch

import fusedrnn.nn
from fusedrnn.cells import get_cell


@pytest.mark.parametrize("make", [
    lambda: fusedrnn.nn.LSTM(6, 8, num_layers=2, batch_first=True, num_heads=2, dtype=torch.float64),
    lambda: fusedrnn.nn.GRU(6, 8, batch_first=True, dtype=torch.float64),
    lambda: fusedrnn.nn.RNN(6, 8, batch_first=True, nonlinearity="relu", dtype=torch.float64),
    lambda: fusedrnn.nn.SLSTM(6, 8, batch_first=True, num_heads=2, dtype=torch.float64),
])
def test_step_by_step_equals_one_call(make):
    module = make()
    x = torch.randn(3, 11, 6, dtype=torch.float64)
    whole, whole_state = module(x)
    out, state = module(x[:, :4])  # a prompt, then one step at a time
    pieces = [out]
    for t in range(4, 11):
        out, state = module(x[:, t:t + 1], state)
        pieces.append(out)
    torch.testing.assert_close(torch.cat(pieces, 1), whole)
    flat = lambda s: s if isinstance(s, torch.Tensor) else torch.cat(list(s))  # noqa: E731
    torch.testing.assert_close(flat(state), flat(whole_state))


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["cuda_fused", "triton", "cuda_alternating"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_gpu_step_replayed_from_a_cuda_graph(backend, cell):
    """One decoding step captured in a CUDA graph and replayed over a sequence,
    the states carried in place, equals the eager steps bit for bit."""
    cells = get_cell(cell)
    B, T, NH, DH = 3, 9, 2, 32
    kw = dict(device="cuda", dtype=torch.bfloat16)
    xs = torch.randn(T, B, 1, cells.gates_x, NH, DH, **kw)
    R = torch.randn(cells.gates_r, NH, DH, DH, **kw) / DH**0.5
    b = torch.randn(cells.gates_b, NH, DH, **kw) * 0.1
    x = torch.empty_like(xs[0])
    states = torch.zeros(cells.num_states, B, NH, DH, **kw)
    y = torch.empty(B, 1, NH, DH, **kw)

    @torch.no_grad()
    def step():
        y_t, final = fusedrnn.rnn(x, R, b, states, cell=cell, backend=backend)
        y.copy_(y_t)
        states.copy_(final)

    eager = []
    for t in range(T):
        x.copy_(xs[t])
        step()
        eager.append((y.clone(), states.clone()))
    states.zero_()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up outside the capture: compiles, loads
        x.copy_(xs[0])
        step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    states.zero_()
    for t in range(T):
        x.copy_(xs[t])
        graph.replay()
        assert torch.equal(y, eager[t][0]) and torch.equal(states, eager[t][1]), t


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["cuda_fused", "triton", "cuda_alternating"])
def test_gpu_call_with_resets_replayed_from_a_cuda_graph(backend):
    """A call with resets (episode boundaries of a rollout) captured in a CUDA graph: whatever
    the backend does with the flags on the way (cuda_fused packs them into bits) is device work
    a graph can hold, and each replay reads the resets written before it, as eager calls do."""
    B, T, NH, DH = 3, 17, 2, 32
    kw = dict(device="cuda", dtype=torch.bfloat16)
    x = torch.randn(B, T, 4, NH, DH, **kw)
    R = torch.randn(4, NH, DH, DH, **kw) / DH**0.5
    b = torch.randn(4, NH, DH, **kw) * 0.1
    states = torch.randn(2, B, NH, DH, **kw)
    schedules = [torch.rand(B, T, device="cuda") < p for p in (0.2, 0.0, 0.5)]
    resets = schedules[0].clone()
    y = torch.empty(B, T, NH, DH, **kw)

    @torch.no_grad()
    def call():
        y.copy_(fusedrnn.rnn(x, R, b, states, cell="lstm", backend=backend, resets=resets)[0])

    eager = []
    for schedule in schedules:
        resets.copy_(schedule)
        call()
        eager.append(y.clone())
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up outside the capture: compiles, loads
        call()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        call()
    for schedule, expected in zip(schedules, eager):
        resets.copy_(schedule)
        graph.replay()
        assert torch.equal(y, expected)


@pytest.mark.gpu
@pytest.mark.parametrize("side_stream", [False, True], ids=["current stream", "side stream"])
@pytest.mark.parametrize("backend", ["cuda_fused", "cuda_alternating", "triton"])
def test_gpu_kernels_are_ordered_on_the_current_stream(backend, side_stream):
    """A long torch op queued first, then the input written, then our kernel: the kernel runs
    on torch's current stream (cuda.core's handle of it), so it sees the input."""
    stream = torch.cuda.Stream() if side_stream else torch.cuda.current_stream()
    with torch.cuda.stream(stream):
        R = torch.randn(4, 2, 64, 64, device="cuda", dtype=torch.bfloat16) / 8
        b = torch.zeros(4, 2, 64, device="cuda", dtype=torch.bfloat16)
        x = torch.zeros(16, 256, 4, 2, 64, device="cuda", dtype=torch.bfloat16)
        want, _ = fusedrnn.rnn(x + 1, R, b, backend="torch")
        for _ in range(3):
            big = torch.randn(4096, 4096, device="cuda")
            for _ in range(5):
                big = big @ big / 64  # keeps the stream busy
            x.fill_(1.0)  # the kernel must see this
            y, _ = fusedrnn.rnn(x, R, b, backend=backend)
            torch.testing.assert_close(y.float(), want.float(), atol=3e-2, rtol=0)
            x.zero_()
    torch.cuda.synchronize()
