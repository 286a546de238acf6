"""vcseg's DeepLabV3+ decoder against segmentation-models-pytorch's: the same tensors by name and
shape, the same output from the same weights, in eval and in training mode."""

from __future__ import annotations

import pytest
import torch

from tests.model.conftest import random_state
from vcseg.model.deeplab import DeepLabV3PlusDecoder

decoder_module = pytest.importorskip("segmentation_models_pytorch.decoders.deeplabv3.decoder")


def test_same_tensors_and_output_as_smp():
    channels = [3, 16, 24, 40, 112]
    reference = decoder_module.DeepLabV3PlusDecoder(
        encoder_channels=channels, encoder_depth=4, out_channels=32, atrous_rates=(6, 12, 18), output_stride=16,
        aspp_separable=False, aspp_dropout=0.1)
    ours = DeepLabV3PlusDecoder(channels, out_channels=32, atrous_rates=(6, 12, 18), dropout=0.1)
    state = reference.state_dict()
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in state.items()}
    state = random_state(state)
    reference.load_state_dict(state)
    ours.load_state_dict(state, strict=True)
    features = [torch.randn(2, c, 128 // s, 160 // s) for c, s in zip(channels, (1, 2, 4, 8, 16))]
    for train in (False, True):
        reference.train(train)
        ours.train(train)
        torch.manual_seed(1)  # the same dropout mask in training mode
        expected = reference(features)
        torch.manual_seed(1)
        found = ours(features)
        assert found.shape == (2, 32, 32, 40)
        assert torch.equal(found, expected)


def test_needs_three_rates():
    with pytest.raises(ValueError, match="three atrous rates"):
        DeepLabV3PlusDecoder([3, 16, 24, 40, 112], out_channels=8, atrous_rates=(6, 12))
