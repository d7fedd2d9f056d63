"""The CUDA sources on a machine with no GPU: NVRTC compiles the shipped
kernel instantiations (cuda_fused: shipped.shipped_configs(), the four kernel
families; cuda_alternating: every step, staging and call kernel) for the H100
(sm_90), the alternating steps also for the oldest supported GPU (sm_80),
with no error and no register spill and within the H100's shared memory; the
cluster kernels keep R out of local memory. The kernels are compiled in
parallel processes through runtime.compile.compile_kernel, so they land in the
disk cache (FUSEDRNN_CACHE_DIR, else the user cache): a second run reads its
entries (ptxas's report included) and compiles nothing that has not changed.
Also: the disk cache (hits, corrupt entries, its key, concurrent processes,
errors), each translation unit's digest covering its own include closure
only, and the cluster plans of the benchmark's heads.

All 2,700 cuda_fused instantiations take ~2,000 s of NVRTC on 2 cores: by
default CI compiles a sample that holds every kernel shape (family, cell,
dtype, direction and every knob but the head dim) at the smallest and the
largest head dim it ships, the one keeping most of R in registers, and each
row-copy width: ~330 kernels, ~2.5 minutes. `pytest --all-kernels` (`make
test-kernels`, and the GPU session's check) compiles every one."""
import dataclasses
import multiprocessing
import os
import shutil
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
import torch

pytest.importorskip("cuda.core")

from fusedrnn.backends.cuda.alternating import kernels as alternating_kernels  # noqa: E402
from fusedrnn.backends.cuda.fused import cluster, cluster_backward, grid, one_sm, shipped  # noqa: E402
from fusedrnn.backends.cuda.fused.cluster import choose_cluster  # noqa: E402
from fusedrnn.backends.cuda.fused.cluster_backward import choose_cluster_backward  # noqa: E402
from fusedrnn.backends.cuda.runtime import compile as nvrtc_compile  # noqa: E402
from fusedrnn.backends.cuda.runtime.device import H100_SXM  # noqa: E402
from fusedrnn.backends.cuda.runtime.unit import TranslationUnit  # noqa: E402

ARCH = "sm_90"
LIMIT = H100_SXM.shared_memory_per_block
CUDA_DIR = Path(one_sm.__file__).parent.parent  # backends/cuda
# the translation units: the four families, the cluster forward's timing probes, the alternating kernels
UNITS = {"one_sm": one_sm.SOURCE, "grid": grid.SOURCE, "cluster_forward": cluster.SOURCE,
         "cluster_backward": cluster_backward.SOURCE, "cluster_probes": cluster.PROBES_SOURCE,
         "alternating": alternating_kernels.SOURCE}


def _build(job):
    """Compile one kernel (from the disk cache when there): a worker process's task."""
    name_expression, arch, source = job
    compiled = nvrtc_compile.compile_kernel(name_expression, arch, source)
    return job, dict(registers=compiled.registers, spill=compiled.spill_bytes, stack=compiled.stack_bytes,
                     local=compiled.local_memory_instructions)


def _issue_plans():
    """The cluster forward's plans of the benchmark's heads: LSTM bf16 768x1 and 256x3, B=16."""
    return [choose_cluster("lstm", torch.bfloat16, 768, 16, 1, H100_SXM),
            choose_cluster("lstm", torch.bfloat16, 256, 16, 3, H100_SXM)]


def _cluster_variants():
    """The exchange of h by st.async and mbarriers alone (ClusterOptions::ASYNC_PUSH) on both plans, and
    every timing probe of csrc/cluster_probes.cu (tools/cluster_variants.py) on the 768x1 plan."""
    plans = _issue_plans()
    return ([dataclasses.replace(p, options=cluster.ASYNC_PUSH) for p in plans]
            + [dataclasses.replace(plans[0], probe=probe) for probe in cluster.PROBES])


def _job(config, arch=ARCH):
    return (config.name_expression, arch, config.source)


