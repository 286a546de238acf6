"""The mask decoder: ASPP on the memory read, refinement with stride-8 and stride-4 skips."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vcseg.model.modules import ASPP, UpsampleBlock


class Decoder(nn.Module):
    """Per-object logits at full resolution from stride-16 features and the frame's skip maps.

    Example:
        decoder = Decoder(in_channels=1024, skip8_channels=512, skip4_channels=256, channels=256,
                          rates=(2, 4, 8))
        logits = decoder(x, f8, f4)  # x: B, K, 1024, h, w; f8: B, 512, 2h, 2w; f4: B, 256, 4h, 4w
                                     # -> B, K, 16h, 16w
    """

    def __init__(self, in_channels: int, skip8_channels: int, skip4_channels: int, channels: int,
                 rates: tuple[int, ...]):
        super().__init__()
        self.aspp = ASPP(in_channels, channels, rates)
        self.up_16_8 = UpsampleBlock(skip8_channels, channels, channels)
        self.up_8_4 = UpsampleBlock(skip4_channels, channels, channels)
        self.predict = nn.Conv2d(channels, 1, 3, padding=1)

    def forward(self, x: torch.Tensor, f8: torch.Tensor, f4: torch.Tensor) -> torch.Tensor:
        batch, objects = x.shape[:2]
        x = self.aspp(x.flatten(0, 1))  # B*K, C, h, w
        # The skip projections depend on the frame only: computed once, shared by its K objects.
        skip8 = _repeat_objects(self.up_16_8.project_skip(f8), objects)  # B*K, C, 2h, 2w
        skip4 = _repeat_objects(self.up_8_4.project_skip(f4), objects)  # B*K, C, 4h, 4w
        x = self.up_16_8(skip8, x)
        x = self.up_8_4(skip4, x)
        logits = self.predict(F.relu(x))  # B*K, 1, 4h, 4w
        logits = F.interpolate(logits, scale_factor=4, mode="bilinear", align_corners=False)
        return logits.view(batch, objects, *logits.shape[-2:])


def _repeat_objects(frame_map: torch.Tensor, objects: int) -> torch.Tensor:
    """B, C, h, w -> B*K, C, h, w (each frame's map once per object)."""
    return frame_map.unsqueeze(1).expand(-1, objects, -1, -1, -1).flatten(0, 1)
