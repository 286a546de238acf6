"""The proposal network's DeepLabV3+ decoder (Chen et al. 2018) in plain torch, with the tensor
names of segmentation-models-pytorch's `DeepLabV3PlusDecoder`, which earlier checkpoints hold.

Ours rather than smp's for start-up: importing smp's decoder imports smp, timm and torchvision
(about 2 s before `vcseg predict --video-dir` finds its first person). Tests check that both
compute the same from the same weights.

    decoder = DeepLabV3PlusDecoder(encoder.out_channels, out_channels=96, atrous_rates=(6, 12, 18))
    fused = decoder(encoder(x))    # stride 4, out_channels
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

LOW_LEVEL_CHANNELS = 48  # the stride-4 skip's width, as the paper has it


def conv_bn_relu(in_channels: int, out_channels: int, kernel: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel, padding=dilation * (kernel // 2),
                                   dilation=dilation, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU())


def separable(in_channels: int, out_channels: int) -> nn.Sequential:
    """A 3x3 depthwise convolution, then a bias-free pointwise one."""
    return nn.Sequential(nn.Conv2d(in_channels, in_channels, 3, padding=1, groups=in_channels, bias=False),
                         nn.Conv2d(in_channels, out_channels, 1, bias=False))


class ImagePooling(nn.Sequential):
    """ASPP's image-level branch: global average, 1x1 convolution, spread back over the map."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(nn.AdaptiveAvgPool2d(1), nn.Conv2d(in_channels, out_channels, 1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(super().forward(x), size=x.shape[-2:], mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: a 1x1 branch, three dilated 3x3 branches, image pooling,
    concatenated and projected (with dropout in training)."""

    def __init__(self, in_channels: int, out_channels: int, rates: Sequence[int], dropout: float) -> None:
        super().__init__()
        self.convs = nn.ModuleList([conv_bn_relu(in_channels, out_channels),
                                    *(conv_bn_relu(in_channels, out_channels, 3, rate) for rate in rates),
                                    ImagePooling(in_channels, out_channels)])
        self.project = nn.Sequential(nn.Conv2d(len(self.convs) * out_channels, out_channels, 1, bias=False),
                                     nn.BatchNorm2d(out_channels), nn.ReLU(), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([branch(x) for branch in self.convs], dim=1))


class DeepLabV3PlusDecoder(nn.Module):
    """ASPP on the deepest map (stride 16), upsampled 4x and fused with the stride-4 map.

    encoder_channels: the encoder's `out_channels` ([input, stride 2, 4, 8, 16]); the stride-4 map
    is `features[2]`, the deepest `features[-1]`.
    """

    def __init__(self, encoder_channels: Sequence[int], out_channels: int, atrous_rates: Sequence[int],
                 dropout: float = 0.1) -> None:
        super().__init__()
        if len(atrous_rates) != 3:
            raise ValueError(f"ASPP takes three atrous rates, got {list(atrous_rates)}")
        self.aspp = nn.Sequential(ASPP(encoder_channels[-1], out_channels, atrous_rates, dropout),
                                  separable(out_channels, out_channels), nn.BatchNorm2d(out_channels), nn.ReLU())
        self.block1 = conv_bn_relu(encoder_channels[2], LOW_LEVEL_CHANNELS)
        self.block2 = nn.Sequential(separable(out_channels + LOW_LEVEL_CHANNELS, out_channels),
                                    nn.BatchNorm2d(out_channels), nn.ReLU())

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        deep = F.interpolate(self.aspp(features[-1]), scale_factor=4, mode="bilinear", align_corners=True)
        return self.block2(torch.cat([deep, self.block1(features[2])], dim=1))
