"""What a GPU lets one kernel use: SMs, registers, shared memory, threads and
clusters, read from the device at run time, plus recorded presets of three
GPUs so that the model can be tested on a machine without one.

The presets come from NVIDIA's documentation: the tuning guides of Hopper,
Ampere and Ada (SM resources) and the product pages (SM counts, L2, boost
clocks). Every architecture since sm_35 caps a thread at 255 registers and a
block at 1024 threads; from sm_80 on the driver keeps 1 KiB of each SM's
shared memory per resident block for itself.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

KIB = 1024
WARP_SCHEDULERS = 4  # per SM, every architecture since Volta


@dataclass(frozen=True)
class DeviceLimits:
    name: str
    capability: tuple[int, int]
    sm_count: int
    registers_per_sm: int
    registers_per_block: int
    max_registers_per_thread: int
    shared_memory_per_sm: int
    shared_memory_per_block: int  # with the opt-in attribute (what the kernels ask for)
    reserved_shared_memory_per_block: int
    max_threads_per_block: int
    max_threads_per_sm: int
    max_blocks_per_sm: int
    max_cluster_size: int  # portable size; 1 where clusters do not exist
    max_cluster_size_non_portable: int
    l2_bytes: int
    clock_mhz: int
    index: int | None = None  # the CUDA device these were read from; None for a preset (no GPU)

    @property
    def arch(self) -> str:
        return f"sm_{self.capability[0]}{self.capability[1]}"

    def register_cap(self, threads: int) -> int:
        """Registers a thread may hold in a block of `threads` with one block an
        SM (the kernels' __launch_bounds__(THREADS, 1)): the block's share, in
        the allocation unit of 8, at most the per-thread maximum."""
        return min(self.max_registers_per_thread, self.registers_per_block // threads // 8 * 8)


# Hopper tuning guide: 64K registers and 228 KiB of shared memory an SM, 227 KiB
# for one block, 32 blocks and 2048 threads an SM; clusters of 8 portable, 16
# with the non-portable attribute. H100 SXM5: 132 SMs, 50 MiB L2, 1980 MHz boost.
H100_SXM = DeviceLimits(
    name="NVIDIA H100 80GB HBM3", capability=(9, 0), sm_count=132, registers_per_sm=65536,
    registers_per_block=65536, max_registers_per_thread=255, shared_memory_per_sm=228 * KIB,
    shared_memory_per_block=227 * KIB, reserved_shared_memory_per_block=1 * KIB, max_threads_per_block=1024,
    max_threads_per_sm=2048, max_blocks_per_sm=32, max_cluster_size=8, max_cluster_size_non_portable=16,
    l2_bytes=50 * KIB * KIB, clock_mhz=1980)

# Ampere tuning guide (compute capability 8.0): 64K registers, 164 KiB of shared
# memory an SM, 163 KiB for one block, 32 blocks and 2048 threads an SM; no
# clusters. A100 SXM4: 108 SMs, 40 MiB L2, 1410 MHz boost.
A100_SXM = DeviceLimits(
    name="NVIDIA A100-SXM4-80GB", capability=(8, 0), sm_count=108, registers_per_sm=65536,
    registers_per_block=65536, max_registers_per_thread=255, shared_memory_per_sm=164 * KIB,
    shared_memory_per_block=163 * KIB, reserved_shared_memory_per_block=1 * KIB, max_threads_per_block=1024,
    max_threads_per_sm=2048, max_blocks_per_sm=32, max_cluster_size=1, max_cluster_size_non_portable=1,
    l2_bytes=40 * KIB * KIB, clock_mhz=1410)

# Ada tuning guide (compute capability 8.9): 64K registers, 100 KiB of shared
# memory an SM, 99 KiB for one block, 24 blocks and 1536 threads an SM; no
# clusters. GeForce RTX 4090: 128 SMs, 72 MiB L2, 2520 MHz boost.
RTX_4090 = DeviceLimits(
    name="NVIDIA GeForce RTX 4090", capability=(8, 9), sm_count=128, registers_per_sm=65536,
    registers_per_block=65536, max_registers_per_thread=255, shared_memory_per_sm=100 * KIB,
    shared_memory_per_block=99 * KIB, reserved_shared_memory_per_block=1 * KIB, max_threads_per_block=1024,
    max_threads_per_sm=1536, max_blocks_per_sm=24, max_cluster_size=1, max_cluster_size_non_portable=1,
    l2_bytes=72 * KIB * KIB, clock_mhz=2520)

PRESETS = {"h100": H100_SXM, "a100": A100_SXM, "rtx4090": RTX_4090}


def preset(name: str) -> DeviceLimits:
    try:
        return PRESETS[name.lower()]
    except KeyError:
        raise ValueError(f"device preset: expected one of {sorted(PRESETS)}, got {name!r}") from None


@functools.lru_cache(maxsize=None)
def device_limits(index: int | None = None) -> DeviceLimits:
    """The limits of CUDA device `index` (the current one when None): torch's
    device properties, and the driver's attributes (through cuda.core) for what
    torch does not report."""
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError("device_limits needs a CUDA device; on a CPU use a preset: "
                           f"fusedrnn.backends.cuda.runtime.device.preset(name) with name in {sorted(PRESETS)}")
    index = torch.cuda.current_device() if index is None else index
    props = torch.cuda.get_device_properties(index)
    from cuda.core import Device

    driver = Device(index).properties
    capability = (props.major, props.minor)
    clusters = bool(driver.cluster_launch)
    # the portable cluster size is 8 wherever clusters exist; the Hopper tuning guide
    # allows 16 on the H100 with the non-portable attribute
    portable = 8 if clusters else 1
    return DeviceLimits(
        name=props.name, capability=capability, sm_count=props.multi_processor_count,
        registers_per_sm=props.regs_per_multiprocessor, registers_per_block=driver.max_registers_per_block,
        max_registers_per_thread=255, shared_memory_per_sm=props.shared_memory_per_multiprocessor,
        shared_memory_per_block=props.shared_memory_per_block_optin,
        reserved_shared_memory_per_block=driver.reserved_shared_memory_per_block,
        max_threads_per_block=driver.max_threads_per_block, max_threads_per_sm=props.max_threads_per_multi_processor,
        max_blocks_per_sm=driver.max_blocks_per_multiprocessor, max_cluster_size=portable,
        max_cluster_size_non_portable=16 if capability == (9, 0) else portable, l2_bytes=props.L2_cache_size,
        clock_mhz=driver.clock_rate // 1000, index=index)
