"""The `fusedrnn` command: demo, info, bench, numerics (and tune as it lands)."""
from __future__ import annotations

import argparse
import platform
import sys


def info(_args) -> None:
    import torch

    import fusedrnn

    print(f"fusedrnn {fusedrnn.__version__}  python {platform.python_version()}  torch {torch.__version__}")
    for module in ("triton", "cuda.core", "constraint"):
        try:
            mod = __import__(module, fromlist=["__version__"])
            print(f"  {module} {getattr(mod, '__version__', '?')}")
        except ImportError as error:
            print(f"  {module}: not installed ({error})")
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        print(f"device: {props.name}, sm_{props.major}{props.minor}, {props.multi_processor_count} SMs, "
              f"{props.total_memory / 2**30:.0f} GiB")
    else:
        print(f"device: cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)")
    print("backends (best first):")
    for name, b in fusedrnn.backends().items():
        print(f"  {name:<17} {'available' if b.available else 'unavailable':<12} {b.reason}")
    print("cells:", ", ".join(fusedrnn.CELLS))


def demo(args) -> None:
    from . import demo as demo_module

    demo_module.run(args)


def bench(args) -> None:
    from .bench.run import run

    run(args)


def numerics(args) -> None:
    from .bench.numerics import run

    run(args)


def tune(args) -> None:
    from .tune.command import run

    run(args)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="fusedrnn", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="device, versions and which backends run here").set_defaults(func=info)
    demo_parser = sub.add_parser("demo", help="train an LSTM and an attention model on state tracking")
    from .demo import add_arguments

    add_arguments(demo_parser)
    demo_parser.set_defaults(func=demo)
    bench_parser = sub.add_parser("bench", help="time our backends beside cuDNN, attention and the torch loop")
    from .bench.run import add_arguments as bench_arguments

    bench_arguments(bench_parser)
    bench_parser.set_defaults(func=bench)
    tune_parser = sub.add_parser("tune", help="tune the cuda_fused kernels for call shapes (or --table of head dims)")
    from .tune.command import add_arguments as tune_arguments

    tune_arguments(tune_parser)
    tune_parser.set_defaults(func=tune)
    numerics_parser = sub.add_parser("numerics", help="error against float64 at every step of a long sequence")
    from .bench.numerics import add_arguments as numerics_arguments

    numerics_arguments(numerics_parser)
    numerics_parser.set_defaults(func=numerics)
    args = parser.parse_args(argv)
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
