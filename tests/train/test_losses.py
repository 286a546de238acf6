from __future__ import annotations

import math

import pytest
import torch

from vcseg.train.losses import bootstrapped_cross_entropy, hard_pixel_fraction, masks_to_target


def test_hard_pixel_fraction_ramp():
    assert hard_pixel_fraction(0, 100, 300, 0.15) == 1.0
    assert hard_pixel_fraction(100, 100, 300, 0.15) == 1.0
    assert hard_pixel_fraction(200, 100, 300, 0.15) == pytest.approx(0.575)
    assert hard_pixel_fraction(300, 100, 300, 0.15) == pytest.approx(0.15)
    assert hard_pixel_fraction(10_000, 100, 300, 0.15) == pytest.approx(0.15)


def test_bootstrapped_ce_keeps_the_hardest_pixels():
    # 4 pixels, 2 classes; the true class is 0 everywhere, logits make losses known in closed form
    margins = torch.tensor([4.0, 2.0, 0.0, -2.0])  # logit(class 0) - logit(class 1)
    logits = torch.stack([margins, torch.zeros(4)]).view(1, 2, 2, 2)
    target = torch.zeros(1, 2, 2, dtype=torch.long)
    losses = [math.log1p(math.exp(-m)) for m in margins.tolist()]  # softplus(-margin)
    assert bootstrapped_cross_entropy(logits, target, 1.0).item() == pytest.approx(sum(losses) / 4)
    assert bootstrapped_cross_entropy(logits, target, 0.5).item() == pytest.approx((losses[2] + losses[3]) / 2)
    assert bootstrapped_cross_entropy(logits, target, 0.01).item() == pytest.approx(losses[3])


def test_masks_to_target():
    one_hot = torch.zeros(1, 2, 1, 3)
    one_hot[0, 0, 0, 1] = 1
    one_hot[0, 1, 0, 2] = 1
    assert masks_to_target(one_hot).tolist() == [[[0, 1, 2]]]
