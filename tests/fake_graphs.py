"""The step loops' CUDA graphs on the CPU (step_graphs.py): capturing a chunk records its size
and a replay re-runs the chunk's launches, which read the call block as a graph's would;
streams are no-ops."""
import contextlib

import torch

from fusedrnn.backends import step_graphs


def fake_graphs(monkeypatch) -> list:
    """Patch step_graphs for the CPU; returns the list of chunk sizes captured so far."""
    captured = []

    class FakeGraph:
        def __init__(self, run_chunk, chunk):
            self.replay = lambda: run_chunk(chunk)
            captured.append(chunk)

    class FakeStream:
        def wait_stream(self, other):
            pass

    monkeypatch.setattr(step_graphs, "graphs_enabled", lambda device, graphs: graphs)
    monkeypatch.setattr(step_graphs, "capture_stream", lambda device: FakeStream())
    monkeypatch.setattr(step_graphs, "capture", lambda graphs, run, chunk, side: FakeGraph(run, chunk))
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: FakeStream())
    monkeypatch.setattr(torch.cuda, "stream", lambda stream: contextlib.nullcontext())
    return captured
