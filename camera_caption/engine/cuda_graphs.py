"""
CUDA graphs for the fast decoder's steps: one device, one stream, one pool.

No ROS import.  A decode step of a fixed batch size is captured once and
replayed for every token, so that a token costs one launch instead of
hundreds of kernel launches.
"""

import torch


class CudaGraphs:
    """
    Capture decode steps as CUDA graphs on one device, one memory pool.

    Every capture runs under ``torch.cuda.device(device)`` on a side stream
    of that device (so ``cuda:1`` is captured on ``cuda:1``, whatever the
    current device), and all graphs share one pool: they are replayed one
    at a time on one stream, and their outputs stay referenced.  ``cuda``
    is the ``torch.cuda`` module; tests pass a recording stand-in.
    """

    def __init__(self, device, cuda=None):
        self.device = torch.device(device)
        self.cuda = cuda if cuda is not None else torch.cuda
        self.stream = None
        self.pool = None

    def context(self):
        """Make the model's device current (replays use its stream)."""
        return self.cuda.device(self.device)

    def reset(self):
        """Forget the pool (after the graphs that used it were dropped)."""
        self.pool = None

    def capture(self, step):
        """Warm ``step`` up on the side stream, capture it; (replay, out)."""
        cuda = self.cuda
        with cuda.device(self.device):
            if self.stream is None:
                self.stream = cuda.Stream(device=self.device)
            if self.pool is None:
                self.pool = cuda.graph_pool_handle()
            current = cuda.current_stream(self.device)
            self.stream.wait_stream(current)
            with cuda.stream(self.stream):
                for _ in range(2):
                    step()
            current.wait_stream(self.stream)
            graph = cuda.CUDAGraph()
            with cuda.graph(graph, pool=self.pool, stream=self.stream):
                out = step()
            cuda.synchronize(self.device)
        return graph.replay, out
