"""LSTM with a projection (torch.nn.LSTM's proj_size) as a plain torch loop:
h_t = W_hr (o_t * tanh(c_t)), and the recurrence reads the projected h. This is
the `torch` backend's form of it (any device, any dtype, every autodiff mode);
with backend="auto" the module runs torch's own kernels instead."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from ..cells import get_cell


def projected_lstm(gates: Tensor, w_hh: Tensor, w_hr: Tensor, b: Tensor, h0: Tensor, c0: Tensor,
                   lengths: Optional[Tensor], resets: Optional[Tensor] = None):
    """gates [B, T, 4H] (x W_ih^T + b_ih), w_hh [4H, P], w_hr [P, H], b [4, 1, H]
    (bias_hh), h0 [B, P], c0 [B, H], resets [B, T] bool or None (a marked step
    starts from h0, c0). Returns y [B, T, P] (0 past a length) and the final
    (h [B, P], c [B, H]) at each sequence's last valid step."""
    lstm = get_cell("lstm")
    B, T, _ = gates.shape
    H = w_hr.shape[1]
    x = gates.view(B, T, 4, 1, H)
    valid_steps = None
    if lengths is not None:
        valid_steps = torch.arange(T, device=gates.device)[:, None] < lengths.to(gates.device)[None, :]
        # select, never multiply: the padding may hold NaN
        x = torch.where(valid_steps.t()[:, :, None, None, None], x, 0)
    h, c = h0, c0.view(B, 1, H)
    ys = []
    for t in range(T):
        if resets is not None:
            # past a length the states are kept as they are, reset or not
            reset = resets[:, t] if valid_steps is None else resets[:, t] & valid_steps[t]
            h = torch.where(reset[:, None], h0, h)
            c = torch.where(reset[:, None, None], c0.view(B, 1, H), c)
        rec = (h @ w_hh.t()).view(B, 4, 1, H)
        h_full, c_new = lstm.forward(x[:, t], rec, b, (None, c))
        h_new = h_full.view(B, H) @ w_hr.t()
        if valid_steps is not None:
            keep = valid_steps[t][:, None]
            h_new, c_new = torch.where(keep, h_new, h), torch.where(keep[:, :, None], c_new, c)
            ys.append(torch.where(keep, h_new, 0))
        else:
            ys.append(h_new)
        h, c = h_new, c_new
    return torch.stack(ys, 1), (h, c.view(B, H))
