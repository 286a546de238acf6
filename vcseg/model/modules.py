"""Building blocks of the memory network: residual block, upsampling, ASPP, spatial constraint."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ResBlock(nn.Module):
    """Two pre-activated 3x3 convs with a residual path (1x1 conv when the channels change)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.conv2(F.relu(self.conv1(F.relu(x))))
        return self.skip(x) + residual


class UpsampleBlock(nn.Module):
    """Refinement step: upsample the coarse map to a skip map's size, add the projected skip, ResBlock.

    The skip projection is split out (`project_skip`) so the decoder can compute it once per frame
    and share it between objects.
    """

    def __init__(self, skip_channels: int, channels: int, out_channels: int):
        super().__init__()
        self.skip_conv = nn.Conv2d(skip_channels, channels, 3, padding=1)
        self.refine = ResBlock(channels, out_channels)

    def project_skip(self, skip: torch.Tensor) -> torch.Tensor:
        return self.skip_conv(skip)

    def forward(self, projected_skip: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        # projected_skip: N, C, 2h, 2w; coarse: N, C, h, w -> N, out, 2h, 2w
        up = F.interpolate(coarse, size=projected_skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.refine(projected_skip + up)


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: 1x1, dilated 3x3 per rate and image pooling, fused by 1x1.

    No normalisation: the decoder runs per object with small batches (and a 1x1 pooled map).
    """

    def __init__(self, in_channels: int, out_channels: int, rates: tuple[int, ...]):
        super().__init__()
        self.branches = nn.ModuleList(
            [nn.Conv2d(in_channels, out_channels, 1)]
            + [nn.Conv2d(in_channels, out_channels, 3, padding=rate, dilation=rate) for rate in rates]
        )
        self.pooled = nn.Conv2d(in_channels, out_channels, 1)
        self.project = nn.Conv2d(out_channels * (len(rates) + 2), out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: N, C_in, h, w -> N, C_out, h, w
        outputs = [F.relu(branch(x)) for branch in self.branches]
        pooled = F.relu(self.pooled(x.mean(dim=(2, 3), keepdim=True)))  # N, C_out, 1, 1
        outputs.append(pooled.expand(-1, -1, *x.shape[-2:]))
        return F.relu(self.project(torch.cat(outputs, dim=1)))


class SpatialConstraint(nn.Module):
    """Short-term dependency: gate features by an attention map made from the previous mask.

    The features and the previous frame's mask (resized to the features) are concatenated
    (C+1 channels), a 3x3 conv squeezes them to one channel and a sigmoid makes an attention map
    in (0, 1) that multiplies the features.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels + 1, 1, 3, padding=1)

    def forward(self, features: torch.Tensor, prev_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # features: N, C, h, w; prev_mask: N, 1, H, W -> (N, C, h, w gated features, N, 1, h, w attention)
        mask = F.interpolate(prev_mask.to(features.dtype), size=features.shape[-2:], mode="bilinear",
                             align_corners=False)
        attention = torch.sigmoid(self.conv(torch.cat([features, mask], dim=1)))
        return features * attention, attention
