"""The CUDA sources on a machine with no GPU: NVRTC compiles every shipped
kernel instantiation for the H100 (sm_90) with no error and no register spill
and within its shared memory, and the disk cache survives concurrent
processes and corrupted entries. The cluster plan's shapes for the benchmark's heads."""
import dataclasses
import os
import re
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor

import pytest

pytest.importorskip("cuda.core")

from fusedrnn.backends.cuda import compile as nvrtc_compile  # noqa: E402
from fusedrnn.backends.cuda.cluster import choose_cluster, shipped_cluster_configs  # noqa: E402
from fusedrnn.backends.cuda.cluster_backward import (  # noqa: E402
    choose_cluster_backward, shipped_cluster_backward_configs)
from fusedrnn.backends.cuda.fused import SHARED_MEMORY_LIMIT, shipped_configs  # noqa: E402
from fusedrnn.backends.cuda.split import shipped_split_configs  # noqa: E402

ARCH = "sm_90"


def _build(name_expression):
    compiled = nvrtc_compile.compile_kernel(name_expression, ARCH)
    return (name_expression, compiled.registers, compiled.spill_bytes, compiled.log,
            compiled.local_memory_instructions)


def _stack_bytes(log):
    return max((int(n) for n in re.findall(r"(\d+) bytes stack frame", log)), default=0)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    os.environ.setdefault("FUSEDRNN_CACHE_DIR", str(tmp_path_factory.mktemp("cubin-cache")))
    configs = (shipped_configs() + shipped_split_configs() + shipped_cluster_configs()
               + shipped_cluster_backward_configs())
    with ProcessPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        results = list(pool.map(_build, [c.name_expression for c in configs]))
    return configs, results


def test_every_shipped_kernel_compiles_without_spills(built):
    configs, results = built
    assert len(configs) > 1000  # 5 cells x 3 dtypes x head dims x directions x batch buckets (x split rows)
    spilled = [(name, spill) for name, _, spill, _, _ in results if spill]
    assert not spilled, spilled[:10]
    for config in configs:
        assert config.shared_memory + getattr(config, "static_shared_memory", 0) <= SHARED_MEMORY_LIMIT, config


def test_cluster_kernels_keep_r_in_registers(built):
    """The cluster kernels index their fragments of R with constants only: no local memory, neither
    as a stack frame in ptxas's report nor as a load or store of local memory (LDL/STL) in the code."""
    _, results = built
    cluster_names = {c.name_expression for c in shipped_cluster_configs()}
    in_memory = [(name, _stack_bytes(log), local) for name, _, _, log, local in results
                 if name in cluster_names and (_stack_bytes(log) or local)]
    assert len(cluster_names) > 100 and not in_memory, in_memory[:10]


def test_cluster_local_memory_scan_finds_ldl_and_stl(tmp_path, monkeypatch):
    """The cubin scan behind the test above counts what a disassembler shows: none in the plan's
    768x1 kernel, some in one holding more tiles of R than its registers can (it spills)."""
    monkeypatch.setenv("FUSEDRNN_CACHE_DIR", str(tmp_path))
    import dataclasses

    import torch

    plan = choose_cluster("lstm", torch.bfloat16, 768, 16, 1, 132)
    assert nvrtc_compile.compile_kernel(plan.name_expression, ARCH).local_memory_instructions == 0
    spilling = dataclasses.replace(plan, reg_tiles=plan.reg_tiles + 4)
    compiled = nvrtc_compile.compile_kernel(spilling.name_expression, ARCH)
    assert compiled.spill_bytes and compiled.local_memory_instructions > 0


def test_cluster_variants_compile_without_local_memory():
    """The exchange of h by st.async and mbarriers (ClusterOptions::ASYNC_PUSH) and the timing probes
    of scripts/cluster_variants.py, on the plan's 768x1 and 256x3 shapes."""
    import dataclasses

    import torch

    from fusedrnn.backends.cuda import cluster

    plans = [choose_cluster("lstm", torch.bfloat16, 768, 16, 1, 132),
             choose_cluster("lstm", torch.bfloat16, 256, 16, 3, 132)]
    probes = [cluster.NO_PUSH, cluster.RELAXED_ARRIVE, cluster.NO_PUSH | cluster.RELAXED_ARRIVE,
              cluster.REGISTER_TILES_ONLY, cluster.NO_PRODUCT, cluster.NO_OUTPUT]
    configs = [dataclasses.replace(p, options=cluster.ASYNC_PUSH) for p in plans]
    configs += [dataclasses.replace(plans[0], options=o) for o in probes]
    with ProcessPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        results = list(pool.map(_build, [c.name_expression for c in configs]))
    for config, (name, _, spill, log, local) in zip(configs, results):
        assert not spill and not _stack_bytes(log) and not local, (name, spill, _stack_bytes(log), local)
        assert config.shared_memory <= SHARED_MEMORY_LIMIT, config


