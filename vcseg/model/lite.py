"""EfficientNet-Lite feature encoders in plain torch, the same network and state dict as
segmentation-models-pytorch's `tu-tf_efficientnet_lite0` .. `lite4` (timm's `tf_efficientnet_lite*`
wrapped by smp's universal encoder).

Why our own: the default weights use Lite0, and building it through smp means importing smp,
timm and torchvision (about 2 s before the first frame, `vcseg predict`'s start-up) and timm's
model factory (0.3 s per encoder). The network is small enough to state here; every tensor keeps
smp's name (`model.conv_stem.weight`, `model.blocks.1.0.conv_pw.weight`, ...), so checkpoints,
ImageNet weights and folding work on either, and tests check that both compute the same maps.

    encoder = LiteEncoder(variant=0, in_channels=3, depth=4)
    maps = encoder(x)      # [x, stride 2, 4, 8, 16] (depth 4), channels encoder.out_channels

TF "same" padding, as the ImageNet weights were trained with (symmetric padding moves the output
of the reference implementation by 2.8): stride-1 convolutions pad k // 2 on each side, stride-2
ones pad the odd pixel at the bottom / right.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

#: (channel multiplier, depth multiplier) of each variant (Tan & Le's EfficientNet-Lite)
VARIANTS = {0: (1.0, 1.0), 1: (1.0, 1.1), 2: (1.1, 1.2), 3: (1.2, 1.4), 4: (1.4, 1.8)}
#: per stage: (depthwise-separable block?, repeats, kernel, stride, expansion, channels) at multiplier 1
STAGES = ((True, 1, 3, 1, 1, 16), (False, 2, 3, 2, 6, 24), (False, 2, 5, 2, 6, 40), (False, 3, 3, 2, 6, 80),
          (False, 3, 5, 1, 6, 112), (False, 4, 5, 2, 6, 192), (False, 1, 3, 1, 6, 320))
STEM_CHANNELS = 32  # fixed in every variant
BN_EPS = 1e-3  # TensorFlow's batch-norm epsilon, which the ImageNet weights were trained with
#: smp names: "tu-tf_efficientnet_liteN" -> N
SMP_NAMES = {f"tu-tf_efficientnet_lite{variant}": variant for variant in VARIANTS}


def make_divisible(value: float, divisor: int = 8) -> int:
    """`value` rounded to the nearest multiple of `divisor`, never more than 10% below it (as the
    EfficientNet reference rounds channel counts)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def stage_plan(variant: int) -> list[tuple[bool, int, int, int, int, int]]:
    """STAGES scaled for `variant`: channels by its multiplier, repeats by its depth multiplier
    (rounded up), the first and the last stage unscaled."""
    width, depth = VARIANTS[variant]
    plan = []
    for index, (separable, repeats, kernel, stride, expansion, channels) in enumerate(STAGES):
        if 0 < index < len(STAGES) - 1:
            repeats = int(math.ceil(repeats * depth))
        plan.append((separable, repeats, kernel, stride, expansion, make_divisible(channels * width)))
    return plan


