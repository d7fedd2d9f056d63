"""A small pre-norm language model whose sequence mixer is swappable:
embedding -> N x [LayerNorm -> mixer -> residual, LayerNorm -> MLP -> residual]
-> LayerNorm -> head.

Mixers: "fused" (fusedrnn.nn.LSTM with heads), "cudnn" (torch.nn.LSTM, dense;
cuDNN on a GPU) and "attention" (causal self-attention through SDPA, with
rotary positions). Each maps width -> width. The recurrent layers are the ones
the benchmarks compare, so they keep the full width; the parameter counts are
evened out through each model's MLP width instead.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fusedrnn.nn import LSTM

KINDS = ("fused", "cudnn", "attention")


def rotate(x: Tensor, base: float = 10000.0) -> Tensor:
    """Rotary position embedding of x [B, heads, T, D] (D even)."""
    T, D = x.shape[-2:]
    freq = base ** (-torch.arange(0, D, 2, device=x.device, dtype=torch.float32) / D)
    angle = torch.arange(T, device=x.device, dtype=torch.float32)[:, None] * freq  # [T, D/2]
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


class CausalSelfAttention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def forward(self, x: Tensor, resets: Tensor | None = None) -> Tensor:
        B, T, W = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.heads, W // self.heads).permute(2, 0, 3, 1, 4)
        if resets is None:
            y = F.scaled_dot_product_attention(rotate(q), rotate(k), v, is_causal=True)
        else:  # packed documents: each position sees its own document's past only
            document = resets.cumsum(1)
            causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
            mask = causal & (document[:, :, None] == document[:, None, :])
            y = F.scaled_dot_product_attention(rotate(q), rotate(k), v, attn_mask=mask[:, None])
        return self.out(y.transpose(1, 2).reshape(B, T, W))


class RecurrentMixer(nn.Module):
    """An LSTM module (batch first) used as a mixer: its output sequence only."""

    def __init__(self, lstm: nn.Module):
        super().__init__()
        self.lstm = lstm

    def forward(self, x: Tensor, resets: Tensor | None = None) -> Tensor:
        if resets is None:
            return self.lstm(x)[0]
        if not isinstance(self.lstm, LSTM):
            raise ValueError("resets: torch.nn.LSTM cannot start a sequence afresh inside a row; "
                             "packed documents need the fused or the attention model")
        return self.lstm(x, resets=resets)[0]


def build_mixer(kind: str, width: int, heads: int, backend: str) -> nn.Module:
    if kind == "fused":
        return RecurrentMixer(LSTM(width, width, batch_first=True, num_heads=heads, backend=backend))
    if kind == "cudnn":
        return RecurrentMixer(nn.LSTM(width, width, batch_first=True))
    if kind == "attention":
        return CausalSelfAttention(width, heads)
    raise ValueError(f"kind: expected one of {KINDS}, got {kind!r}")


class Block(nn.Module):
    def __init__(self, mixer: nn.Module, width: int, mlp_width: int):
        super().__init__()
        self.mixer_norm, self.mixer = nn.LayerNorm(width), mixer
        self.mlp_norm = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, mlp_width), nn.GELU(), nn.Linear(mlp_width, width))

    def forward(self, x: Tensor, resets: Tensor | None = None) -> Tensor:
        x = x + self.mixer(self.mixer_norm(x), resets)
        return x + self.mlp(self.mlp_norm(x))


class LanguageModel(nn.Module):
    def __init__(self, vocab_size: int, width: int, blocks: list[Block]):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, width)
        self.blocks = nn.ModuleList(blocks)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab_size)

    def forward(self, tokens: Tensor, resets: Tensor | None = None) -> Tensor:
        """tokens [B, T] int64 (and resets [B, T] bool: documents packed in a row) -> logits [B, T, vocab_size]."""
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x, resets)
        return self.head(self.norm(x))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def mlp_width(kind: str, width: int, heads: int, mlp_ratio: int) -> int:
    """The MLP width that gives a `kind` block as many parameters as a fused
    block with an MLP of `mlp_ratio * width` (rounded to a multiple of 8)."""
    with torch.device("meta"):  # counting needs no memory
        fused = count_parameters(build_mixer("fused", width, heads, "auto"))
        mine = count_parameters(build_mixer(kind, width, heads, "auto"))
    # an MLP of width m holds 2 * width * m weights (+ m + width biases)
    extra = (fused - mine) / (2 * width + 1)
    return max(8, 8 * round((mlp_ratio * width + extra) / 8))


def build_model(kind: str, vocab_size: int = 256, width: int = 256, layers: int = 4, heads: int = 4,
                mlp_ratio: int = 4, backend: str = "auto") -> LanguageModel:
    """A language model with `layers` blocks of the `kind` mixer.

    `heads` is the fused LSTM's num_heads and the attention's head count (the
    dense cuDNN LSTM has none); `backend` is fusedrnn's, for kind "fused".
    """
    if kind not in KINDS:
        raise ValueError(f"kind: expected one of {KINDS}, got {kind!r}")
    if width % heads:
        raise ValueError(f"heads: expected a divisor of width={width}, got {heads}")
    if kind == "attention" and (width // heads) % 2:
        raise ValueError(f"heads: attention needs an even head size (rotary), got {width}/{heads}")
    hidden = mlp_width(kind, width, heads, mlp_ratio)
    blocks = [Block(build_mixer(kind, width, heads, backend), width, hidden) for _ in range(layers)]
    return LanguageModel(vocab_size, width, blocks)