def test_cluster_plan_for_the_issue_heads():
    import torch

    # 768x1: R is 4.7 MB; only 16 CTAs of 48 rows hold it, partly in registers
    big = choose_cluster("lstm", torch.bfloat16, 768, 16, 1, 132)
    assert big.parts == 16 and big.ROWS == 48 and big.reg_tiles > 0 and big.shared_tiles > 0
    assert big.shared_memory <= SHARED_MEMORY_LIMIT
    # 256x3: a portable cluster holding all of R in registers
    small = choose_cluster("lstm", torch.bfloat16, 256, 16, 3, 132)
    assert small.parts <= 8 and small.shared_tiles == 0
    assert choose_cluster("lstm", torch.bfloat16, 1024, 16, 1, 132) is None  # R over 16 SMs' registers and shared


def test_cluster_sequences_for_the_issue_heads():
    """The spread cells let a cluster run fewer sequences than its batch tile: fewer bytes of h
    through DSMEM a step, in more clusters, as many as the GPU runs at once and no more."""
    import torch

    from fusedrnn.backends.cuda import cluster

    big = choose_cluster("lstm", torch.bfloat16, 768, 16, 1, 132)
    assert big.options & cluster.SPREAD_CELLS and big.batch_tile == 8
    # the H100 runs 7 clusters of 16 CTAs at once: 6 clusters of 3 sequences (not 8 of 2, in two waves),
    # one cell a thread, built for at most 4 sequences
    assert big.with_sequences(16, 1, 7).cluster_sequences == 3
    assert big.elements == 1 and big.most_sequences == 4
    assert big.with_sequences(1, 1, 7).cluster_sequences == 1
    assert big.with_sequences(64, 1, 7).cluster_sequences == 4
    # 256x3: 12 clusters of 8 CTAs, 4 sequences each
    assert choose_cluster("lstm", torch.bfloat16, 256, 16, 3, 132).with_sequences(16, 3, 16).cluster_sequences == 4
    # the owners' form runs whole batch tiles
    owners = dataclasses.replace(big, options=cluster.ASYNC_PUSH)
    assert owners.with_sequences(16, 1, 7).cluster_sequences == 8


def test_cluster_backward_kernels_stay_out_of_local_memory(built):
    """The cluster backward keeps its blocks of R^T in registers without a stack frame: each
    a lane loads from a staging tile by ldmatrix, not from global memory an element at a time."""
    _, results = built
    names = {c.name_expression for c in shipped_cluster_backward_configs()}
    in_memory = [name for name, _, _, log, local in results if name in names and (_stack_bytes(log) or local)]
    assert len(names) > 50 and not in_memory, in_memory[:10]


def test_cluster_backward_plan_for_the_issue_heads():
    import torch

    # 768x1: 16 CTAs of 48 units, three of each warp's six blocks of R^T in registers
    big = choose_cluster_backward("lstm", torch.bfloat16, 768, 16, 1, 132)
    assert big.parts == 16 and big.ROWS == 48 and big.reg_blocks == 3 and big.shared_memory <= SHARED_MEMORY_LIMIT
    # 256x3: clusters of 16 (6 of them: 96 SMs), all of R in registers
    small = choose_cluster_backward("lstm", torch.bfloat16, 256, 16, 3, 132)
    assert small.parts == 16 and small.reg_blocks == small.blocks_per_warp
    # fp32 (no tensor cores) has none; of the heads that fit one SM, LSTM-like cells from DH 64
    # take a cluster while all clusters run at once, Elman and small heads keep the one-SM kernel
    assert choose_cluster_backward("lstm", torch.float32, 768, 16, 1, 132) is None
    assert choose_cluster_backward("lstm", torch.bfloat16, 128, 16, 6, 132).parts == 8
    assert choose_cluster_backward("lstm", torch.bfloat16, 128, 256, 6, 132) is None
    assert choose_cluster_backward("lstm", torch.bfloat16, 32, 16, 24, 132) is None
    assert choose_cluster_backward("elman", torch.bfloat16, 128, 16, 6, 132) is None


