"""Losses shared by the networks' training and importable without `vcseg.train` (the prediction
path imports `vcseg.model`, never `vcseg.train`)."""

from __future__ import annotations

import torch


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
