"""The `fusedrnn` command: what runs here (info), a demo, benchmarks (bench),
numerical drift over long sequences (numerics) and the cuda_fused tuner (tune).

A bad option value is an argparse-style error on one line, after the usage:
`fusedrnn bench: error: --length: expected a positive integer, got 0`, exit
status 2; never a traceback.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import platform
import sys

from .arguments import ArgumentParser, UsageError


# the optional packages `info` reports: distribution name (what pip installs) and import name
OPTIONAL_PACKAGES = (("triton", "triton"), ("cuda-core", "cuda.core"), ("python-constraint2", "constraint"),
                     ("matplotlib", "matplotlib"), ("flashrnn", "flashrnn"))


def _package_line(distribution: str, module: str) -> str:
    try:
        version = importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return f"  {distribution}: not installed"
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    alias = "" if module == distribution else f" (import {module})"
    return f"  {distribution} {version}{alias}" + ("" if found else f", but `import {module}` finds nothing")


def info(_args) -> None:
    import torch

    import fusedrnn

    print(f"fusedrnn {fusedrnn.__version__}  python {platform.python_version()}  torch {torch.__version__}")
    for distribution, module in OPTIONAL_PACKAGES:
        print(_package_line(distribution, module))
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


COMMANDS = {  # name: one-line description (the list in `fusedrnn --help`; each fits one line of 80 columns)
    "info": "device, package versions and which backends run here",
    "demo": "train an LSTM and an attention model on state tracking",
    "bench": "time our backends beside torch.nn, attention and flashrnn",
    "tune": "tune the cuda_fused kernels (or --table of head dims)",
    "numerics": "error against float64 at every step of a long sequence",
}


def build_parser() -> ArgumentParser:
    from .bench.numerics import add_arguments as numerics_arguments
    from .bench.run import add_arguments as bench_arguments
    from .demo import add_arguments as demo_arguments
    from .tune.command import add_arguments as tune_arguments

    parser = ArgumentParser(prog="fusedrnn", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, title="commands", metavar="COMMAND")
    setup = {"info": (info, None), "demo": (demo, demo_arguments), "bench": (bench, bench_arguments),
             "tune": (tune, tune_arguments), "numerics": (numerics, numerics_arguments)}
    for name, help_text in COMMANDS.items():
        command, add_arguments = setup[name]
        sub_parser = sub.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".")
        if add_arguments is not None:
            add_arguments(sub_parser)
        sub_parser.set_defaults(func=command, parser=sub_parser)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except UsageError as error:  # argparse's form: usage, then `prog: error: message`, status 2
        args.parser.print_usage(sys.stderr)
        print(f"{args.parser.prog}: error: {error.message}", file=sys.stderr)
        error.code = 2
        raise
    except KeyboardInterrupt:
        print(f"{args.parser.prog}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
