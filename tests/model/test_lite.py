"""vcseg's EfficientNet-Lite encoders against segmentation-models-pytorch's (timm's network): the
same tensors by name and shape, the same maps to the last bit, the same parameters frozen."""

from __future__ import annotations

import pytest
import torch

from tests.model.conftest import random_state
from vcseg.model.encoders import DEPTH, build_encoder, drop_uncalled_children, freeze_unused
from vcseg.model.lite import LiteEncoder, make_divisible, stage_plan

smp = pytest.importorskip("segmentation_models_pytorch")


def _smp_encoder(variant: int, in_channels: int, depth: int) -> torch.nn.Module:
    return smp.encoders.get_encoder(f"tu-tf_efficientnet_lite{variant}", in_channels=in_channels, depth=depth,
                                    weights=None)


@pytest.mark.parametrize("variant, in_channels, depth", [(0, 3, 4), (0, 5, 4), (1, 3, 4), (2, 3, 5), (4, 3, 3)])
def test_same_tensors_and_maps_as_smp(variant, in_channels, depth):
    reference = _smp_encoder(variant, in_channels, depth)
    ours = LiteEncoder(variant, in_channels, depth)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in reference.state_dict().items()}
    assert ours.out_channels == list(reference.out_channels)
    state = random_state(reference.state_dict(), seed=variant)
    reference.load_state_dict(state)
    ours.load_state_dict(state, strict=True)
    x = torch.randn(2, in_channels, 67, 93)  # odd sizes: TF "same" padding puts the odd pixel last
    for train in (False, True):
        reference.train(train)
        ours.train(train)
        with torch.no_grad():
            expected, found = reference(x), ours(x)
        assert [m.shape for m in found] == [m.shape for m in expected]
        for a, b in zip(found, expected):
            assert torch.equal(a, b)
    # training mode updated both networks' batch-norm statistics alike, except in the stages past
    # the last map, which smp runs and ours skips (their outputs are never used)
    last = ours.model.out_stages[-1]
    for key, value in reference.state_dict().items():
        parts = key.split(".")
        if parts[:2] != ["model", "blocks"] or int(parts[2]) <= last:
            assert torch.equal(ours.state_dict()[key], value), key


def test_unused_stages_frozen_as_the_gradient_probe_finds_them():
    ours = build_encoder("tu-tf_efficientnet_lite0", in_channels=5)
    assert isinstance(ours, LiteEncoder)
    frozen = {name for name, parameter in ours.named_parameters() if not parameter.requires_grad}
    reference = _smp_encoder(0, 5, DEPTH)
    drop_uncalled_children(reference, 5)
    assert frozen == freeze_unused(reference, 5)
    assert frozen and all(name.startswith(("model.blocks.5.", "model.blocks.6.")) for name in frozen)


def test_channel_rounding_and_depth_scaling():
    # the EfficientNet reference's rounding: to a multiple of 8, never more than 10% down
    assert [make_divisible(c * 1.1) for c in (16, 24, 40, 80, 112, 192, 320)] == [16, 24, 48, 88, 120, 208, 352]
    assert make_divisible(20) == 24 and make_divisible(17.6) == 16
    # Lite2 (depth x1.2): repeats rounded up, the first and last stage unscaled
    assert [stage[1] for stage in stage_plan(2)] == [1, 3, 3, 4, 4, 5, 1]


@pytest.mark.parametrize("kernel", [3, 5])
@pytest.mark.parametrize("height, width", [(12, 16), (13, 17), (12, 17), (13, 16)])
def test_depthwise_same_convolution_equals_padding_first(kernel, height, width):
    """A stride-2 depthwise SameConv2d pads inside the convolution (a zero first kernel row /
    column where the padding is odd): the same maps to the bit, and the same weight gradient, as
    padding the input the TF "same" way first."""
    import torch.nn.functional as F

    from vcseg.model.lite import SameConv2d, _same_padding

    generator = torch.Generator().manual_seed(kernel * 100 + height + width)
    conv = SameConv2d(6, 6, kernel, stride=2, groups=6, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator))
    x = torch.randn(2, 6, height, width, generator=generator)
    pad_h, pad_w = _same_padding(height, kernel, 2, 1), _same_padding(width, kernel, 2, 1)
    padded = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
    expected = F.conv2d(padded, conv.weight, stride=2, groups=6)
    found = conv(x)
    assert found.shape == (2, 6, -(-height // 2), -(-width // 2))
    assert torch.equal(found, expected)
    (expected_grad,) = torch.autograd.grad(expected.square().sum(), conv.weight)
    (found_grad,) = torch.autograd.grad(found.square().sum(), conv.weight)
    torch.testing.assert_close(found_grad, expected_grad)