def register_share(config) -> int:
    """How much of R a kernel keeps in registers (what makes ptxas spill)."""
    return int(getattr(config, "reg_tiles", 0) or getattr(config, "reg_blocks", 0)
               or getattr(config, "r_in_registers", False))


def sample(configs) -> list:
    """Every kernel shape at its extremes (the module docstring), in the order given."""
    varying = {"DHP", "vec", "reg_tiles", "reg_blocks", "ROWS", "KSPLIT", "depth", "elements", "sequences"}
    groups, widths = {}, {}
    for config in configs:
        fields = dataclasses.asdict(config)
        key = (type(config).__name__,) + tuple(sorted((k, str(v)) for k, v in fields.items() if k not in varying))
        groups.setdefault(key, []).append(config)
        widths.setdefault((type(config).__name__, config.vec), config)
    kept = set(widths.values())
    for group in groups.values():
        kept |= {min(group, key=lambda c: c.DHP), max(group, key=lambda c: c.DHP), max(group, key=register_share)}
    return [c for c in configs if c in kept]


@pytest.fixture(scope="module")
def built(request):
    """{job: ptxas's figures} of every kernel CI compiles, most expensive first (the cluster
    kernels take seconds, a one-SM or alternating kernel well under one)."""
    every = request.config.getoption("--all-kernels")
    pick = (lambda configs: configs) if every else sample
    configs = pick(shipped.shipped_configs())
    alternating = alternating_kernels.shipped_alternating_kernels()  # (name expression, unit)
    jobs = [_job(c) for c in pick(shipped.cluster_configs()) + _cluster_variants()
            + pick(shipped.cluster_backward_configs())]
    jobs += [_job(c) for c in pick(shipped.grid_configs()) + pick(shipped.one_sm_configs())]
    jobs += [(name, ARCH, source) for name, source in alternating]
    jobs += [(name, "sm_80", source) for name, source in alternating if "step<" in name][:10]
    jobs = list(dict.fromkeys(jobs))
    context = multiprocessing.get_context("spawn")  # no fork of a process that has torch's threads
    with ProcessPoolExecutor(max_workers=os.cpu_count(), mp_context=context) as pool:
        results = dict(pool.map(_build, jobs))
    return configs, alternating, results


def test_every_shipped_kernel_compiles_without_spills(built):
    configs, alternating, results = built
    assert len(configs) > 300  # 5 cells x 3 dtypes x directions x batch tiles x split rows (x head dims)
    # 5 cells x (fp32: 1 product type, fp16/bf16: 2) x 2 directions, 6 staging kernels, the call kernel
    assert len(alternating) == 5 * 5 * 2 + 6 + 1
    assert all(_job(c) in results for c in configs)
    spilled = [(name, arch, figures["spill"]) for (name, arch, _), figures in results.items() if figures["spill"]]
    assert not spilled, spilled[:10]
    for config in configs:
        assert config.shared_memory + getattr(config, "static_shared_memory", 0) <= LIMIT, config
    names = {name for name, _ in alternating}
    registers = [figures["registers"] for (name, _, _), figures in results.items() if name in names]
    assert len(registers) == len(alternating) + 10 and all(0 < r <= 128 for r in registers), max(registers)


def test_cluster_kernels_keep_r_in_registers(built):
    """The cluster kernels, forward and backward, index their fragments of R with constants only: no
    local memory, neither as a stack frame in ptxas's report nor as a load or store of local memory
    (LDL/STL) in the code."""
    configs, _, results = built
    cluster_configs = [c for c in configs if isinstance(c, (cluster.ClusterConfig, cluster_backward.ClusterBackwardConfig))]
    for configs, least in (([c for c in cluster_configs if not c.backward], 40), ([c for c in cluster_configs if c.backward], 20)):
        in_memory = [(c.name_expression, results[_job(c)]) for c in configs
                     if results[_job(c)]["stack"] or results[_job(c)]["local"]]
        assert len(configs) > least and not in_memory, in_memory[:10]


