"""Design (a) of docs/perf-notes.md (2026-12-07): a large head (768x1) at a large batch, one
kernel a step over the whole batch, R read from L2 every step, the cell in the GEMM's epilogue.
How long is a step? LSTM, one head of H units, bf16 (fp32 accumulation), the steps replayed
from one CUDA graph, a Triton kernel a step:

  forward step t:   a = x_t + h_{t-1} R^T (four tl.dot a K tile, one a gate: the four gates of
                    the tile's units land in one program), then c_t, h_t; h into the other of
                    two buffers, y_t, c_t saved (fp32).
  backward step t:  dh = dy_t + dx_{t+1} R (K = 4H: the gradient of the pre-activations of step
                    t + 1, which is dx for an LSTM) and, in the same program, a = x_t + h_{t-1} R^T
                    recomputed for the tile's units; the cell's backward gives dx_t (= the gates'
                    gradient) and hands dc back through an fp32 buffer.
dR (one GEMM over every step) and db are left out: they are the same for every design.

It first checks both directions against a float64 torch LSTM at an odd size (on a CPU with
TRITON_INTERPRET=1, fp32), then times the steps at each B (GPU), beside cuDNN's fp16 LSTM
(dense, the same H) run on the same pre-activations' shapes for scale. A probe, not a backend:
no lengths, resets, states in or other cells.

    python tools/fused_step_probe.py [--B 64 128 256] [--T 1024] [--H 768] [--check-only]
"""
import argparse
import os

import torch
import triton
import triton.language as tl


@triton.jit
def _sigmoid(v):
    return 1.0 / (1.0 + tl.exp(-v))


@triton.jit
def _tanh(v):
    return 2.0 * _sigmoid(2.0 * v) - 1.0


@triton.jit
def _gate_products(h_ptr, w_ptr, rows, units, B, H, acc_i, acc_f, acc_g, acc_o, BK: tl.constexpr):
    """acc_g += h[rows, :] R_g[units, :]^T for the four gates; w is R as [4, H (unit), H (k)]."""
    for k0 in range(0, H, BK):
        ks = k0 + tl.arange(0, BK)
        h = tl.load(h_ptr + rows[:, None] * H + ks[None, :], mask=(rows[:, None] < B) & (ks[None, :] < H), other=0.0)
        mask = (ks[:, None] < H) & (units[None, :] < H)
        at = w_ptr + units[None, :] * H + ks[:, None]  # [BK, BU]: R_g[unit, k] transposed
        acc_i = tl.dot(h, tl.load(at, mask=mask, other=0.0), acc_i)
        acc_f = tl.dot(h, tl.load(at + H * H, mask=mask, other=0.0), acc_f)
        acc_g = tl.dot(h, tl.load(at + 2 * H * H, mask=mask, other=0.0), acc_g)
        acc_o = tl.dot(h, tl.load(at + 3 * H * H, mask=mask, other=0.0), acc_o)
    return acc_i, acc_f, acc_g, acc_o


@triton.jit
def forward_step_kernel(h_ptr, w_ptr, x_ptr, c_ptr, h_out_ptr, y_ptr, saved_ptr, B, H, x_batch, y_batch,
                        BM: tl.constexpr, BU: tl.constexpr, BK: tl.constexpr):
    rows = tl.program_id(0) * BM + tl.arange(0, BM)
    units = tl.program_id(1) * BU + tl.arange(0, BU)
    zero = tl.zeros((BM, BU), tl.float32)
    a_i, a_f, a_g, a_o = _gate_products(h_ptr, w_ptr, rows, units, B, H, zero, zero, zero, zero, BK)
    mask = (rows[:, None] < B) & (units[None, :] < H)
    x = x_ptr + rows[:, None] * x_batch + units[None, :]  # x_t [B, 4, H] with x_batch between sequences
    i = _sigmoid(a_i + tl.load(x, mask=mask, other=0.0).to(tl.float32))
    f = _sigmoid(a_f + tl.load(x + H, mask=mask, other=0.0).to(tl.float32))
    g = _tanh(a_g + tl.load(x + 2 * H, mask=mask, other=0.0).to(tl.float32))
    o = _sigmoid(a_o + tl.load(x + 3 * H, mask=mask, other=0.0).to(tl.float32))
    state = rows[:, None] * H + units[None, :]
    c = f * tl.load(c_ptr + state, mask=mask, other=0.0) + i * g
    h = (o * _tanh(c)).to(h_out_ptr.dtype.element_ty)
    tl.store(c_ptr + state, c, mask=mask)
    tl.store(saved_ptr + state, c, mask=mask)
    tl.store(h_out_ptr + state, h, mask=mask)
    tl.store(y_ptr + rows[:, None] * y_batch + units[None, :], h, mask=mask)


