"""Token-by-token decoding (docs/streaming.md): feeding a sequence in pieces
with the states carried gives the outputs of one call over all of it."""
import pytest
import torch

import fusedrnn.nn


@pytest.mark.parametrize("make", [
    lambda: fusedrnn.nn.LSTM(6, 8, num_layers=2, batch_first=True, num_heads=2, dtype=torch.float64),
    lambda: fusedrnn.nn.GRU(6, 8, batch_first=True, dtype=torch.float64),
    lambda: fusedrnn.nn.RNN(6, 8, batch_first=True, nonlinearity="relu", dtype=torch.float64),
    lambda: fusedrnn.nn.SLSTM(6, 8, batch_first=True, num_heads=2, dtype=torch.float64),
])
def test_step_by_step_equals_one_call(make):
    module = make()
    x = torch.randn(3, 11, 6, dtype=torch.float64)
    whole, whole_state = module(x)
    out, state = module(x[:, :4])  # a prompt, then one step at a time
    pieces = [out]
    for t in range(4, 11):
        out, state = module(x[:, t:t + 1], state)
        pieces.append(out)
    torch.testing.assert_close(torch.cat(pieces, 1), whole)
    flat = lambda s: s if isinstance(s, torch.Tensor) else torch.cat(list(s))  # noqa: E731
    torch.testing.assert_close(flat(state), flat(whole_state))
