"""Importing this package registers every backend."""
from . import cuda, torch_loop, triton  # noqa: F401
from ..ops.registry import BackendInfo, choose, report

__all__ = ["BackendInfo", "choose", "report"]