@triton.jit
def backward_step_kernel(h_ptr, w_ptr, x_ptr, dnext_ptr, dy_ptr, c_ptr, c_prev_ptr, dc_ptr, dx_ptr, B, H,
                         x_batch, y_batch, HAS_NEXT: tl.constexpr,
                         BM: tl.constexpr, BU: tl.constexpr, BK: tl.constexpr):
    rows = tl.program_id(0) * BM + tl.arange(0, BM)
    units = tl.program_id(1) * BU + tl.arange(0, BU)
    mask = (rows[:, None] < B) & (units[None, :] < H)
    zero = tl.zeros((BM, BU), tl.float32)
    # dh = dy_t + sum over gates and units u of dx_{t+1}[g, u] R_g[u, units]
    dh = tl.load(dy_ptr + rows[:, None] * y_batch + units[None, :], mask=mask, other=0.0).to(tl.float32)
    if HAS_NEXT:
        for g in range(4):
            for k0 in range(0, H, BK):
                ks = k0 + tl.arange(0, BK)
                d = tl.load(dnext_ptr + rows[:, None] * x_batch + g * H + ks[None, :],
                            mask=(rows[:, None] < B) & (ks[None, :] < H), other=0.0)
                r = tl.load(w_ptr + g * H * H + ks[:, None] * H + units[None, :],
                            mask=(ks[:, None] < H) & (units[None, :] < H), other=0.0)
                dh = tl.dot(d, r, dh)
    a_i, a_f, a_g, a_o = _gate_products(h_ptr, w_ptr, rows, units, B, H, zero, zero, zero, zero, BK)
    x = x_ptr + rows[:, None] * x_batch + units[None, :]
    i = _sigmoid(a_i + tl.load(x, mask=mask, other=0.0).to(tl.float32))
    f = _sigmoid(a_f + tl.load(x + H, mask=mask, other=0.0).to(tl.float32))
    g = _tanh(a_g + tl.load(x + 2 * H, mask=mask, other=0.0).to(tl.float32))
    o = _sigmoid(a_o + tl.load(x + 3 * H, mask=mask, other=0.0).to(tl.float32))
    state = rows[:, None] * H + units[None, :]
    c = tl.load(c_ptr + state, mask=mask, other=0.0)
    tc = _tanh(c)
    dc = tl.load(dc_ptr + state, mask=mask, other=0.0) + dh * o * (1.0 - tc * tc)
    dx = dx_ptr + rows[:, None] * x_batch + units[None, :]
    kind = dx_ptr.dtype.element_ty
    tl.store(dx, (dc * g * i * (1.0 - i)).to(kind), mask=mask)
    tl.store(dx + H, (dc * tl.load(c_prev_ptr + state, mask=mask, other=0.0) * f * (1.0 - f)).to(kind), mask=mask)
    tl.store(dx + 2 * H, (dc * i * (1.0 - g * g)).to(kind), mask=mask)
    tl.store(dx + 3 * H, (dh * tc * o * (1.0 - o)).to(kind), mask=mask)
    tl.store(dc_ptr + state, dc * f, mask=mask)


