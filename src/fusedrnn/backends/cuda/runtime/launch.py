"""Loading compiled kernels and launching them on torch's current stream
through cuda.core. Torch-free apart from the stream and the device index."""
from __future__ import annotations

import functools

from pathlib import Path

import numpy as np
import torch

from .compile import compile_kernel
from .unit import TranslationUnit


def device_arch(device: torch.device) -> str:
    major, minor = torch.cuda.get_device_capability(device)
    return f"sm_{major}{minor}"


@functools.lru_cache(maxsize=None)
def _cuda_device(index: int):
    from cuda.core import Device

    device = Device(index)
    device.set_current()  # torch's primary context: the same one cuda.core retains
    return device


@functools.lru_cache(maxsize=None)
def load_kernel(name_expression: str, source: Path | TranslationUnit, device_index: int, dynamic_smem: int,
                large_clusters: bool = False):
    """The kernel of the translation unit `source` (a TranslationUnit, or a file's path), compiled
    (or taken from the disk cache) and loaded on the device, allowed `dynamic_smem` bytes of
    dynamic shared memory and, with `large_clusters`, clusters of more than the 8 CTAs every GPU
    with clusters supports."""
    from cuda.bindings import driver
    from cuda.core import ObjectCode

    device = _cuda_device(device_index)
    compiled = compile_kernel(name_expression, device_arch(torch.device("cuda", device_index)), source)
    code = ObjectCode.from_cubin(compiled.cubin, symbol_mapping={name_expression: compiled.mangled_name.encode()})
    kernel = code.get_kernel(name_expression)
    if dynamic_smem > 48 * 1024:
        attribute = driver.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
        (error,) = driver.cuKernelSetAttribute(attribute, dynamic_smem, kernel.handle, device.device_id)
        if error != driver.CUresult.CUDA_SUCCESS:
            raise RuntimeError(f"cannot give {name_expression} {dynamic_smem} bytes of shared memory: {error}")
    if large_clusters:
        attribute = driver.CUfunction_attribute.CU_FUNC_ATTRIBUTE_NON_PORTABLE_CLUSTER_SIZE_ALLOWED
        (error,) = driver.cuKernelSetAttribute(attribute, 1, kernel.handle, device.device_id)
        if error != driver.CUresult.CUDA_SUCCESS:
            raise RuntimeError(f"cannot allow {name_expression} clusters over 8 CTAs: {error}")
    return kernel


@functools.lru_cache(maxsize=64)
def torch_stream(handle: int, device_index: int):
    """torch's stream as a cuda.core Stream. Handle 0 is torch's default stream,
    the legacy default stream (cuda.core would not take 0 for it)."""
    from cuda.core import LEGACY_DEFAULT_STREAM, Device

    if handle == 0:
        return LEGACY_DEFAULT_STREAM
    return Device(device_index).create_stream(torch.cuda.ExternalStream(handle, device=device_index))


def pointer(tensor: torch.Tensor | None) -> np.uint64:
    return np.uint64(0 if tensor is None else tensor.data_ptr())


def launch(name_expression: str, source: Path | TranslationUnit, grid: tuple, block: int, dynamic_smem: int,
           device: torch.device, *args, cooperative: bool = False, cluster: int | None = None):
    """Run the kernel on torch's current stream of `device`. Tensors are passed
    as pointers, Python ints as 32-bit ints. A cooperative launch guarantees
    that all CTAs are resident at once (or fails), as a grid barrier needs.
    With `cluster`, CTAs run in clusters of that many along x and `grid`
    counts clusters (cuda.core's convention), not CTAs."""
    from cuda.core import LaunchConfig
    from cuda.core import launch as cuda_launch

    index = device.index if device.index is not None else torch.cuda.current_device()
    kernel = load_kernel(name_expression, source, index, dynamic_smem, bool(cluster and cluster > 8))
    stream = torch_stream(torch.cuda.current_stream(index).cuda_stream, index)
    converted = [pointer(a) if a is None or isinstance(a, torch.Tensor) else np.int32(a) for a in args]
    config = LaunchConfig(grid=grid, cluster=(cluster, 1, 1) if cluster else None, block=block,
                          shmem_size=dynamic_smem, is_cooperative=cooperative)
    cuda_launch(stream, config, kernel, *converted)
