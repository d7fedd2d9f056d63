"""The tuned winners on disk, where the planner finds them: one JSON file
beside the cubin cache (the user cache dir, or FUSEDRNN_CACHE_DIR), one entry
per (GPU, cell, dtype, DH, NH, batch bucket, direction). An entry keeps the
digest of its kernel's translation unit (the cubin cache's key) and the NVRTC
version, so editing a kernel family retires the winners measured with the old
one, and only those, and so does another compiler.
`fusedrnn.tune` writes the entries; this module never imports the tuner.

Several processes may tune at once: updates run under a file lock and replace
the file atomically. The file carries the SHA-256 of its entries; a file that
cannot be read, does not parse (invalid UTF-8 or JSON, JSON of another shape)
or whose digest does not match is treated as empty, with a warning once a
process, and rewritten by the next update. An entry of the wrong shape is no
entry.

The backend looks a winner up on every call (streaming inference calls it once
a token), so the file is parsed once and then identified by its stat: while
the stat is unchanged a lookup costs that one `stat` and two dict lookups.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import time
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..runtime import compile as nvrtc_compile
from .cluster import ClusterConfig
from .cluster_backward import ClusterBackwardConfig
from .grid import SplitConfig
from .one_sm import FusedConfig

VERSION = 2
KINDS = {"one_sm": FusedConfig, "grid": SplitConfig, "cluster": ClusterConfig,
         "cluster_backward": ClusterBackwardConfig}
# the int fields that may be 0 (a cluster's R tiles in registers, option bits, sequences and cells a thread,
# the backward's tiles a launch)
MAY_BE_ZERO = frozenset({"reg_tiles", "reg_blocks", "options", "sequences", "elements", "launch_tiles"})


def batch_bucket(B: int) -> int:
    """The power of two at or above B (at least 8, one column tile): calls whose
    batch falls in the same bucket share a tuned configuration."""
    if not isinstance(B, int) or B < 1:
        raise ValueError(f"B: expected a positive int, got {B!r}")
    return max(8, 1 << (B - 1).bit_length())


def cache_path() -> Path:
    return _beside(nvrtc_compile.cache_dir())


@functools.lru_cache(maxsize=8)
def _beside(cubin_dir: Path) -> Path:  # memoised: the backend asks on every call
    return cubin_dir.parent / "tune.json"


def cache_key(gpu: str, cell: str, dtype: torch.dtype, DH: int, NH: int, B: int, backward: bool) -> str:
    direction = "backward" if backward else "forward"
    return "|".join([gpu, cell, str(dtype).removeprefix("torch."), f"DH={DH}", f"NH={NH}", f"B<={batch_bucket(B)}",
                     direction])


def kernel_version(config) -> dict:
    """What a winner was measured with: its translation unit's sources (their digest) and the
    NVRTC that compiled them (another may allocate registers differently: spill, or fit more)."""
    return dict(kernel_digest=nvrtc_compile.source_digest(config.source), nvrtc=nvrtc_compile.nvrtc_version())


def lookup(key: str):
    """The cached configuration for `key`, or None: also when the entry was written for
    configuration fields this version does not have, or for another version of its kernel."""
    snapshot = _snapshot(cache_path())
    if key not in snapshot.configs:
        snapshot.configs[key] = _parse(snapshot.entries.get(key))
    return snapshot.configs[key]


def store(key: str, config, measured_ms: float) -> None:
    path = cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    from filelock import FileLock

    with FileLock(str(path) + ".lock"):
        entries = read_entries(path)  # as other processes left it
        entries[key] = dict(config=config_to_json(config), measured_ms=measured_ms, **kernel_version(config))
        write_entries(path, entries)


# A file whose mtime is this close to the time it was read may still change within the same
# timestamp tick (a jiffy; 2 s on FAT) without changing its stat: it is read again next time.
RACY_NS = 2_000_000_000


@dataclass
class _Snapshot:
    """The tune file as last read: its path, its stat then, its entries, and the
    configurations parsed from them so far."""
    path: str | None = None
    stamp: tuple | None = None  # (inode, size, mtime_ns); None: no file
    settled: bool = False  # the stamp alone identifies the contents (not racy)
    text: str | None = None
    entries: dict = field(default_factory=dict)
    configs: dict = field(default_factory=dict)


_last = _Snapshot()


def _snapshot(path: Path) -> _Snapshot:
    """The file's snapshot: the last one while its stat is unchanged, else read again."""
    global _last
    name = str(path)
    try:
        info = os.stat(name)
        stamp = (info.st_ino, info.st_size, info.st_mtime_ns)
    except (FileNotFoundError, NotADirectoryError):
        stamp = None
    except OSError as error:  # e.g. a directory this user may not search: no winners, but no crash
        _warn_unusable(name, str(error))
        stamp = None
    last = _last
    if last.path == name and last.stamp == stamp and last.settled:
        return last
    try:
        text = None if stamp is None else Path(name).read_text()
    except FileNotFoundError:  # replaced or removed since the stat
        text, stamp = None, None
    except (OSError, UnicodeDecodeError) as error:  # another user's file, invalid bytes: as good as empty
        _warn_unusable(name, str(error))
        text = None
    snapshot = last
    if (last.path, last.text) != (name, text):  # new contents: parse again
        snapshot = _Snapshot(path=name, text=text, entries=_parse_entries(name, text))
    snapshot.stamp = stamp
    snapshot.settled = stamp is None or time.time_ns() - stamp[2] > RACY_NS
    _last = snapshot
    return snapshot


