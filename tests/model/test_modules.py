"""Shapes and behaviour of the building blocks and the decoder."""

from __future__ import annotations

import torch

from vcseg.model.decoder import Decoder
from vcseg.model.modules import ASPP, ResBlock, SpatialConstraint, UpsampleBlock


def test_res_block_shapes_and_identity_skip():
    x = torch.randn(2, 6, 5, 7)
    assert ResBlock(6, 4)(x).shape == (2, 4, 5, 7)
    block = ResBlock(6, 6)
    for conv in (block.conv1, block.conv2):
        torch.nn.init.zeros_(conv.weight)
        torch.nn.init.zeros_(conv.bias)
    assert torch.equal(block(x), x)  # with a zero residual the block passes x through


def test_upsample_block_goes_to_the_skip_size():
    block = UpsampleBlock(skip_channels=3, channels=8, out_channels=4)
    skip = block.project_skip(torch.randn(2, 3, 10, 14))
    assert skip.shape == (2, 8, 10, 14)
    assert block(skip, torch.randn(2, 8, 5, 7)).shape == (2, 4, 10, 14)


def test_aspp_keeps_the_size_with_any_rates():
    aspp = ASPP(6, 5, rates=(1, 2, 4))
    assert len(aspp.branches) == 4  # 1x1 + one per rate (image pooling is separate)
    assert aspp(torch.randn(1, 6, 3, 5)).shape == (1, 5, 3, 5)


def test_spatial_constraint_gates_features_by_an_attention_in_zero_one():
    torch.manual_seed(0)
    constraint = SpatialConstraint(4)
    features = torch.randn(2, 4, 6, 6)
    mask = torch.zeros(2, 1, 24, 24)
    mask[:, :, :12] = 1
    gated, attention = constraint(features, mask)
    assert attention.shape == (2, 1, 6, 6)
    assert attention.min() > 0 and attention.max() < 1
    torch.testing.assert_close(gated, features * attention)
    _, other_attention = constraint(features, torch.zeros_like(mask))
    assert not torch.allclose(attention, other_attention)  # the previous mask steers the attention


def test_spatial_constraint_resizes_the_mask_to_the_features():
    constraint = SpatialConstraint(1)
    with torch.no_grad():
        constraint.conv.weight.zero_()
        constraint.conv.bias.zero_()
        constraint.conv.weight[0, 1, 1, 1] = 1.0  # attention = sigmoid(resized mask)
    mask = torch.zeros(1, 1, 8, 8)
    mask[:, :, :4] = 1  # top half
    _, attention = constraint(torch.zeros(1, 1, 2, 2), mask)
    expected = torch.sigmoid(torch.tensor([[1.0, 1.0], [0.0, 0.0]]))
    torch.testing.assert_close(attention[0, 0], expected)


def test_decoder_gives_full_resolution_logits_per_object():
    decoder = Decoder(in_channels=10, skip8_channels=6, skip4_channels=4, channels=8, rates=(1, 2))
    x = torch.randn(2, 3, 10, 3, 5)  # B=2, K=3 at stride 16 of a 48x80 frame
    logits = decoder(x, torch.randn(2, 6, 6, 10), torch.randn(2, 4, 12, 20))
    assert logits.shape == (2, 3, 48, 80)


def test_decoder_objects_are_decoded_independently():
    torch.manual_seed(0)
    decoder = Decoder(in_channels=4, skip8_channels=3, skip4_channels=3, channels=4, rates=(1,))
    x, f8, f4 = torch.randn(1, 2, 4, 2, 2), torch.randn(1, 3, 4, 4), torch.randn(1, 3, 8, 8)
    both = decoder(x, f8, f4)
    torch.testing.assert_close(both[:, 1:], decoder(x[:, 1:], f8, f4))