def test_largest_head_dims_reported(built):
    configs, _ = built
    largest = {}
    for c in configs:
        if c.cell == "lstm":
            largest[c.dtype] = max(largest.get(c.dtype, 0), c.DHP)
    # an LSTM head split over CTAs reaches DH 1024 in bf16/fp16 (forward)
    import torch
    assert largest[torch.bfloat16] >= 1024 and largest[torch.float32] >= 256, largest


def test_cache_hit_skips_nvrtc(tmp_path, monkeypatch):
    monkeypatch.setenv("FUSEDRNN_CACHE_DIR", str(tmp_path))
    name = shipped_configs()[0].name_expression
    first = nvrtc_compile.compile_kernel(name, ARCH)
    monkeypatch.setattr(nvrtc_compile, "_nvrtc", lambda *a: pytest.fail("compiled again despite a cached entry"))
    assert nvrtc_compile.compile_kernel(name, ARCH) == first


def test_truncated_entry_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("FUSEDRNN_CACHE_DIR", str(tmp_path))
    name = shipped_configs()[0].name_expression
    first = nvrtc_compile.compile_kernel(name, ARCH)
    (entry,) = list((tmp_path / "cubin").glob("*.entry"))
    data = entry.read_bytes()
    for broken in (data[: len(data) // 2], data[:-1] + bytes([data[-1] ^ 1]), b"", b"garbage"):
        entry.write_bytes(broken)
        assert nvrtc_compile.read_entry(entry) is None
        rebuilt = nvrtc_compile.compile_kernel(name, ARCH)  # NVRTC need not give the same bytes twice
        assert rebuilt.cubin.startswith(b"\x7fELF") and rebuilt.mangled_name == first.mangled_name
        assert nvrtc_compile.read_entry(entry) == rebuilt


def test_key_covers_source_arch_and_instantiation():
    first, second = (c.name_expression for c in shipped_configs()[:2])
    keys = {nvrtc_compile.cache_key(first, ARCH), nvrtc_compile.cache_key(first, "sm_80"),
            nvrtc_compile.cache_key(second, ARCH)}
    assert len(keys) == 3


def test_concurrent_processes_share_one_entry(tmp_path):
    name = shipped_configs()[1].name_expression
    code = ("import sys; from fusedrnn.backends.cuda.compile import compile_kernel; "
            f"c = compile_kernel({name!r}, {ARCH!r}); print(len(c.cubin))")
    env = dict(os.environ, FUSEDRNN_CACHE_DIR=str(tmp_path))
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(4)]
    sizes = {p.communicate(timeout=300)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    assert len(sizes) == 1
    assert len(list((tmp_path / "cubin").glob("*.entry"))) == 1
    assert not list((tmp_path / "cubin").glob("*.tmp"))


def test_compile_error_is_reported(monkeypatch):
    with pytest.raises(RuntimeError, match="NVRTC failed"):
        nvrtc_compile._nvrtc("fusedrnn::no_such_kernel<int>", ARCH, nvrtc_compile.KERNELS)


def test_cluster_plan_fitted_to_a_compiler_that_needs_more_registers(monkeypatch):
    """Where the NVRTC in use keeps register tiles in local memory, the plan moves
    tiles to shared memory (a shallower input ring if need be) until it does not;
    None when shared memory cannot take them."""
    import dataclasses

    import torch

    from fusedrnn.backends.cuda import cluster

    plan = cluster.choose_cluster("lstm", torch.bfloat16, 768, 16, 1, 132)
    for limit in range(plan.reg_tiles, -1, -1):
        monkeypatch.setattr(cluster, "_touches_local_memory", lambda config, arch: config.reg_tiles > limit)
        cluster.fit_to_compiler.cache_clear()
        fitted = cluster.fit_to_compiler(plan, "sm_90")
        shapes = [dataclasses.replace(plan, reg_tiles=limit, depth=depth) for depth in range(plan.depth, 1, -1)]
        if any(shape.shared_memory <= SHARED_MEMORY_LIMIT for shape in shapes):
            assert fitted.reg_tiles == limit and fitted.shared_memory <= SHARED_MEMORY_LIMIT
            assert dataclasses.replace(fitted, reg_tiles=plan.reg_tiles, depth=plan.depth) == plan
        else:
            assert fitted is None
            break
    else:
        raise AssertionError("R fitted shared memory with no register tiles at all")
    cluster.fit_to_compiler.cache_clear()