def test_cluster_variants_compile_without_local_memory(built):
    _, _, results = built
    variants = _cluster_variants()
    assert len(variants) == 2 + len(cluster.PROBES)
    for config in variants:
        figures = results[_job(config)]
        assert not figures["spill"] and not figures["stack"] and not figures["local"], (config.name_expression, figures)
        assert config.shared_memory <= LIMIT, config
    assert {c.source.path for c in variants} == {cluster.SOURCE, cluster.PROBES_SOURCE}


def test_largest_head_dims_reported(built):
    configs, _, _ = built
    largest = {}
    for c in configs:
        if c.cell == "lstm":
            largest[c.dtype] = max(largest.get(c.dtype, 0), c.DHP)
    # an LSTM head split over CTAs reaches DH 1024 in bf16/fp16 (forward)
    assert largest[torch.bfloat16] >= 1024 and largest[torch.float32] >= 256, largest


def test_cluster_local_memory_scan_finds_ldl_and_stl(tmp_path, monkeypatch):
    """The cubin scan behind the test above counts what a disassembler shows: none in the plan's
    768x1 kernel, some in one holding more tiles of R than its registers can (it spills)."""
    monkeypatch.setenv("FUSEDRNN_CACHE_DIR", str(tmp_path))
    plan = _issue_plans()[0]
    assert nvrtc_compile.compile_kernel(plan.name_expression, ARCH, plan.source).local_memory_instructions == 0
    spilling = dataclasses.replace(plan, reg_tiles=plan.reg_tiles + 4)
    compiled = nvrtc_compile.compile_kernel(spilling.name_expression, ARCH, spilling.source)
    assert compiled.spill_bytes and compiled.local_memory_instructions > 0


def test_cluster_plan_for_the_issue_heads():
    big, small = _issue_plans()
    # 768x1: R is 4.7 MB; only 16 CTAs of 48 rows hold it, partly in registers
    assert big.parts == 16 and big.ROWS == 48 and big.reg_tiles > 0 and big.shared_tiles > 0
    assert big.shared_memory <= LIMIT
    # 256x3: a portable cluster holding all of R in registers
    assert small.parts <= 8 and small.shared_tiles == 0
    # R over 16 SMs' registers and shared memory
    assert choose_cluster("lstm", torch.bfloat16, 1024, 16, 1, H100_SXM) is None


def test_cluster_sequences_for_the_issue_heads():
    """The spread cells let a cluster run fewer sequences than its batch tile: fewer bytes of h
    through DSMEM a step, in more clusters, as many as the GPU runs at once and no more."""
    big, small = _issue_plans()
    assert big.options & cluster.SPREAD_CELLS and big.batch_tile == 8
    # the H100 runs 7 clusters of 16 CTAs at once: 6 clusters of 3 sequences (not 8 of 2, in two waves),
    # one cell a thread, built for at most 4 sequences
    assert big.with_sequences(16, 1, 7).cluster_sequences == 3
    assert big.elements == 1 and big.most_sequences == 4
    assert big.with_sequences(1, 1, 7).cluster_sequences == 1
    assert big.with_sequences(64, 1, 7).cluster_sequences == 4
    # 256x3: 12 clusters of 8 CTAs, 4 sequences each
    assert small.with_sequences(16, 3, 16).cluster_sequences == 4
    # the owners' form runs whole batch tiles
    owners = dataclasses.replace(big, options=cluster.ASYNC_PUSH)
    assert owners.with_sequences(16, 1, 7).cluster_sequences == 8
    # a preset (no GPU) estimates what runs at once: a GPC short of SMs for clusters over 8 CTAs
    assert cluster.clusters_at_once(big, H100_SXM) == 132 // 16 - 1


