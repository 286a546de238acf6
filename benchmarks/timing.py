"""The one timing helper of the benchmarks: a median over repeats, synchronised on GPUs.

torch is imported only to synchronise a CUDA device: a benchmark of a command that never loads
torch (`vcseg viz`, the scorer) must not time it in a process that does, since a process with
torch loaded forks its workers markedly slower than the user's command would.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def median_seconds(function: Callable[[], object], repeats: int, device: torch.device | None = None,
                   warmup: bool = True) -> float:
    """Median wall time of `function()` over `repeats` runs, after one warm-up run when `warmup`.

    device: a CUDA device is synchronised before and after each run (None or CPU: not needed)."""
    synchronize = _synchronizer(device)
    if warmup:
        function()
    times = []
    for _ in range(repeats):
        synchronize()
        start = time.perf_counter()
        function()
        synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _synchronizer(device: torch.device | None) -> Callable[[], None]:
    if device is None or device.type != "cuda":
        return lambda: None
    import torch

    return lambda: torch.cuda.synchronize(device)
