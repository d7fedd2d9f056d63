"""Timing, memory and first-call cost of each provider on each case."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch

from .providers import Case, Unavailable, provider_function


@dataclass
class Measurement:
    provider: str
    cell: str
    dtype: str
    B: int
    T: int
    NH: int
    DH: int
    passes: str  # "fwd" or "fwd+bwd"
    median_ms: float | None = None
    peak_mib: float | None = None
    first_call_s: float | None = None
    note: str = ""


def _sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def _median_ms(fn, device) -> float:
    if device == "cuda":
        import triton.testing

        return triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median")
    times = []
    fn()
    for _ in range(5):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[2] * 1e3


def measure(provider: str, case: Case) -> Measurement:
    m = Measurement(provider, case.cell, str(case.dtype).replace("torch.", ""), case.B, case.T, case.NH, case.DH,
                    "fwd+bwd" if case.backward else "fwd")
    try:
        fn = provider_function(provider)(case)
        _sync(case.device)
        start = time.perf_counter()
        fn()
        _sync(case.device)
        m.first_call_s = time.perf_counter() - start
        if case.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            fn()
            _sync(case.device)
            m.peak_mib = (torch.cuda.max_memory_allocated() - base) / 2**20
        m.median_ms = _median_ms(fn, case.device)
    except Unavailable as why:
        m.note = f"unavailable: {why}"
    except Exception as error:  # noqa: BLE001 (a provider that fails is a row's note, never the sweep's end)
        first_line = (str(error).splitlines() or [""])[0]
        m.note = f"failed: {type(error).__name__}: {first_line[:200]}"
    finally:
        if case.device == "cuda":
            torch.cuda.empty_cache()
    return m


def as_dict(m: Measurement) -> dict:
    return asdict(m)