class SameConv2d(nn.Conv2d):
    """A convolution padded as TensorFlow's "same" (stride > 1): ceil(size / stride) outputs, the
    odd padding pixel at the bottom and right. Its own padding is 0.

    A depthwise convolution does not pad its input: it pads symmetrically inside the convolution,
    one pixel more than half the padding where the padding is odd, with its kernel given a zero
    first row / column, which moves every window back by that pixel. The same products are
    summed in the same order (equal to the bit, `tests/model/test_lite.py`), and it skips
    F.pad's copy of a large map: on 2 cores, bf16, the stride-2 depthwise convolution of a
    96 x 240 x 432 map takes 3.4 ms against 5.9 ms padded first, and the default weights' value
    encoder (5 x 480 x 864 in) 42.7 ms against 57.6 ms (medians of 40 runs, interleaved). A dense
    convolution (the stem) pads its input: a kernel made larger costs it more than the copy.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        pad_h = _same_padding(height, self.kernel_size[0], self.stride[0], self.dilation[0])
        pad_w = _same_padding(width, self.kernel_size[1], self.stride[1], self.dilation[1])
        if not (pad_h or pad_w):
            return super().forward(x)
        if self.groups == self.in_channels > 1 and self.dilation == (1, 1):
            weight = F.pad(self.weight, (pad_w % 2, 0, pad_h % 2, 0))  # a zero first column / row where odd
            padding = (pad_h // 2 + pad_h % 2, pad_w // 2 + pad_w % 2)
            return F.conv2d(x, weight, self.bias, self.stride, padding, self.dilation, self.groups)
        x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
        return super().forward(x)


def _same_padding(size: int, kernel: int, stride: int, dilation: int) -> int:
    return max((math.ceil(size / stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)


def conv(in_channels: int, out_channels: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    """A bias-free convolution with TF "same" padding: static and symmetric where that is the same."""
    if stride == 1:
        return nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2, groups=groups, bias=False)
    return SameConv2d(in_channels, out_channels, kernel, stride=stride, groups=groups, bias=False)


class BatchNormAct2d(nn.BatchNorm2d):
    """A batch norm and its activation as one module (timm's layout: `drop` and `act` children, the
    batch norm's own tensors), so that state dicts and `vcseg.model.fold` treat it as timm's."""

    def __init__(self, channels: int, act: bool = True) -> None:
        super().__init__(channels, eps=BN_EPS)
        self.drop = nn.Identity()
        self.act = nn.ReLU6(inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.drop(super().forward(x)))


class _Block(nn.Module):
    """A block whose output gets its input added where the shapes allow (stride 1, same channels)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.residual = stride == 1 and in_channels == out_channels

    def body(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return out + x if self.residual else out


class DepthwiseSeparable(_Block):
    """Depthwise convolution, then pointwise."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int) -> None:
        super().__init__(in_channels, out_channels, stride)
        self.conv_dw = conv(in_channels, in_channels, kernel, stride, groups=in_channels)
        self.bn1 = BatchNormAct2d(in_channels)
        self.conv_pw = conv(in_channels, out_channels, 1)
        self.bn2 = BatchNormAct2d(out_channels, act=False)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn2(self.conv_pw(self.bn1(self.conv_dw(x))))


class InvertedResidual(_Block):
    """MobileNetV2's block, as EfficientNet-Lite has it (no squeeze-excitation): pointwise
    expansion, depthwise convolution, pointwise projection."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, expansion: int) -> None:
        super().__init__(in_channels, out_channels, stride)
        middle = make_divisible(in_channels * expansion)
        self.conv_pw = conv(in_channels, middle, 1)
        self.bn1 = BatchNormAct2d(middle)
        self.conv_dw = conv(middle, middle, kernel, stride, groups=middle)
        self.bn2 = BatchNormAct2d(middle)
        self.conv_pwl = conv(middle, out_channels, 1)
        self.bn3 = BatchNormAct2d(out_channels, act=False)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn3(self.conv_pwl(self.bn2(self.conv_dw(self.bn1(self.conv_pw(x))))))


class LiteFeatures(nn.Module):
    """The stem and every stage; `forward` returns the maps at the ends of `out_stages` (stage
    indices), and runs no stage past the last of them."""

    def __init__(self, variant: int, in_channels: int, out_stages: tuple[int, ...]) -> None:
        super().__init__()
        self.conv_stem = conv(in_channels, STEM_CHANNELS, 3, stride=2)
        self.bn1 = BatchNormAct2d(STEM_CHANNELS)
        stages, channels = [], STEM_CHANNELS
        for separable, repeats, kernel, stride, expansion, out_channels in stage_plan(variant):
            blocks = []
            for repeat in range(repeats):
                block_stride = stride if repeat == 0 else 1
                blocks.append(DepthwiseSeparable(channels, out_channels, kernel, block_stride) if separable
                              else InvertedResidual(channels, out_channels, kernel, block_stride, expansion))
                channels = out_channels
            stages.append(nn.Sequential(*blocks))
        self.blocks = nn.Sequential(*stages)  # every stage, so that state dicts hold what smp's do
        self.out_stages = tuple(out_stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.bn1(self.conv_stem(x))
        maps = []
        for index, stage in enumerate(self.blocks[:self.out_stages[-1] + 1]):
            x = stage(x)
            if index in self.out_stages:
                maps.append(x)
        return maps


class LiteEncoder(nn.Module):
    """smp's `tu-tf_efficientnet_lite<variant>` encoder: `encoder(x)` is `[x]` and the maps at
    strides 2 .. 2**depth; `out_channels` their channels. Tensors named as smp names them."""

    def __init__(self, variant: int = 0, in_channels: int = 3, depth: int = 5) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"EfficientNet-Lite variant must be one of {sorted(VARIANTS)}, got {variant}")
        if not 1 <= depth <= 5:
            raise ValueError(f"depth must be 1..5, got {depth}")
        plan = stage_plan(variant)
        # the stage ending each stride: the last stage before a stride-2 one, and the last stage
        ends = [index for index in range(len(plan)) if index == len(plan) - 1 or plan[index + 1][3] == 2]
        out_stages = tuple(ends[:depth])
        self.model = LiteFeatures(variant, in_channels, out_stages)
        self.out_channels = [in_channels] + [plan[index][5] for index in out_stages]
        self.depth = depth

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [x, *self.model(x)]

    def freeze_unused(self) -> set[str]:
        """Freeze the parameters of the stages `forward` never runs (kept for the state dict);
        returns their names, as `vcseg.model.encoders.freeze_unused` would find them."""
        unused = set()
        for index, stage in enumerate(self.model.blocks):
            if index > self.model.out_stages[-1]:
                for name, parameter in stage.named_parameters(prefix=f"model.blocks.{index}"):
                    unused.add(name)
                    if not parameter.is_inference():
                        parameter.requires_grad_(False)
        return unused