def test_cluster_backward_plan_for_the_issue_heads():
    # 768x1: 16 CTAs of 48 units, three of each warp's six blocks of R^T in registers
    big = choose_cluster_backward("lstm", torch.bfloat16, 768, 16, 1, H100_SXM)
    assert big.parts == 16 and big.ROWS == 48 and big.reg_blocks == 3 and big.shared_memory <= LIMIT
    # 256x3: clusters of 16 (6 of them: 96 SMs), all of R in registers
    small = choose_cluster_backward("lstm", torch.bfloat16, 256, 16, 3, H100_SXM)
    assert small.parts == 16 and small.reg_blocks == small.blocks_per_warp
    # fp32 (no tensor cores) has none; of the heads that fit one SM, LSTM-like cells from DH 64
    # take a cluster while all clusters run at once, Elman and small heads keep the one-SM kernel
    assert choose_cluster_backward("lstm", torch.float32, 768, 16, 1, H100_SXM) is None
    assert choose_cluster_backward("lstm", torch.bfloat16, 128, 16, 6, H100_SXM).parts == 8
    assert choose_cluster_backward("lstm", torch.bfloat16, 128, 256, 6, H100_SXM) is None
    assert choose_cluster_backward("lstm", torch.bfloat16, 32, 16, 24, H100_SXM) is None
    assert choose_cluster_backward("elman", torch.bfloat16, 128, 16, 6, H100_SXM) is None
    # sLSTM 768x1: x travels in rh (its gates are sums), so its three fp32 saved states fit beside R
    assert choose_cluster_backward("slstm", torch.bfloat16, 768, 16, 1, H100_SXM).parts == 16


@pytest.mark.parametrize("which", ["forward", "backward"])
def test_cluster_plan_fitted_to_a_compiler_that_needs_more_registers(which, monkeypatch):
    """Where the NVRTC in use keeps register tiles (forward) or blocks (backward) of R in local
    memory, the plan moves them to shared memory (a shallower input ring if need be) until it
    does not; None when shared memory cannot take them."""
    if which == "forward":
        plan = _issue_plans()[0]
    else:
        plan = choose_cluster_backward("lstm", torch.bfloat16, 768, 16, 1, H100_SXM)
    field = plan.REGISTER_FIELD
    try:
        for limit in range(getattr(plan, field), -1, -1):
            monkeypatch.setattr(cluster, "spills_fragments",
                                lambda config, arch, limit=limit: getattr(config, field) > limit)
            cluster.fit_to_compiler.cache_clear()
            fitted = cluster.fit_to_compiler(plan, H100_SXM)
            shapes = [dataclasses.replace(plan, **{field: limit, "depth": depth}) for depth in range(plan.depth, 1, -1)]
            if any(shape.shared_memory <= LIMIT for shape in shapes):
                assert getattr(fitted, field) == limit and fitted.shared_memory <= LIMIT
                assert dataclasses.replace(fitted, **{field: getattr(plan, field), "depth": plan.depth}) == plan
            else:
                assert fitted is None
                break
        else:
            raise AssertionError("R fitted shared memory with no register tiles at all")
    finally:
        cluster.fit_to_compiler.cache_clear()


# ---- the disk cache ----

def _first():
    config = shipped.one_sm_configs()[0]
    return config.name_expression, config.source


def test_cache_hit_skips_nvrtc(tmp_path, monkeypatch):
    monkeypatch.setenv("FUSEDRNN_CACHE_DIR", str(tmp_path))
    name, source = _first()
    first = nvrtc_compile.compile_kernel(name, ARCH, source)
    monkeypatch.setattr(nvrtc_compile, "_nvrtc", lambda *a: pytest.fail("compiled again despite a cached entry"))
    assert nvrtc_compile.compile_kernel(name, ARCH, source) == first


