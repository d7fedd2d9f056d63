"""Backends declare what they can run; `choose` picks one for a call."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

from ..problem import Problem

Verdict = tuple[bool, str]


@dataclass(frozen=True)
class Backend:
    name: str
    priority: int  # higher wins under backend="auto"
    available: Callable[[], Verdict]  # can it run at all on this machine
    supports: Callable[[Problem], Verdict]  # can it run this call
    run: Callable  # (x, R, b, states, lengths, cell_name, need_grad, resets=None) -> (y, final)
    # whether backend="auto" may pick it for this call (not, say, under an interpreter)
    auto_eligible: Callable[[Problem], bool] = lambda problem: True


class BackendInfo(NamedTuple):
    name: str
    available: bool
    reason: str


_BACKENDS: dict[str, Backend] = {}


def register(backend: Backend) -> Backend:
    _BACKENDS[backend.name] = backend
    return backend


def get(name: str) -> Backend:
    """The registered backend called `name`."""
    if name not in _BACKENDS:
        raise ValueError(f"backend: expected one of {names()}, got {name!r}")
    return _BACKENDS[name]


def names() -> list[str]:
    return sorted(_BACKENDS, key=lambda n: -_BACKENDS[n].priority)


def report() -> dict[str, BackendInfo]:
    out = {}
    for name in names():
        ok, why = _BACKENDS[name].available()
        out[name] = BackendInfo(name, ok, why)
    return out


def _verdict(backend: Backend, problem: Problem) -> Verdict:
    ok, why = backend.available()
    if not ok:
        return False, f"not available here: {why}"
    return backend.supports(problem)


def choose(name: str, problem: Problem) -> Backend:
    """The backend called `name`, or for "auto" the best one that supports `problem`.

    An explicit backend that cannot run the call raises; there is no fallback.
    """
    if name == "auto":
        refusals = []
        for candidate in names():
            if not _BACKENDS[candidate].auto_eligible(problem):
                continue
            ok, why = _verdict(_BACKENDS[candidate], problem)
            if ok:
                return _BACKENDS[candidate]
            refusals.append(f"{candidate}: {why}")
        raise ValueError("backend='auto': no backend supports this call: " + "; ".join(refusals))
    if name not in _BACKENDS:
        raise ValueError(f"backend: expected 'auto' or one of {names()}, got {name!r}")
    ok, why = _verdict(_BACKENDS[name], problem)
    if not ok:
        raise ValueError(f"backend={name!r} cannot run this call: {why}")
    return _BACKENDS[name]
