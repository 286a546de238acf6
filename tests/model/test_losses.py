from __future__ import annotations

import pytest
import torch

from vcseg.model.losses import dice_loss
from vcseg.train import losses as train_losses


def test_dice_loss_values_and_invalid_slots():
    one_hot = torch.zeros(1, 2, 2, 2)
    one_hot[0, 0, 0, :] = 1  # object 1: top row
    perfect = one_hot.clone()
    eps = 1.0
    # slot 0 perfect: dice = (2*2+1)/(4+1) = 1; slot 1 empty on both sides: dice = 1/1 = 1
    assert dice_loss(perfect, one_hot, torch.tensor([[True, True]]), eps).item() == pytest.approx(0.0)
    half = torch.full((1, 2, 2, 2), 0.5)
    # slot 0: intersection 1, total 2 + 2 -> dice (2+1)/(4+1) = 0.6; slot 1 (invalid) ignored
    assert dice_loss(half, one_hot, torch.tensor([[True, False]]), eps).item() == pytest.approx(0.4)


def test_train_losses_use_the_same_dice() -> None:
    assert train_losses.dice_loss is dice_loss