def read_entries(path: Path) -> dict:
    """The entries in the file at `path`; {} when it is missing or corrupted."""
    return dict(_snapshot(path).entries)


def _parse_entries(name: str, text: str | None) -> dict:
    if text is None:
        return {}
    try:
        document = json.loads(text)
        entries = document["entries"]  # a TypeError where the document is no object ([], null, 1)
        intact = (isinstance(entries, dict) and document["version"] == VERSION
                  and document["sha256"] == _digest(entries))
    except (ValueError, KeyError, TypeError, RecursionError):
        intact = False
    if not intact:
        _warn_unusable(name, "not a tune cache this version of fusedrnn wrote: corrupted, or of another version")
        return {}
    return entries


_warned_unusable: set[str] = set()


def _warn_unusable(name: str, reason: str) -> None:
    """Warn that the tune file at `name` is treated as empty: once a process for each
    file, as the backend looks winners up on every call."""
    if name in _warned_unusable:
        return
    _warned_unusable.add(name)
    warnings.warn(f"fusedrnn ignores its tune cache {name} ({reason}): it is treated as empty and rewritten "
                  "by the next `fusedrnn tune`; FUSEDRNN_CACHE_DIR sets the directory it lives in",
                  RuntimeWarning, stacklevel=2)


def _parse(entry):
    try:
        if entry is None:
            return None
        config = config_from_json(entry["config"])
        # measured with another version of its kernel's sources: retired
        measured_with = {name: entry[name] for name in ("kernel_digest", "nvrtc")}
        return config if measured_with == kernel_version(config) else None
    except (KeyError, TypeError, AttributeError, ValueError):  # an entry of another shape is no entry
        return None


def write_entries(path: Path, entries: dict) -> None:
    text = json.dumps(dict(version=VERSION, sha256=_digest(entries), entries=entries), indent=1, sort_keys=True)
    nvrtc_compile.write_atomically(path, text.encode())


def _digest(entries: dict) -> str:
    return hashlib.sha256(json.dumps(entries, sort_keys=True).encode()).hexdigest()


def config_to_json(config) -> dict:
    kind = next(name for name, cls in KINDS.items() if type(config) is cls)
    fields = dataclasses.asdict(config)
    fields["dtype"] = str(config.dtype).removeprefix("torch.")
    return dict(kind=kind, **fields)


def config_from_json(data: dict):
    fields = dict(data)
    kind = KINDS[fields.pop("kind")]
    config = kind(**dict(fields, dtype=getattr(torch, fields["dtype"])))
    # a field of the wrong type, or a count below 1 (DH % vec with vec = 0), would fail at dispatch, not here
    for name, expected in _field_types(kind).items():
        value = getattr(config, name)
        if type(value) is not expected or (expected is int and value < (0 if name in MAY_BE_ZERO else 1)):
            raise TypeError(f"{kind.__name__}.{name} = {value!r}")
    return config


@functools.lru_cache(maxsize=None)
def _field_types(kind: type) -> dict:
    """The fields annotated with a plain class (int, bool, str, torch.dtype): the ones checked."""
    hints = typing.get_type_hints(kind)
    return {f.name: hints[f.name] for f in dataclasses.fields(kind) if isinstance(hints[f.name], type)}
