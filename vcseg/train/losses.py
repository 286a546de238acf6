"""Segmentation losses: bootstrapped cross-entropy on the hardest pixels, plus soft dice
(`dice_loss`, kept in `vcseg.model.losses` where the proposal network's loss uses it too).

Bootstrapping (as in STM / STCN training) starts from the plain mean over all pixels and ramps
down to the hardest `final_fraction` of pixels, so that late training concentrates on boundaries
and small parts instead of the easy background.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vcseg.model.losses import dice_loss

__all__ = ["bootstrapped_cross_entropy", "dice_loss", "hard_pixel_fraction", "masks_to_target"]


def hard_pixel_fraction(step: int, ramp_start: int, ramp_end: int, final_fraction: float) -> float:
    """Fraction of pixels the bootstrapped loss keeps at `step`: 1 before the ramp, then linearly
    down to `final_fraction` at `ramp_end`, constant after."""
    if step <= ramp_start or ramp_end <= ramp_start:
        return 1.0 if step <= ramp_start else final_fraction
    if step >= ramp_end:
        return final_fraction
    progress = (step - ramp_start) / (ramp_end - ramp_start)
    return 1.0 + (final_fraction - 1.0) * progress


def bootstrapped_cross_entropy(logits: torch.Tensor, target: torch.Tensor, fraction: float) -> torch.Tensor:
    """Mean cross-entropy over the `fraction` of pixels with the highest loss.

    logits: (N, C, H, W); target: (N, H, W) class indices (0 = background, k = object slot k).
    """
    per_pixel = F.cross_entropy(logits.float(), target, reduction="none").flatten()  # N*H*W
    if fraction >= 1.0:
        return per_pixel.mean()
    keep = max(1, int(per_pixel.numel() * fraction))
    return torch.topk(per_pixel, keep, sorted=False).values.mean()


def masks_to_target(one_hot: torch.Tensor) -> torch.Tensor:
    """Class-index map from one-hot object masks: (N, K, H, W) -> (N, H, W), 0 where no object."""
    background = (one_hot.sum(dim=1, keepdim=True) < 0.5).float()
    return torch.cat([background, one_hot.float()], dim=1).argmax(dim=1)
