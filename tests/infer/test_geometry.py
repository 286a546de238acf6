from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vcseg.infer.geometry import from_network, plan_geometry, to_network


def one_hot(ids: np.ndarray, classes: int) -> torch.Tensor:
    """H, W ids -> 1, classes, H, W float."""
    return F.one_hot(torch.from_numpy(ids).long(), classes).permute(2, 0, 1)[None].float()


@pytest.mark.parametrize("height, width, size, resized, padded, pads", [
    # 854 x 480 at its own short side: no resize, 854 -> 864 split 5 + 5
    (480, 854, 480, (480, 854), (480, 864), (0, 0, 5, 5)),
    # 853 x 481 at 64: 853 * 64 / 481 = 113.497 -> 113, padded to 128 (7 + 8); 64 already a multiple
    (481, 853, 64, (64, 113), (64, 128), (0, 0, 7, 8)),
    # portrait: the width is the short side; 100 * 480 / 75 = 640
    (100, 75, 480, (640, 480), (640, 480), (0, 0, 0, 0)),
    # odd padding puts the extra pixel at the bottom / right
    (33, 33, 33, (33, 33), (48, 48), (7, 8, 7, 8)),
])
def test_plan_geometry(height, width, size, resized, padded, pads):
    geometry = plan_geometry(height, width, size)
    assert (geometry.resized_height, geometry.resized_width) == resized
    assert geometry.padded_size == padded
    assert (geometry.pad_top, geometry.pad_bottom, geometry.pad_left, geometry.pad_right) == pads
    assert padded[0] % 16 == 0 and padded[1] % 16 == 0


@pytest.mark.parametrize("height, width", [(480, 854), (481, 853)])
def test_round_trip_gives_the_original_size(height, width):
    geometry = plan_geometry(height, width, 64)
    maps = torch.rand(1, 3, height, width)
    network = to_network(maps, geometry)
    assert network.shape[-2:] == geometry.padded_size
    assert from_network(network, geometry).shape == (1, 3, height, width)


def test_padding_is_zero_and_pad_only_round_trip_is_exact():
    ids = np.random.default_rng(0).integers(0, 4, (37, 53)).astype(np.uint8)
    geometry = plan_geometry(37, 53, 37)  # short side kept: padding only
    network = to_network(one_hot(ids, 4), geometry)  # 1, 4, 48, 64
    assert network.shape[-2:] == (48, 64)
    top, left = geometry.pad_top, geometry.pad_left
    assert network.sum() == 37 * 53  # the padding adds nothing
    assert torch.equal(network[0, :, top:top + 37, left:left + 53], one_hot(ids, 4)[0])
    back = from_network(network, geometry)
    np.testing.assert_array_equal(back.argmax(dim=1)[0].numpy(), ids)


@pytest.mark.parametrize("factor", [2, 3])
def test_mask_round_trip_through_an_upscale_is_exact(factor):
    # Random ids on every pixel (the worst case: every pixel a boundary): bilinear up by an integer
    # factor and back down keeps each pixel's own class the largest, so the argmax is exact.
    ids = np.random.default_rng(1).integers(0, 3, (21, 35)).astype(np.uint8)
    geometry = plan_geometry(21, 35, 21 * factor)
    assert geometry.resizes
    back = from_network(to_network(one_hot(ids, 3), geometry), geometry)
    assert back.shape[-2:] == (21, 35)
    np.testing.assert_array_equal(back.argmax(dim=1)[0].numpy(), ids)
    torch.testing.assert_close(back.sum(dim=1), torch.ones(1, 21, 35))  # still probabilities


def test_downscaled_block_mask_comes_back_at_the_original_size():
    # 853 x 481 at short side 64: a mask of large blocks survives except near its edges.
    ids = np.zeros((481, 853), np.uint8)
    ids[100:300, 100:400] = 1
    ids[250:450, 500:800] = 2
    geometry = plan_geometry(481, 853, 64)
    back = from_network(to_network(one_hot(ids, 3), geometry), geometry).argmax(dim=1)[0].numpy()
    assert back.shape == ids.shape
    interior = np.zeros_like(ids, bool)
    interior[120:280, 120:380] = True
    assert (back[interior] == 1).all()
    assert (back[:80] == 0).all()  # well away from every object
