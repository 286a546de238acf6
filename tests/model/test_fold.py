"""Folding batch norms into convolutions: same outputs, no batch norm left, wrong pairs refused."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from tests.model.conftest import tiny_config
from vcseg.model import MemoryNetwork
from vcseg.model.encoders import build_encoder
from vcseg.model.fold import fold_batch_norms


def with_statistics(module: nn.Module, seed: int = 0) -> nn.Module:
    """Batch norms given running statistics and affine parameters far from the identity, so that a
    fold that ignored any of them would change the output."""
    generator = torch.Generator().manual_seed(seed)
    for norm in module.modules():
        if isinstance(norm, nn.BatchNorm2d):
            channels = norm.num_features
            norm.running_mean.copy_(torch.randn(channels, generator=generator))
            norm.running_var.copy_(0.5 + torch.rand(channels, generator=generator))
            if norm.affine:
                norm.weight.data.copy_(0.5 + torch.rand(channels, generator=generator))
                norm.bias.data.copy_(torch.randn(channels, generator=generator))
    return module.eval()


def batch_norms(module: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in module.modules())


def batch_norms_run(module: nn.Module, x: torch.Tensor) -> int:
    """The batch norms a forward pass calls (EfficientNet-Lite keeps its stride-32 stages for the
    state dict and never runs them)."""
    ran = set()
    handles = [m.register_forward_hook(lambda m, *_: ran.add(m)) for m in module.modules()
               if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        module(x)
    for handle in handles:
        handle.remove()
    return len(ran)


def test_a_convolution_and_its_batch_norm_become_one_convolution():
    torch.manual_seed(0)
    module = with_statistics(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=True), nn.BatchNorm2d(8), nn.ReLU()))
    x = torch.randn(2, 3, 10, 12)
    expected = module(x)
    assert fold_batch_norms(module, torch.rand(1, 3, 8, 8)) == 1
    assert isinstance(module[1], nn.Identity)
    torch.testing.assert_close(module(x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["tu-tf_efficientnet_lite0", "resnet18"])
def test_encoders_lose_every_batch_norm_and_keep_their_features(name):
    torch.manual_seed(0)
    encoder = with_statistics(build_encoder(name, 3, None))
    norms, run = batch_norms(encoder), batch_norms_run(encoder, torch.rand(1, 3, 32, 32))
    assert run == norms or name.startswith("tu-tf_efficientnet_lite") and run > 0.6 * norms
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        expected = encoder(x)
        assert fold_batch_norms(encoder, torch.rand(1, 3, 32, 32)) == run
        folded = encoder(x)
    assert batch_norms_run(encoder, x) == 0 and batch_norms(encoder) == norms - run
    for a, b in zip(folded, expected):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


class RawOutputUsedTwice(nn.Module):
    """bn(conv(x)) + conv(x): folding would change the second use, so it must be refused."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.norm = nn.BatchNorm2d(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raw = self.conv(x)
        return self.norm(raw) + raw


def test_a_fold_that_changes_the_output_is_undone():
    torch.manual_seed(0)
    module = with_statistics(RawOutputUsedTwice())
    before = copy.deepcopy(module.state_dict())
    x = torch.randn(1, 3, 5, 5)
    expected = module(x)
    assert fold_batch_norms(module, x) == 0
    assert isinstance(module.norm, nn.BatchNorm2d) and module.conv.bias is not None
    for key, value in module.state_dict().items():
        torch.testing.assert_close(value, before[key])
    torch.testing.assert_close(module(x), expected)


def test_training_mode_is_refused():
    module = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4))
    with pytest.raises(ValueError, match="eval mode"):
        fold_batch_norms(module, torch.rand(1, 3, 4, 4))


def test_a_network_made_for_prediction_predicts_the_same():
    torch.manual_seed(0)
    model = with_statistics(MemoryNetwork(tiny_config()))
    fast = copy.deepcopy(model).for_prediction()
    assert batch_norms(fast.encoder) == 0 and batch_norms(fast.value_encoder) == 0
    assert fast.config.channels_last and fast.encoder.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    frames = torch.rand(1, 3, 3, 48, 80)
    masks = torch.zeros(1, 2, 48, 80)
    masks[:, 0, 8:24, 10:30] = 1
    masks[:, 1, 20:40, 40:70] = 1
    with torch.no_grad():
        torch.testing.assert_close(fast(frames, masks), model(frames, masks), rtol=1e-4, atol=1e-4)
