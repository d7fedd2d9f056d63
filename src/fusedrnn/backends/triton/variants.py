"""Named variants of the Triton kernels, as data: so that one process can run
the same call several ways side by side (tools/triton_variants.py times them,
tests/test_triton.py checks each, compile_check.py reports each).

A variant overrides launch options of the forward and/or the backward kernel
(knobs that plan.launch_options picks per head dim) and may make the forward save
the recurrent products R h for the backward (saved.py) in fp32 (2-byte products
were measured no faster and broke the tolerance for relu's kink at DH=128, so
they are gone). plan.plan applies one when asked for it by name; "shipped" is
what it picks otherwise: since 2026-11-26 the stacked backward with dx, db from
drec from DH=64, and the stacked forward from DH=128.
"""
from __future__ import annotations

_DREC_ONLY = dict(DX_DB_FROM_DREC=True)  # dx, db derived from drec after the loop: 4 stores a step fewer
_STACKED = dict(STACK_GATES=True)  # one product for all gates, each way: 1 wait instead of 4
VARIANTS = {  # the most promising first: tools/triton_variants.py times them in this order
    "shipped": {},
    "stacked+drec-only": dict(forward=_STACKED, backward={**_STACKED, **_DREC_ONLY}),
    # the forward as shipped: stacking measured slower there at 64x12 (1.21 vs 0.93 ms), faster in the backward
    "stacked-backward+drec-only": dict(backward={**_STACKED, **_DREC_ONLY}),
    "drec-only": dict(backward=_DREC_ONLY),
    "stacked": dict(forward=_STACKED, backward=_STACKED),
    # the backward reads R h instead of recomputing it: 1 (stacked) or 4 products a step fewer,
    # 4 stores a step more in the forward
    "stacked+drec-only+saved-products": dict(forward=_STACKED, backward={**_STACKED, **_DREC_ONLY},
                                             products="fp32"),
    "saved-products": dict(products="fp32"),
    # launch options only (the same code as stacked+drec-only)
    "stacked+drec-only+4-warps": dict(forward=_STACKED, backward={**_STACKED, **_DREC_ONLY, "num_warps": 4}),
    "stacked+drec-only+8-warps": dict(forward=_STACKED, backward={**_STACKED, **_DREC_ONLY, "num_warps": 8}),
}


def code_paths() -> list[str]:
    """One variant per distinct kernel code (launch options such as num_warps
    aside): what the interpreter tests run, since the interpreter ignores those."""
    seen, names = set(), []
    for name, chosen in VARIANTS.items():
        key = (chosen.get("products"),) + tuple(
            tuple(sorted((k, v) for k, v in chosen.get(kernel, {}).items() if k not in ("num_warps", "num_stages")))
            for kernel in ("forward", "backward"))
        if key not in seen:
            seen.add(key)
            names.append(name)
    return names