class Steps:
    """Buffers and launches of one call: x [B, T, 4, H], R [4, H, H], h_0 = c_0 = 0."""

    def __init__(self, x, R, BM, BU, BK, num_warps, num_stages):
        self.x, self.R = x, R
        self.B, self.T, _, self.H = x.shape
        self.meta = dict(BM=BM, BU=BU, BK=BK, num_warps=num_warps, num_stages=num_stages)
        self.grid = (triton.cdiv(self.B, BM), triton.cdiv(self.H, BU))
        B, T, H = self.B, self.T, self.H
        self.h = torch.zeros(T + 1, B, H, dtype=x.dtype, device=x.device)  # h entering each step (a probe: all kept)
        self.c = torch.zeros(B, H, dtype=torch.float32, device=x.device)
        self.saved = torch.zeros(T + 1, B, H, dtype=torch.float32, device=x.device)  # c after each step; [0] = c_0
        self.y = torch.empty(B, T, H, dtype=x.dtype, device=x.device)
        self.dy = torch.empty_like(self.y)
        self.dx = torch.empty_like(x)
        self.dc = torch.zeros(B, H, dtype=torch.float32, device=x.device)

    def forward(self):
        self.c.zero_()
        for t in range(self.T):
            forward_step_kernel[self.grid](self.h[t], self.R, self.x[:, t], self.c, self.h[t + 1], self.y[:, t],
                                           self.saved[t + 1], self.B, self.H, self.T * 4 * self.H, self.T * self.H,
                                           **self.meta)

    def backward(self):
        self.dc.zero_()
        for t in reversed(range(self.T)):
            has_next = t + 1 < self.T
            backward_step_kernel[self.grid](self.h[t], self.R, self.x[:, t], self.dx[:, t + 1] if has_next else self.dx,
                                            self.dy[:, t], self.saved[t + 1], self.saved[t], self.dc, self.dx[:, t],
                                            self.B, self.H, self.T * 4 * self.H, self.T * self.H, HAS_NEXT=has_next,
                                            **self.meta)


def reference(x, R, dy):
    """y and dx of the same LSTM in float64 (autograd through a plain loop)."""
    x = x.double().requires_grad_()
    B, T, _, H = x.shape
    h = c = torch.zeros(B, H, dtype=torch.float64)
    ys = []
    for t in range(T):
        a = x[:, t] + torch.einsum("guk,bk->bgu", R.double(), h)
        i, f, g, o = a[:, 0].sigmoid(), a[:, 1].sigmoid(), a[:, 2].tanh(), a[:, 3].sigmoid()
        c = f * c + i * g
        h = o * c.tanh()
        ys.append(h)
    y = torch.stack(ys, 1)
    (dx,) = torch.autograd.grad(y, x, dy.double())
    return y, dx


def check(device, dtype):
    B, T, H = 5, 7, 40
    torch.manual_seed(0)
    x = torch.randn(B, T, 4, H, device=device).to(dtype)
    R = (torch.randn(4, H, H, device=device) / H ** 0.5).to(dtype)
    steps = Steps(x, R, BM=16, BU=16, BK=16, num_warps=4, num_stages=2)
    steps.y.fill_(float("nan"))
    steps.dx.fill_(float("nan"))
    steps.dy.copy_(torch.randn(B, T, H, device=device))
    steps.forward()
    steps.backward()
    y, dx = reference(x.cpu(), R.cpu(), steps.dy.cpu())
    tolerance = 1e-4 if dtype == torch.float32 else 5e-2
    for name, got, want in (("y", steps.y, y), ("dx", steps.dx, dx)):
        error = (got.cpu().double() - want).abs().max().item()
        print(f"check {dtype} {name}: max |error| {error:.2e}")
        assert error < tolerance, (name, error)


def graphed(run):
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        run()  # compiled and warm before capture
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        run()
    return graph


