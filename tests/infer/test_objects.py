from __future__ import annotations

import numpy as np
import pytest
import torch

from vcseg.infer.objects import ObjectManager, impose_masks


def test_ids_keep_their_identity_while_slots_stay_dense():
    objects = ObjectManager()
    assert objects.add([3, 1], frame_index=0) == [3, 1]
    assert objects.add([1, 7], frame_index=4) == [7]  # 1 is live already
    assert objects.ids == [3, 1, 7]
    assert [objects.slot(i) for i in (3, 1, 7)] == [0, 1, 2]
    assert objects.remove(1) == 1
    assert objects.ids == [3, 7] and objects.slot(7) == 1
    assert objects.start_frame(7) == 4
    np.testing.assert_array_equal(objects.id_lookup(), [0, 3, 7])
    with pytest.raises(KeyError):
        objects.remove(1)
    with pytest.raises(ValueError):
        objects.add([256], 5)


def test_groups_by_start_frame():
    objects = ObjectManager()
    objects.add([5], 0)
    objects.add([2, 9], 6)
    objects.add([4], 0)  # a second object of frame 0, added later in the same frame's bookkeeping
    assert objects.groups() == [(0, [5, 4]), (6, [2, 9])]


def test_impose_masks_overrides_where_given():
    # One old object predicted with p = 0.6 everywhere over 1 x 3 pixels; a new object given on pixel 1.
    probs = torch.tensor([[[0.4, 0.4, 0.4]], [[0.6, 0.6, 0.6]]])  # 2, 1, 3
    given = torch.tensor([[[0.0, 1.0, 0.0]]])  # 1, 1, 3
    result = impose_masks(probs, given, given_slots=[1], objects=2)
    expected = torch.tensor([[[0.4, 0.0, 0.4]], [[0.6, 0.0, 0.6]], [[0.0, 1.0, 0.0]]])
    torch.testing.assert_close(result, expected)


def test_impose_masks_without_prediction_is_the_given_masks():
    probs = torch.ones(1, 2, 2)  # nothing tracked yet: all background
    given = torch.tensor([[[1.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 1.0]]])
    result = impose_masks(probs, given, given_slots=[0, 1], objects=2)
    np.testing.assert_array_equal(result.argmax(dim=0).numpy(), [[1, 0], [0, 2]])
    torch.testing.assert_close(result.sum(dim=0), torch.ones(2, 2))
