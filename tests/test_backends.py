"""The contract every backend keeps, one test parametrised over all of them:
on fresh random inputs at odd sizes, with lengths and initial states and every
output poisoned first, y, the final states and every gradient pass the
FlashAttention rule against the independent float64 reference
(tests/kernel_check.py); carrying `final` into a second call equals one call
over the whole sequence.

On a CPU: the torch backend, and Triton's kernels under the interpreter at
tiny sizes (fp32 and fp16: the interpreter's bf16 dot is wrong). On a GPU
(`-m gpu`): every backend x cell x dtype. Backend-specific paths (plans of
each kernel family, variants, graphs) live in the backends' own test files."""
import pytest
import torch

import fusedrnn
from kernel_check import check_backend

CELLS = list(fusedrnn.CELLS)
BACKENDS = [name for name in fusedrnn.backends()]
GPU = torch.cuda.is_available()


def require(backend: str, dtype: torch.dtype, device: str):
    """Skip, saying why, where `backend` cannot run here at all."""
    info = fusedrnn.backends()[backend]
    if not info.available:
        pytest.skip(f"{backend}: {info.reason}")
    if device == "cpu" and backend not in ("torch", "triton"):
        pytest.skip(f"{backend} runs on CUDA GPUs only")
    if device == "cpu" and backend == "triton" and dtype == torch.bfloat16:
        pytest.skip("the Triton interpreter's bf16 dot is wrong")


CPU_CASES = [("torch", torch.float32), ("triton", torch.float32), ("triton", torch.float16)]


@pytest.mark.skipif(GPU, reason="the CPU cases; a GPU runs test_gpu_backend_contract")
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("backend,dtype", CPU_CASES, ids=[f"{b}-{str(d)[6:]}" for b, d in CPU_CASES])
def test_backend_contract(backend, dtype, cell):
    require(backend, dtype, "cpu")
    check_backend(backend, cell, dtype, B=3, T=5, NH=2, DH=6, device="cpu")


@pytest.mark.gpu
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("B,T,NH,DH", [(5, 37, 3, 48), (3, 19, 2, 64)])
def test_gpu_backend_contract(backend, dtype, cell, B, T, NH, DH):
    require(backend, dtype, "cuda")
    check_backend(backend, cell, dtype, B=B, T=T, NH=NH, DH=DH, device="cuda")


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_carrying_final_equals_one_call(backend, cell):
    device = "cuda" if GPU else "cpu"
    dtype = torch.float32
    require(backend, dtype, device)
    spec = fusedrnn.cells.get_cell(cell)
    B, T, NH, DH, cut = 3, 11, 2, 16, 4
    x = torch.randn(B, T, spec.gates_x, NH, DH, device=device, dtype=dtype)
    R = torch.randn(spec.gates_r, NH, DH, DH, device=device, dtype=dtype) / DH**0.5
    b = torch.randn(spec.gates_b, NH, DH, device=device, dtype=dtype) * 0.5
    with torch.no_grad():
        y, final = fusedrnn.rnn(x, R, b, cell=cell, backend=backend)
        y1, carried = fusedrnn.rnn(x[:, :cut], R, b, cell=cell, backend=backend)
        y2, final2 = fusedrnn.rnn(x[:, cut:], R, b, carried, cell=cell, backend=backend)
    tolerance = dict(atol=2e-5, rtol=2e-5) if device == "cpu" else dict(atol=2e-3, rtol=2e-3)  # TF32-free fp32
    torch.testing.assert_close(torch.cat([y1, y2], 1), y, **tolerance)
    torch.testing.assert_close(final2, final, **tolerance)


@pytest.mark.gpu
@pytest.mark.parametrize("backend", BACKENDS)
def test_gpu_torch_compile_fullgraph(backend):
    """One graph under torch.compile, forward and backward equal to eager."""
    require(backend, torch.bfloat16, "cuda")
    x = torch.randn(3, 9, 4, 2, 32, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    R = (torch.randn(4, 2, 32, 32, device="cuda") / 6).bfloat16().requires_grad_()
    b = torch.zeros(4, 2, 32, device="cuda", dtype=torch.bfloat16, requires_grad=True)

    def f(x, R, b):
        y, final = fusedrnn.rnn(x, R, b, cell="lstm", backend=backend)
        return y.float().square().sum() + final.float().sum()

    got = torch.compile(f, fullgraph=True)(x, R, b)
    grads = torch.autograd.grad(got, (x, R, b))
    want = f(x, R, b)
    want_grads = torch.autograd.grad(want, (x, R, b))
    torch.testing.assert_close(got, want)
    for g, w in zip(grads, want_grads):
        torch.testing.assert_close(g, w)
