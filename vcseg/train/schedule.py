"""Learning-rate schedule as a pure function of the step (so resuming needs only the step)."""

from __future__ import annotations

import math


def lr_factor(step: int, total_steps: int, warmup_steps: int, final_factor: float = 0.01,
              kind: str = "cosine") -> float:
    """Multiplier of the base learning rate at `step` (0-based).

    Linear warm-up from 1/warmup to 1 over `warmup_steps`, then `cosine` decay to `final_factor`
    at `total_steps`, or `step` decay (x0.1 at 80% of training, as STM/STCN), or `constant`.
    """
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if kind == "constant":
        return 1.0
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    if kind == "step":
        return 1.0 if progress < 0.8 else 0.1
    if kind == "cosine":
        return final_factor + (1 - final_factor) * 0.5 * (1 + math.cos(math.pi * progress))
    raise ValueError(f"unknown learning-rate schedule {kind!r}; choose cosine, step or constant")
