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
import math
import os
import platform
import sys
import tempfile


class UsageError(SystemExit):
    """A bad option value found after parsing (one argparse's `type=` and
    `choices=` cannot see: a provider this machine lacks, an unwritable
    --out). `main` prints it the way argparse prints its own errors, the
    usage and then `fusedrnn CMD: error: MESSAGE`, and exits with status 2.

    A SystemExit, so that a caller of a command's `run` outside `main` still
    exits with the message rather than a traceback; `str(error)` is the message."""

    def __init__(self, message: str):
        message = " ".join(str(message).split())  # one line, whatever the reason's text
        super().__init__(message)
        self.message = message


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, its errors worded like fusedrnn's own: `--length:
    expected ...` rather than `argument --length: expected ...`. Subparsers
    are of this class too (argparse gives them the class of their parent)."""

    def error(self, message: str):
        if message.startswith("argument "):
            message = message[len("argument "):]
        super().error(message)


# `type=` functions: each raises ArgumentTypeError with the reason, which argparse
# prefixes with the option's name


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def seed_int(text: str) -> int:
    """A seed for torch's generators: 0 <= seed < 2**63 - 1 (the demo also uses seed + 1)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if not 0 <= value < 2**63 - 1:
        raise argparse.ArgumentTypeError(f"expected an integer in [0, 2**63 - 1), got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text}")
    return value


def head_split(text: str) -> tuple[int, int]:
    """`DHxNH`, e.g. `64x12`: head dim and number of heads, both positive."""
    parts = text.lower().split("x")
    try:
        DH, NH = (int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected DHxNH (head dim x heads), e.g. 64x12, got {text!r}") from None
    if DH < 1 or NH < 1:
        raise argparse.ArgumentTypeError(f"expected DHxNH with a positive head dim and head count, got {text!r}")
    return DH, NH


def ensure_writable_dir(path: str, option: str = "--out") -> None:
    """Make the directory `path` (and its parents) and check that a file can be
    created in it, before any work whose results would be lost; a UsageError
    naming `option` if not."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(f"{option}: expected a directory, got {path!r}, which is a file")
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        raise UsageError(f"{option}: cannot write to {path!r}: {error.strerror or error}") from None


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


if __name__ == "__main__":  # python -m fusedrnn.cli: the commands raise fusedrnn.cli's UsageError, not __main__'s
    from fusedrnn.cli import main as package_main

    sys.exit(package_main())
