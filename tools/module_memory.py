"""Does a training step of fusedrnn.nn.LSTM peak at no more memory than
torch.nn.LSTM on cuDNN in fp16 (issue 16)? The same module-level work for
both: input [B, T, hidden] -> the layer (its input projection included) ->
output, a backward from a random gradient of the output. Peak is
torch.cuda.max_memory_allocated over the step, less what was allocated before
it (the input, its gradient buffer and the weights are counted in both);
time is the median of triton.testing.do_bench over the same step.

    PYTHONPATH=src python tools/module_memory.py [--batch 256] [--length 1024] [--hidden 768]
"""
import argparse

import torch
import triton.testing

import fusedrnn


def modules(hidden: int):
    yield "torch.nn.LSTM fp16 (cuDNN)", torch.nn.LSTM(hidden, hidden, batch_first=True), torch.float16
    for heads in (1, 12):
        if hidden % heads == 0:
            layer = fusedrnn.nn.LSTM(hidden, hidden, batch_first=True, num_heads=heads)
            yield f"fusedrnn.nn.LSTM bf16, num_heads={heads}", layer, torch.bfloat16


def measure(layer, dtype, B: int, T: int, hidden: int) -> tuple[float, float]:
    layer = layer.to(device="cuda", dtype=dtype)
    x = torch.randn(B, T, hidden, device="cuda", dtype=dtype, requires_grad=True)
    dy = torch.randn(B, T, hidden, device="cuda", dtype=dtype)

    def step():
        y, _ = layer(x)
        y.backward(dy)

    step()  # compiles, plans, warms cuBLAS and cuDNN
    x.grad = None
    layer.zero_grad(set_to_none=False)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    step()
    torch.cuda.synchronize()
    peak = (torch.cuda.max_memory_allocated() - base) / 2**30
    ms = triton.testing.do_bench(step, return_mode="median")
    return peak, ms


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--length", type=int, default=1024)
    parser.add_argument("--hidden", type=int, default=768)
    args = parser.parse_args()
    print(f"{torch.cuda.get_device_name()}, B={args.batch}, T={args.length}, hidden {args.hidden}, "
          "a training step (forward + backward)")
    print("| module | peak GiB over the step | ms |\n|---|---|---|")
    for name, layer, dtype in modules(args.hidden):
        peak, ms = measure(layer, dtype, args.batch, args.length, args.hidden)
        print(f"| {name} | {peak:.2f} | {ms:.2f} |", flush=True)
        del layer
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