def cudnn_ms(B, T, H):
    import triton.testing

    lstm = torch.nn.LSTM(H, H, batch_first=True, device="cuda", dtype=torch.float16)
    inputs = torch.randn(B, T, H, device="cuda", dtype=torch.float16, requires_grad=True)
    forward = triton.testing.do_bench(lambda: lstm(inputs), return_mode="median")

    def both():
        out, _ = lstm(inputs)
        out.backward(torch.ones_like(out))
    return forward, triton.testing.do_bench(both, return_mode="median")


def stepwise_ms(B, T, H, tiles=None, as_called=True):
    """backends/triton/stepwise.py (the same design for every cell, lengths, resets, states and the
    backward with dR and db), LSTM at 768x1, as the backend plans it (or with `tiles`: the plan's
    BLOCK_U, BLOCK_B, BLOCK_K, num_warps changed, forward and backward alike): forward, and forward
    (saving states) + backward, each as a user calls it (its steps replayed from its own graphs,
    the host issuing the rest) and whole calls replayed from one graph (the GPU's time alone)."""
    import dataclasses

    import triton.testing

    from fusedrnn.backends.triton import stepwise
    from fusedrnn.backends.triton.plan import stepwise_plan
    from fusedrnn.problem import problem_of
    from fusedrnn.testing import random_problem

    x, R, b, states = random_problem("lstm", B, T, 1, H, dtype=torch.bfloat16, device="cuda")
    dy = torch.randn(B, T, 1, H, device="cuda", dtype=x.dtype)
    plans = [dataclasses.replace(stepwise_plan(problem_of(x, "lstm", None, True), backward), **(tiles or {}))
             for backward in (False, True)]

    def forward():
        stepwise.forward(x, R, b, states, None, "lstm", None, False, plans[0])

    def both():
        y, final, saved = stepwise.forward(x, R, b, states, None, "lstm", None, True, plans[0])
        stepwise.backward(dy, torch.zeros_like(final), x, R, b, states, None, y, final, saved, "lstm", None, plans[1])
    runs = [forward, both] if as_called else []
    return [triton.testing.do_bench(run, return_mode="median") for run in
            runs + [graphed(forward).replay, graphed(both).replay]]


def stepwise_tiles_ms(B, T, H):
    """The stepwise kernels' forward and backward with other tiles than the plan's, each from one
    graph (the GPU's time): what a rule for BLOCK_U x BLOCK_B by batch size would pick."""
    rows = []
    for block_u, block_b, block_k, warps in STEPWISE_TILES:
        if block_b > max(16, triton.next_power_of_2(B)):
            continue
        tiles = dict(BLOCK_U=block_u, BLOCK_B=block_b, BLOCK_K=block_k, num_warps=warps)
        try:
            rows.append((tiles, stepwise_ms(B, T, H, tiles, as_called=False)))
        except Exception as error:  # a tile the GPU cannot run (shared memory)
            rows.append((tiles, (type(error).__name__,)))
    return rows


# BLOCK_U, BLOCK_B, BLOCK_K, warps: each compiles for sm_90 without spills under Triton 3.6 (LSTM bf16
# 768, forward; the backward spills 8 bytes at (32, 64) and (32, 128))
STEPWISE_TILES = [(32, 32, 64, 8), (32, 64, 64, 8), (64, 32, 64, 4), (64, 32, 64, 8), (64, 64, 64, 8), (16, 64, 64, 4),
                  (16, 128, 64, 8), (32, 128, 64, 8), (64, 64, 32, 8)]


def ours_ms(B, T, H, backend):
    """fusedrnn.rnn's forward and forward+backward at 768x1 on `backend` (the same call's scale)."""
    import triton.testing

    import fusedrnn
    from fusedrnn.testing import random_problem

    leaves = [t.requires_grad_() for t in random_problem("lstm", B, T, 1, H, dtype=torch.bfloat16, device="cuda")]
    forward = triton.testing.do_bench(lambda: fusedrnn.rnn(*leaves, backend=backend), return_mode="median")

    def both():
        y, final = fusedrnn.rnn(*leaves, backend=backend)
        torch.autograd.grad(y.float().sum(), leaves[:3])
    return forward, triton.testing.do_bench(both, return_mode="median")


