"""Segmentation losses: bootstrapped cross-entropy on the hardest pixels, plus soft dice.

Bootstrapping (as in STM / STCN training) starts from the plain mean over all pixels and ramps
down to the hardest `final_fraction` of pixels, so that late training concentrates on boundaries
and small parts instead of the easy background.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


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


def dice_loss(probabilities: torch.Tensor, one_hot: torch.Tensor, valid: torch.Tensor,
              eps: float = 1.0) -> torch.Tensor:
    """1 - soft dice, averaged over the object slots in use.

    probabilities, one_hot: (N, K, H, W) per object (no background channel); valid: (N, K) bool.
    """
    probabilities, one_hot = probabilities.float(), one_hot.float()
    intersection = (probabilities * one_hot).sum(dim=(-1, -2))  # N, K
    total = probabilities.sum(dim=(-1, -2)) + one_hot.sum(dim=(-1, -2))
    dice = (2 * intersection + eps) / (total + eps)
    weights = valid.float()
    return ((1 - dice) * weights).sum() / weights.sum().clamp(min=1)


def masks_to_target(one_hot: torch.Tensor) -> torch.Tensor:
    """Class-index map from one-hot object masks: (N, K, H, W) -> (N, H, W), 0 where no object."""
    background = (one_hot.sum(dim=1, keepdim=True) < 0.5).float()
    return torch.cat([background, one_hot.float()], dim=1).argmax(dim=1)
