"""The one timing helper of the benchmarks: a median over repeats, synchronised on GPUs."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def median_seconds(function: Callable[[], object], repeats: int, device: torch.device = torch.device("cpu"),
                   warmup: bool = True) -> float:
    """Median wall time of `function()` over `repeats` runs, after one warm-up run when `warmup`."""
    if warmup:
        function()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        function()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