CONFIGS = [  # BM, BU, BK, warps, stages
    (64, 32, 64, 4, 3), (64, 16, 64, 4, 3), (128, 32, 64, 8, 3), (32, 32, 64, 4, 3), (64, 64, 64, 8, 2),
    (16, 32, 128, 4, 2), (16, 16, 128, 4, 2),
]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--B", type=int, nargs="+", default=[16, 64, 128, 256])
    parser.add_argument("--T", type=int, default=1024)
    parser.add_argument("--H", type=int, default=768)
    parser.add_argument("--check-only", action="store_true")
    args = parser.parse_args()
    on_gpu = torch.cuda.is_available() and not os.environ.get("TRITON_INTERPRET")
    check("cuda", torch.bfloat16) if on_gpu else check("cpu", torch.float32)  # (tl.dot takes fp32 as TF32 on a GPU)
    if args.check_only or not on_gpu:
        return
    import triton.testing

    print(f"{torch.cuda.get_device_name()}, LSTM bf16, H={args.H}, one head, T={args.T}; ms (µs a step)")
    print("| B | BM, BU, BK, warps, stages | forward | backward steps | cuDNN fp16 fwd / fwd+bwd "
          "| cuda_fused | cuda_alternating |\n|---|---|---|---|---|---|---|")
    for B in args.B:
        x = torch.randn(B, args.T, 4, args.H, device="cuda", dtype=torch.bfloat16)
        R = (torch.randn(4, args.H, args.H, device="cuda") / args.H ** 0.5).to(torch.bfloat16)
        best = None
        for config in CONFIGS:
            if config[0] > max(16, triton.next_power_of_2(B)):
                continue
            steps = Steps(x, R, *config)
            steps.dy.normal_()
            try:
                forward = triton.testing.do_bench(graphed(steps.forward).replay, return_mode="median")
                backward = triton.testing.do_bench(graphed(steps.backward).replay, return_mode="median")
            except Exception as error:  # a config the GPU cannot run (shared memory)
                print(f"| {B} | {config} | {type(error).__name__} | | |")
                continue
            print(f"| {B} | {config} | {forward:.3f} ({1e3 * forward / args.T:.2f}) "
                  f"| {backward:.3f} ({1e3 * backward / args.T:.2f}) | |", flush=True)
            best = min(best or (forward, backward), (forward, backward), key=sum)
            del steps
        if best is None:
            continue
        for tiles, times in stepwise_tiles_ms(B, args.T, args.H):
            shown = " | ".join(f"{t:.3f}" if isinstance(t, float) else t for t in times)
            print(f"| {B} | triton/stepwise.py {tiles}, fwd / fwd+bwd from one graph | {shown} | |", flush=True)
        forward, both, forward_gpu, both_gpu = stepwise_ms(B, args.T, args.H)
        print(f"| {B} | triton/stepwise.py (every cell's form), fwd / fwd+bwd as called | {forward:.3f} | "
              f"{both:.3f} | |", flush=True)
        print(f"| {B} | triton/stepwise.py, fwd / fwd+bwd from one graph (GPU time) | {forward_gpu:.3f} | "
              f"{both_gpu:.3f} | |", flush=True)
        peers = [cudnn_ms(B, args.T, args.H)]
        for backend in ("cuda_fused", "cuda_alternating"):
            try:
                peers.append(ours_ms(B, args.T, args.H, backend))
            except Exception as error:
                print(f"{backend} at B={B}: {type(error).__name__}: {error}")
                peers.append((float("nan"), float("nan")))
        cells = " | ".join(f"{f:.3f} / {b:.3f}" for f, b in peers)
        print(f"| {B} | best | {best[0]:.3f} | {best[1]:.3f} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
