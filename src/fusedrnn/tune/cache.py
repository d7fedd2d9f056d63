"""The tuned winners on disk: one JSON file beside the cubin cache (the user
cache dir, or FUSEDRNN_CACHE_DIR), one entry per (GPU, cell, dtype, DH, NH,
batch bucket, direction, kernel hash). The kernel hash is the digest of the
CUDA sources the cubin cache keys on, so editing a kernel retires every
winner measured with the old one.

Several processes may tune at once: updates run under a file lock and replace
the file atomically. The file carries the SHA-256 of its entries; a file that
does not parse or whose digest does not match is treated as empty and
rewritten by the next update.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import torch

from ..backends.cuda import compile as nvrtc_compile
from ..backends.cuda.fused import FusedConfig
from ..backends.cuda.split import SplitConfig
from .space import batch_bucket

VERSION = 1
KINDS = {"fused": FusedConfig, "split": SplitConfig}


def cache_path() -> Path:
    return nvrtc_compile.cache_dir().parent / "tune.json"


def cache_key(gpu: str, cell: str, dtype: torch.dtype, DH: int, NH: int, B: int, backward: bool,
              kernel_hash: str | None = None) -> str:
    kernel_hash = kernel_hash or nvrtc_compile.sources_digest()
    direction = "backward" if backward else "forward"
    return "|".join([gpu, cell, str(dtype).removeprefix("torch."), f"DH={DH}", f"NH={NH}", f"B<={batch_bucket(B)}",
                     direction, kernel_hash[:16]])


def lookup(key: str):
    """The cached configuration for `key`, or None (also when the entry was written
    for configuration fields this version does not have)."""
    entry = read_entries(cache_path()).get(key)
    try:
        return None if entry is None else config_from_json(entry["config"])
    except (KeyError, TypeError, AttributeError):
        return None


def store(key: str, config, measured_ms: float) -> None:
    path = cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    from filelock import FileLock

    with FileLock(str(path) + ".lock"):
        entries = read_entries(path)  # as other processes left it
        entries[key] = dict(config=config_to_json(config), measured_ms=measured_ms)
        write_entries(path, entries)


_parsed = {"text": None, "entries": {}}  # the last file read: the backend looks up on every call


def read_entries(path: Path) -> dict:
    """The entries in the file at `path`; {} when it is missing or corrupted."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    if text != _parsed["text"]:
        try:
            document = json.loads(text)
            entries = document["entries"]
            intact = document["version"] == VERSION and document["sha256"] == _digest(entries)
        except (ValueError, KeyError, TypeError):
            intact = False
        _parsed.update(text=text, entries=entries if intact else {})
    return dict(_parsed["entries"])


def write_entries(path: Path, entries: dict) -> None:
    text = json.dumps(dict(version=VERSION, sha256=_digest(entries), entries=entries), indent=1, sort_keys=True)
    nvrtc_compile.write_atomically(path, text.encode())


def _digest(entries: dict) -> str:
    return hashlib.sha256(json.dumps(entries, sort_keys=True).encode()).hexdigest()


def config_to_json(config) -> dict:
    kind = "split" if isinstance(config, SplitConfig) else "fused"
    fields = dataclasses.asdict(config)
    fields["dtype"] = str(config.dtype).removeprefix("torch.")
    return dict(kind=kind, **fields)


def config_from_json(data: dict):
    fields = dict(data)
    kind = KINDS[fields.pop("kind")]
    return kind(**dict(fields, dtype=getattr(torch, fields["dtype"])))
