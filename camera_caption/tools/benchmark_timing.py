"""
Timing that a noisy, shared machine cannot bias: interleaved, with spreads.

The contenders run in turns (A, B, C, then C, B, A, ...) over the repeats,
so that a drift in the machine's speed lands on all of them alike; each
figure is reported as its median with min and max.  The memory-bandwidth
floor is measured in the same run: the bytes one decode step must read,
over the read bandwidth of a 1 GiB tensor sum on the same device.
"""

import statistics
import time

import torch


def sync(device):
    """Wait for the device's queued work (CUDA)."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def interleaved(contenders, device, repeats):
    """
    Time each of ``contenders`` (``{name: fn}``) once per round, in turns.

    One warm-up call each, then ``repeats`` rounds, the order reversed
    every other round.  Returns ``({name: [seconds]}, {name: last
    result})``.
    """
    results = {name: fn() for name, fn in contenders.items()}
    sync(device)
    times = {name: [] for name in contenders}
    names = list(contenders)
    for round_ in range(repeats):
        for name in names if round_ % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            results[name] = contenders[name]()
            sync(device)
            times[name].append(time.perf_counter() - start)
    return times, results


def spread(seconds, scale=1000.0):
    """Return ``(median, min, max)`` of ``seconds``, times ``scale``."""
    return (scale * statistics.median(seconds), scale * min(seconds),
            scale * max(seconds))


def read_bandwidth(device, gib=1.0, repeats=5):
    """Read bandwidth in bytes/s: the median of a 1 GiB tensor sum."""
    data = torch.ones(int(gib * 2**30) // 4, dtype=torch.float32,
                      device=device)
    data.sum()
    sync(device)
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        data.sum()
        sync(device)
        seconds.append(time.perf_counter() - start)
    return data.numel() * 4 / statistics.median(seconds)


def peak_mb(device, fn):
    """Run ``fn``; return the peak GPU memory it took (MiB), None on CPU."""
    if device.type != 'cuda':
        fn()
        return None
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    return torch.cuda.max_memory_allocated(device) / 2**20
