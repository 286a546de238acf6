"""Soft aggregation (STM): per-object foreground probabilities -> one distribution per pixel."""

from __future__ import annotations

import torch

EPSILON = 1e-7  # keeps the logit finite where a probability is exactly 0 or 1
INVALID_LOGIT = -1e4  # exp() of this is exactly 0 in float32: padded slots get probability 0


def soft_aggregate(probs: torch.Tensor, valid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Merge K objects' independent probabilities into background + K classes that sum to 1.

    probs: B, K, H, W in [0, 1]; valid: B, K bool (False = padded object slot) or None (all valid).
    Returns (logits, probs), both B, K+1, H, W in float32, channel 0 the background: the background
    probability is prod(1 - p_i) over valid objects, each channel becomes the logit log(q/(1-q)),
    and a softmax over the channels gives the merged probabilities. Padded slots get logit
    INVALID_LOGIT and probability 0, and do not lower the background.
    """
    with torch.autocast(device_type=probs.device.type, enabled=False):
        probs = probs.float()
        if valid is not None:
            slot = valid.to(device=probs.device, dtype=torch.bool)[:, :, None, None]  # B, K, 1, 1
            probs = probs * slot
        background = torch.prod(1 - probs, dim=1, keepdim=True)  # B, 1, H, W
        merged = torch.cat([background, probs], dim=1).clamp(EPSILON, 1 - EPSILON)
        logits = torch.log(merged / (1 - merged))  # B, K+1, H, W
        if valid is not None:
            keep = torch.cat([torch.ones_like(slot[:, :1]), slot], dim=1)  # B, K+1, 1, 1
            logits = logits.masked_fill(~keep, INVALID_LOGIT)
        return logits, torch.softmax(logits, dim=1)


def other_objects(masks: torch.Tensor) -> torch.Tensor:
    """For each object, the union of the other objects' masks: B, K, H, W -> B, K, H, W in [0, 1].

    Soft masks are summed (not max-ed) so the result stays differentiable; zero masks (padded
    slots) add nothing.
    """
    return (masks.sum(dim=1, keepdim=True) - masks).clamp(0, 1)
