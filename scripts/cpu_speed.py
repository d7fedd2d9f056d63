"""The torch backend against torch.nn.LSTM on this CPU (issue 2, item 9).

fp32, B=16, T=256, H=256, NH=1; forward and forward+backward; medians of 7.
"""
import time

import torch

import fusedrnn.nn as fnn

B, T, H = 16, 256, 256


def median_ms(fn, repeats=7):
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[repeats // 2] * 1e3


def main():
    torch.manual_seed(0)
    ref = torch.nn.LSTM(H, H, batch_first=True)
    ours = fnn.LSTM(H, H, batch_first=True, backend="torch")
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(B, T, H)

    def train_step(module):
        def step():
            out, _ = module(x.clone().requires_grad_())
            out.sum().backward()
        return step

    rows = []
    with torch.no_grad():
        rows.append(("forward", median_ms(lambda: ref(x)), median_ms(lambda: ours(x))))
    rows.append(("forward+backward", median_ms(train_step(ref)), median_ms(train_step(ours))))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, B={B} T={T} H={H} fp32")
    print("| pass | torch.nn.LSTM ms | fusedrnn torch backend ms | ratio |")
    print("|---|---|---|---|")
    for name, a, b in rows:
        print(f"| {name} | {a:.1f} | {b:.1f} | {b / a:.2f} |")


if __name__ == "__main__":
    main()
