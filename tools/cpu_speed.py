"""fusedrnn.nn against torch.nn on this CPU, one head.

fp32, T=256, B in {1, 16, 64} x H in {64, 256, 512}, LSTM / GRU / RNN(tanh);
forward (no grad) and forward+backward; medians of `--repeats`, both modules
timed in the same process, alternating. `backend="auto"` is what a user gets;
`--loop` adds the torch backend (the Python step loop) with 1 and 4 heads.

    python tools/cpu_speed.py [--repeats 5] [--loop] [--out results.json]
"""
import argparse
import json
import time

import torch

import fusedrnn.nn as fnn

T = 256
MODULES = {"LSTM": (torch.nn.LSTM, fnn.LSTM), "GRU": (torch.nn.GRU, fnn.GRU), "RNN": (torch.nn.RNN, fnn.RNN)}


def median_ms(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2] * 1e3


def passes(module, x):
    def forward():
        with torch.no_grad():
            module(x)

    def train():
        out, _ = module(x.requires_grad_())
        out.sum().backward()
    return {"forward": forward, "forward+backward": train}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--loop", action="store_true", help="also time the torch backend's loop")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.manual_seed(0)
    rows = []
    for name, (theirs_cls, ours_cls) in MODULES.items():
        for H in (64, 256, 512):
            for B in (1, 16, 64):
                theirs = theirs_cls(H, H, batch_first=True)
                variants = {"auto": ours_cls(H, H, batch_first=True)}
                if args.loop:
                    variants["torch NH=1"] = ours_cls(H, H, batch_first=True, backend="torch")
                    variants["torch NH=4"] = ours_cls(H, H, batch_first=True, backend="torch", num_heads=4)
                variants["auto"].load_state_dict(theirs.state_dict())
                x = torch.randn(B, T, H)
                for pass_name in ("forward", "forward+backward"):
                    repeats = args.repeats if B * H < 64 * 512 else max(3, args.repeats // 2)
                    ref = median_ms(passes(theirs, x)[pass_name], repeats)
                    row = {"cell": name, "B": B, "H": H, "pass": pass_name, "torch.nn ms": ref}
                    for label, module in variants.items():
                        row[label + " ms"] = median_ms(passes(module, x)[pass_name], repeats)
                        row[label + " ratio"] = row[label + " ms"] / ref
                    rows.append(row)
                    extra = "".join(f" | {row[k + ' ms']:.1f} ({row[k + ' ratio']:.2f}x)" for k in variants)
                    print(f"| {name} | {B} | {H} | {pass_name} | {ref:.1f}{extra} |", flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"torch": torch.__version__, "threads": torch.get_num_threads(), "T": T, "rows": rows}, f,
                      indent=1)
    worst = max(rows, key=lambda r: r["auto ratio"])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; worst auto ratio "
          f"{worst['auto ratio']:.2f} at {worst['cell']} B={worst['B']} H={worst['H']} {worst['pass']}")


if __name__ == "__main__":
    main()
