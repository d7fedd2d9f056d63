"""The head dim the Triton kernels work in, shared by the package's supports() and the
host side (launch, saved, compile_check). Imports no triton, and nothing of the package."""


def tile_width(n: int) -> int:
    """n rounded up to a power of two (tl.arange needs one), at least 16 (tl.dot's minimum)."""
    return max(16, 1 << (n - 1).bit_length())


def padded_head_dim(DH: int) -> int:
    """The head dim as the kernels' tiles hold it (tile_width)."""
    return tile_width(DH)
