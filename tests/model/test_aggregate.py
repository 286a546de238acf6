"""Soft aggregation and the other-objects masks against hand-worked values."""

from __future__ import annotations

import pytest
import torch

from vcseg.model.aggregate import other_objects, soft_aggregate


def test_one_object_sharpens_p_to_p2_over_p2_plus_q2():
    # K=1: background 1-p, logits -l and l with l = log(p/(1-p)), softmax -> p^2 / (p^2 + (1-p)^2)
    p = torch.tensor([0.2, 0.5, 0.8]).view(1, 1, 1, 3)
    logits, probs = soft_aggregate(p)
    assert logits.shape == probs.shape == (1, 2, 1, 3)
    expected = p**2 / (p**2 + (1 - p) ** 2)
    torch.testing.assert_close(probs[:, 1:], expected)
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(1, 1, 3))


def test_two_half_sure_objects():
    # p1 = p2 = 0.5: background 0.25 (odds 1/3), objects odds 1 each -> [1/7, 3/7, 3/7]
    _, probs = soft_aggregate(torch.full((1, 2, 1, 1), 0.5))
    torch.testing.assert_close(probs.flatten(), torch.tensor([1 / 7, 3 / 7, 3 / 7]))


def test_probabilities_sum_to_one():
    probs = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    probs[0, 0, 0, 0], probs[0, 1, 0, 1] = 1.0, 0.0  # saturated values stay finite
    logits, merged = soft_aggregate(probs)
    assert torch.isfinite(logits).all()
    torch.testing.assert_close(merged.sum(dim=1), torch.ones(2, 8, 8))


def test_invalid_slots_get_zero_and_leave_the_rest_as_without_them():
    probs = torch.rand(1, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    valid = torch.tensor([[True, False, True]])
    _, merged = soft_aggregate(probs, valid)
    assert (merged[:, 2] == 0).all()  # slot 2 = object index 1
    _, without = soft_aggregate(probs[:, [0, 2]])
    torch.testing.assert_close(merged[:, [0, 1, 3]], without)


def test_aggregation_is_float32_under_autocast():
    probs = torch.rand(1, 2, 4, 4).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, merged = soft_aggregate(probs)
    assert logits.dtype == merged.dtype == torch.float32


def test_other_objects_is_the_union_of_the_others():
    masks = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 3, 1, 3)  # B, K, 1, W
    expected = torch.tensor([[0.0, 1.0, 1.0], [1.0, 1.0, 1.0], [1.0, 0.0, 1.0]]).view(1, 3, 1, 3)
    assert torch.equal(other_objects(masks), expected)


@pytest.mark.parametrize("objects", [1, 2])
def test_other_objects_of_soft_masks_stays_in_unit_range(objects):
    masks = torch.rand(1, objects, 5, 5)
    others = other_objects(masks)
    assert others.min() >= 0 and others.max() <= 1
    if objects == 1:
        assert (others == 0).all()
