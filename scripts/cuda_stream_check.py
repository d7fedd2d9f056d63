"""Does a cuda_fused launch run on torch's current stream? A long torch op
queued first, then our kernel: the result must see the op's output."""
import torch

import fusedrnn
from fusedrnn.backends.cuda import launch

print("legacy stream object for handle 0:", launch._stream(0, 0))
for use_side_stream in (False, True):
    stream = torch.cuda.Stream() if use_side_stream else torch.cuda.current_stream()
    with torch.cuda.stream(stream):
        bad = 0
        for trial in range(20):
            R = torch.randn(4, 2, 64, 64, device="cuda", dtype=torch.bfloat16) / 8
            b = torch.zeros(4, 2, 64, device="cuda", dtype=torch.bfloat16)
            x = torch.zeros(16, 256, 4, 2, 64, device="cuda", dtype=torch.bfloat16)
            big = torch.randn(4096, 4096, device="cuda")
            for _ in range(5):
                big = big @ big / 64  # keeps the stream busy
            x.fill_(1.0)  # our kernel must see this
            y, _ = fusedrnn.rnn(x, R, b, backend="cuda_fused")
            want, _ = fusedrnn.rnn(x, R, b, backend="torch")
            bad += not torch.allclose(y.float(), want.float(), atol=3e-2)
        torch.cuda.synchronize()
        print("side stream" if use_side_stream else "default stream", "mismatches:", bad, "of 20")
