"""The one resize-and-pad from a frame's size to the network's, and its exact inverse.

A frame of any size H x W is resized so that its short side is `short_side` (keeping the aspect
ratio), then padded with zeros to multiples of the network's stride (16), the padding split
between both sides as STCN does. `to_network` applies that to frames and masks alike (B, C, H, W
float tensors); `from_network` removes the padding and resizes back to exactly H x W. Both are
bilinear: masks travel as probabilities, and ids are recovered by an argmax at the original size
(exactly the same ids when the frame was only padded, or upscaled by an integer factor).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from vcseg.model.network import STRIDE


@dataclass(frozen=True)
class Geometry:
    """Where a frame of `height` x `width` lands in the network input (all in pixels)."""

    height: int
    width: int
    resized_height: int
    resized_width: int
    pad_top: int
    pad_bottom: int
    pad_left: int
    pad_right: int

    @property
    def padded_size(self) -> tuple[int, int]:
        return (self.resized_height + self.pad_top + self.pad_bottom,
                self.resized_width + self.pad_left + self.pad_right)

    @property
    def resizes(self) -> bool:
        return (self.resized_height, self.resized_width) != (self.height, self.width)


def plan_geometry(height: int, width: int, short_side: int, stride: int = STRIDE) -> Geometry:
    """The resize (short side -> `short_side`, aspect kept, rounded) and padding for an H x W frame."""
    if height < 1 or width < 1:
        raise ValueError(f"frame size must be positive (got {height}x{width})")
    if short_side < 1:
        raise ValueError(f"short_side must be positive (got {short_side})")
    scale = short_side / min(height, width)
    resized_height = short_side if height <= width else max(1, round(height * scale))
    resized_width = short_side if width < height else max(1, round(width * scale))
    pad_height = -resized_height % stride
    pad_width = -resized_width % stride
    return Geometry(height=height, width=width, resized_height=resized_height, resized_width=resized_width,
                    pad_top=pad_height // 2, pad_bottom=pad_height - pad_height // 2,
                    pad_left=pad_width // 2, pad_right=pad_width - pad_width // 2)


def to_network(images: torch.Tensor, geometry: Geometry) -> torch.Tensor:
    """B, C, H, W float -> B, C, padded H, padded W: resized (antialiased when shrinking), zero-padded."""
    if tuple(images.shape[-2:]) != (geometry.height, geometry.width):
        raise ValueError(f"expected {geometry.height}x{geometry.width} images, got {tuple(images.shape[-2:])}")
    if geometry.resizes:
        shrinking = geometry.resized_height < geometry.height
        images = F.interpolate(images, size=(geometry.resized_height, geometry.resized_width), mode="bilinear",
                               align_corners=False, antialias=shrinking)
    return F.pad(images, (geometry.pad_left, geometry.pad_right, geometry.pad_top, geometry.pad_bottom))


def from_network(maps: torch.Tensor, geometry: Geometry) -> torch.Tensor:
    """B, C, padded H, padded W -> B, C, H, W: padding removed, resized back to the frame's size."""
    if tuple(maps.shape[-2:]) != geometry.padded_size:
        raise ValueError(f"expected {geometry.padded_size} maps, got {tuple(maps.shape[-2:])}")
    maps = maps[..., geometry.pad_top:geometry.pad_top + geometry.resized_height,
                geometry.pad_left:geometry.pad_left + geometry.resized_width]
    if geometry.resizes:
        # Plain bilinear, no antialias, even when shrinking: after an integer upscale in
        # `to_network` it samples each pixel's own neighbourhood, so masks come back exactly.
        maps = F.interpolate(maps, size=(geometry.height, geometry.width), mode="bilinear", align_corners=False)
    return maps
