"""Option types and errors shared by the `fusedrnn` commands: argparse `type=`
functions that name what they expected, and the UsageError a command raises
for a bad value argparse cannot see. Apart from cli.py so that the commands'
own modules (bench, numerics, tune, demo) import it without importing the CLI."""
from __future__ import annotations

import argparse
import math
import os
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
