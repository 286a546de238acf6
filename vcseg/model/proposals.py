"""The per-frame person proposal network: Panoptic-DeepLab heads on a DeepLabV3+ decoder.

The test set gives no first-frame mask, so the people must be found in single frames before the
memory network can follow them. `ProposalNetwork` predicts, for one frame, three maps at the
output stride (Cheng et al., "Panoptic-DeepLab", CVPR 2020):

    foreground_logits  B, 1, h, w   person vs background (persons with what they carry)
    centre_logits      B, 1, h, w   instance-centre heatmap, before the sigmoid
    offsets            B, 2, h, w   (dy, dx) from each pixel to its instance's centre, in pixels
                                    of the output resolution

with (h, w) = (H, W) / output_stride. Output stride 4 is the decoder's native resolution; output
stride 1 upsamples the three maps bilinearly to the input size (offsets are multiplied by 4 so
that they stay in output pixels). Frames are float RGB in [0, 1] (the network normalises them
itself with `config.input_mean` / `input_std`, resolved from the encoder's weights), of any height
and width that are multiples of 16: padding is the caller's job (`vcseg.infer.proposals.predict_proposals` does it).

Simplification of Panoptic-DeepLab: one shared decoder (DeepLabV3+, `vcseg.model.deeplab`, on a stride-16
encoder, as the memory network's encoders are built) instead of separate semantic and instance
decoders; each map has its own small head.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vcseg.config import ProposalConfig
from vcseg.model.deeplab import DeepLabV3PlusDecoder
from vcseg.model.encoders import build_encoder
from vcseg.model.losses import dice_loss
from vcseg.model.pretrained import with_input_normalisation

INPUT_MULTIPLE = 16  # the encoders stop at stride 16
DECODER_STRIDE = 4  # DeepLabV3+ fuses the stride-16 ASPP output with the stride-4 skip map


class PredictionHead(nn.Sequential):
    """3x3 conv + BN + ReLU, then a 1x1 conv to `out_channels` maps."""

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int):
        super().__init__(nn.Conv2d(in_channels, hidden_channels, 3, padding=1, bias=False),
                         nn.BatchNorm2d(hidden_channels), nn.ReLU(inplace=True),
                         nn.Conv2d(hidden_channels, out_channels, 1))


class ProposalNetwork(nn.Module):
    """Foreground, centre heatmap and centre offsets of the people in a batch of frames.

    Example:
        model = ProposalNetwork(ProposalConfig(encoder="resnet18", decoder_channels=128))
        outputs = model(frames)  # B, 3, H, W in [0, 1] -> dict of B, {1, 1, 2}, H/4, W/4 maps
        loss, parts = proposal_loss(outputs, targets)
    """

    def __init__(self, config: ProposalConfig):
        super().__init__()
        config = with_input_normalisation(config, "proposals.encoder_weights")  # input_mean / input_std filled in
        self.config = config
        self.encoder = build_encoder(config.encoder, 3, config.encoder_weights, "proposals.encoder_weights")
        self.decoder = DeepLabV3PlusDecoder(self.encoder.out_channels, out_channels=config.decoder_channels,
                                            atrous_rates=config.aspp_rates, dropout=0.1)
        # The ASPP's image-pooling branch batch-normalises a 1x1 map: at batch size 1 (one frame
        # per GPU) training would fail, so it normalises over channels instead.
        pooling = self.decoder.aspp[0].convs[-1]
        pooling[2] = nn.GroupNorm(1, config.decoder_channels)
        channels = config.decoder_channels
        self.foreground_head = PredictionHead(channels, config.head_channels, 1)
        self.centre_head = PredictionHead(channels, config.head_channels, 1)
        self.offset_head = PredictionHead(channels, config.head_channels, 2)
        # Start from "no person, no centre": early training is not flooded by spurious peaks.
        nn.init.constant_(self.foreground_head[-1].bias, -2.0)
        nn.init.constant_(self.centre_head[-1].bias, -4.0)
        self.register_buffer("mean", torch.tensor(config.input_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(config.input_std).view(1, 3, 1, 1), persistent=False)

    @property
    def output_stride(self) -> int:
        return self.config.output_stride

    def forward(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        """frames: B, 3, H, W in [0, 1], H and W multiples of 16 -> the three maps (module docstring)."""
        if frames.dim() != 4 or frames.shape[1] != 3:
            raise ValueError(f"frames must be B, 3, H, W (got {tuple(frames.shape)})")
        height, width = frames.shape[-2:]
        if height % INPUT_MULTIPLE or width % INPUT_MULTIPLE:
            raise ValueError(f"frame size {height}x{width} is not a multiple of {INPUT_MULTIPLE}; pad the frames first")
        features = self.encoder((frames - self.mean) / self.std)
        decoded = self.decoder(features)  # B, C, H/4, W/4
        foreground = self.foreground_head(decoded)
        centre = self.centre_head(decoded)
        offsets = self.offset_head(decoded)  # in stride-4 pixels
        if self.config.output_stride == 1:
            size = (height, width)
            foreground = F.interpolate(foreground, size=size, mode="bilinear", align_corners=False)
            centre = F.interpolate(centre, size=size, mode="bilinear", align_corners=False)
            offsets = DECODER_STRIDE * F.interpolate(offsets, size=size, mode="bilinear", align_corners=False)
        return {"foreground_logits": foreground, "centre_logits": centre, "offsets": offsets}


def build_proposal_model(config: ProposalConfig) -> ProposalNetwork:
    """The proposal network described by `config` (random weights, or the encoder's: ImageNet or from disk)."""
    return ProposalNetwork(config)


# ---- the loss -----------------------------------------------------------------------------------

def proposal_loss(outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor], *,
                  centre_weight: float = 200.0, offset_weight: float = 0.05,
                  bootstrap_fraction: float = 1.0,
                  dice_weight: float = 0.0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Panoptic-DeepLab's loss: (total, parts) with parts foreground, centre, offset (detached,
    already multiplied by their weights; total is their sum).

    outputs: the network's dict; targets: `vcseg.model.proposal_targets` maps at the same
    resolution, batched (foreground, foreground_weight, centre, centre_weight: B, 1, h, w;
    offsets: B, 2, h, w; offset_weight: B, 1, h, w).

    - foreground: binary cross-entropy per pixel times foreground_weight, averaged over the
      hardest `bootstrap_fraction` of the pixels (all of them at 1.0);
    - centre: squared error of the sigmoid heatmap, weighted by centre_weight, averaged over all
      pixels, times `centre_weight` (200 in Panoptic-DeepLab, whose Gaussians are mostly ~0);
    - with `dice_weight` > 0 the foreground part also holds dice_weight x (1 - soft dice) per
      frame over its weighted pixels, averaged over the frames (a frame with no person scores 1
      when it predicts none): the BCE is an average over mostly background pixels, and a network
      that half-believes in a person it has not seen still pays little for it;
    - offset: absolute error of (dy, dx), averaged over the pixels with offset_weight > 0 and
      the two channels (0 when a batch has no instance), times `offset_weight`.
    Computed in float32 whatever the autocast dtype of the outputs.
    """
    foreground_logits = outputs["foreground_logits"].float()
    if foreground_logits.shape[-2:] != targets["foreground"].shape[-2:]:
        raise ValueError(f"outputs at {tuple(foreground_logits.shape[-2:])} but targets at "
                         f"{tuple(targets['foreground'].shape[-2:])}: build targets at the model's output stride")
    bce = F.binary_cross_entropy_with_logits(foreground_logits, targets["foreground"].float(), reduction="none")
    bce = (bce * targets["foreground_weight"]).flatten()
    if bootstrap_fraction < 1.0:
        bce = bce.topk(max(1, int(bootstrap_fraction * bce.numel()))).values
    foreground_loss = bce.mean()
    if dice_weight > 0:
        # one slot per frame, every frame counted; void pixels (weight 0) left out of both sides
        weight = targets["foreground_weight"]
        per_frame = torch.ones(weight.shape[0], 1, dtype=torch.bool, device=weight.device)
        foreground_loss = foreground_loss + dice_weight * dice_loss(
            torch.sigmoid(foreground_logits) * weight, targets["foreground"].float() * weight, per_frame)

    centre = torch.sigmoid(outputs["centre_logits"].float())
    centre_loss = ((centre - targets["centre"]) ** 2 * targets["centre_weight"]).mean() * centre_weight

    offset_mask = targets["offset_weight"]  # B, 1, h, w
    error = (outputs["offsets"].float() - targets["offsets"]).abs() * offset_mask
    offset_loss = error.sum() / (2 * offset_mask.sum()).clamp(min=1.0) * offset_weight

    total = foreground_loss + centre_loss + offset_loss
    parts = {"foreground": foreground_loss.detach(), "centre": centre_loss.detach(), "offset": offset_loss.detach()}
    return total, parts


def loss_from_config(outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor],
                     config: ProposalConfig) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """`proposal_loss` with the weights of `config`."""
    return proposal_loss(outputs, targets, centre_weight=config.centre_loss_weight,
                         offset_weight=config.offset_loss_weight, bootstrap_fraction=config.bootstrap_fraction,
                         dice_weight=config.foreground_dice_weight)