def test_truncated_entry_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("FUSEDRNN_CACHE_DIR", str(tmp_path))
    name, source = _first()
    first = nvrtc_compile.compile_kernel(name, ARCH, source)
    (entry,) = list((tmp_path / "cubin").glob("*.entry"))
    data = entry.read_bytes()
    for broken in (data[: len(data) // 2], data[:-1] + bytes([data[-1] ^ 1]), b"", b"garbage"):
        entry.write_bytes(broken)
        assert nvrtc_compile.read_entry(entry) is None
        rebuilt = nvrtc_compile.compile_kernel(name, ARCH, source)  # NVRTC need not give the same bytes twice
        assert rebuilt.cubin.startswith(b"\x7fELF") and rebuilt.mangled_name == first.mangled_name
        assert nvrtc_compile.read_entry(entry) == rebuilt


def test_key_covers_source_arch_and_instantiation():
    """The key covers the instantiation, the architecture, the file and the unit's prelude (the
    cell's struct): the same kernel of the same file for another cell is another entry."""
    first, second = shipped.one_sm_configs()[:2]
    unit, name = first.source, first.name_expression
    other_cell = TranslationUnit(unit.path, next(c.source.prelude for c in shipped.one_sm_configs()
                                                 if c.cell != first.cell))
    step, step_unit = next(k for k in alternating_kernels.shipped_alternating_kernels() if "step<" in k[0])
    keys = [nvrtc_compile.cache_key(name, ARCH, unit), nvrtc_compile.cache_key(name, "sm_80", unit),
            nvrtc_compile.cache_key(second.name_expression, ARCH, second.source),
            nvrtc_compile.cache_key(name, ARCH, TranslationUnit(grid.SOURCE, unit.prelude)),
            nvrtc_compile.cache_key(name, ARCH, other_cell), nvrtc_compile.cache_key(name, ARCH, one_sm.SOURCE),
            nvrtc_compile.cache_key(step, ARCH, step_unit), nvrtc_compile.cache_key(step, ARCH, one_sm.SOURCE)]
    assert len(set(keys)) == len(keys)
    assert nvrtc_compile.cache_key(name, ARCH, unit) == nvrtc_compile.cache_key(name, ARCH, first.source)


def test_concurrent_processes_share_one_entry(tmp_path):
    config = shipped.one_sm_configs()[1]
    unit = config.source  # the file and the cell's struct: what each process compiles, and keys on
    code = ("from pathlib import Path; from fusedrnn.backends.cuda.runtime.compile import compile_kernel; "
            "from fusedrnn.backends.cuda.runtime.unit import TranslationUnit; "
            f"unit = TranslationUnit(Path({str(unit.path)!r}), {unit.prelude!r}); "
            f"c = compile_kernel({config.name_expression!r}, {ARCH!r}, unit); print(len(c.cubin))")
    env = dict(os.environ, FUSEDRNN_CACHE_DIR=str(tmp_path))
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(4)]
    sizes = {p.communicate(timeout=300)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    assert len(sizes) == 1
    assert len(list((tmp_path / "cubin").glob("*.entry"))) == 1
    assert not list((tmp_path / "cubin").glob("*.tmp"))


def test_compile_error_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("FUSEDRNN_CACHE_DIR", str(tmp_path))
    with pytest.raises(RuntimeError, match="NVRTC failed to compile fusedrnn::no_such_kernel<int> for sm_90"):
        nvrtc_compile.compile_kernel("fusedrnn::no_such_kernel<int>", ARCH, one_sm.SOURCE)
    assert not list((tmp_path / "cubin").glob("*.entry"))  # nothing cached for it


# ---- the translation units' digests ----

def test_editing_a_header_changes_only_the_digests_of_its_units(tmp_path, monkeypatch):
    """A translation unit's digest (its cubins' and tuned winners' key) covers its include closure:
    editing a family's own header retires that family's cubins only; a shared header (cells/,
    math.cuh, storage.cuh) those of every unit that includes it. Run on a copy of the sources
    (the same tree anywhere hashes the same), headers found as NVRTC finds them."""
    copy = tmp_path.resolve() / "cuda"
    shutil.copytree(CUDA_DIR, copy, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    units = {name: copy / source.relative_to(CUDA_DIR) for name, source in UNITS.items()}
    original = {name: nvrtc_compile.source_digest(source) for name, source in UNITS.items()}
    monkeypatch.setattr(nvrtc_compile, "COMMON_HEADERS", copy / "csrc")
    digest = nvrtc_compile.source_digest.__wrapped__  # uncached: the files change under it

    def digests():
        return {name: digest(source) for name, source in units.items()}

    before = digests()
    assert before == original and len(set(before.values())) == len(units)
    closures = {name: set(nvrtc_compile.include_closure(source)) for name, source in units.items()}
    assert all(path.is_relative_to(copy) for closure in closures.values() for path in closure)
    headers = sorted(set().union(*closures.values()) - set(units.values()))
    assert len(headers) > 20
    for header in headers:
        text = header.read_bytes()
        header.write_bytes(text + b"\n// edited\n")
        try:
            changed = {name for name, value in digests().items() if value != before[name]}
        finally:
            header.write_bytes(text)
        assert changed == {name for name, closure in closures.items() if header in closure}, header
    # a family's own header, and a shared one
    fused = copy / "fused" / "csrc"
    users = lambda header: {name for name, closure in closures.items() if header.resolve() in closure}  # noqa: E731
    assert users(fused / "one_sm_forward.cuh") == {"one_sm"}
    assert users(fused / "grid_barrier.cuh") == {"grid"}
    assert users(fused / "cluster_backward.cuh") == {"cluster_backward"}
    assert users(fused / "cluster_forward.cuh") == {"cluster_forward", "cluster_probes"}
    assert users(copy / "alternating" / "csrc" / "alternating_steps.cuh") == {"alternating"}
    assert users(copy / "csrc" / "cells" / "cell.cuh") == set(UNITS)
    assert digests() == before


@pytest.mark.parametrize("spill, stack, local, spills", [
    (0, 0, 0, False), (8, 8, 2, False),  # NVRTC 13.0's LSTM 768x1 backward: a scalar or two
    (16, 16, 4, False), (24, 24, 2, True), (8, 8, 5, True), (0, 320, 40, True),  # fragments of R
])
def test_a_few_spilled_bytes_keep_a_cluster_plan_fragments_do_not(spill, stack, local, spills, monkeypatch):
    class Compiled:
        spill_bytes, stack_bytes, local_memory_instructions = spill, stack, local

    monkeypatch.setattr(cluster, "compile_kernel", lambda *args: Compiled())
    plan = choose_cluster_backward("lstm", torch.bfloat16, 768, 16, 1, H100_SXM)
    assert cluster.spills_fragments(plan, ARCH) is spills


def test_every_kernel_family_compiles_with_resets_and_without_them_unchanged():
    """The kernels built for resets (RESETS: csrc/resets.cuh) compile in every family and direction,
    keeping R's fragments on chip; without resets, the plan's kernel is the one CI checks above."""
    from fusedrnn.backends.cuda.fused.plan import plan
    from fusedrnn.cells import get_cell
    from fusedrnn.problem import Problem

    for DH, NH, strategy in ((48, 2, "one_sm"), (256, 2, "grid"), (768, 1, "cluster")):
        for direction in ("forward", "backward"):
            plain, with_resets = (plan(Problem(get_cell("lstm"), 9, 21, NH, DH, torch.bfloat16, torch.device("cuda"),
                                               False, True, resets), H100_SXM, direction, strategy=strategy)
                                  for resets in (False, True))
            assert not plain.config.resets and with_resets.config.resets
            assert dataclasses.replace(with_resets.config, resets=False) == plain.config  # the same shape
            compiled = nvrtc_compile.compile_kernel(with_resets.name_expression, ARCH, with_resets.config.source)
            assert not cluster.spills_fragments(with_resets.config, ARCH), (with_resets, compiled.spill_bytes)
