"""Warps and clip augmentation: matrices checked on points worked out by hand, crops that hold
the object, elastic fields, ids that survive, shared colour changes, seeded reproducibility."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vcseg.data.augment import NO_AUGMENT, STATIC_AUGMENT, VIDEO_AUGMENT, Photometric, augment_clip
from vcseg.data.warps import (AffineRange, affine_matrix, apply_to_point, compose, crop_origin, elastic_field,
                              random_affine, warp)


def test_affine_matrix_on_hand_worked_points() -> None:
    # 10x20 frame: centre (9.5, 4.5) in (x, y)
    centre = (9.5, 4.5)
    flip = affine_matrix(centre, flip=True)
    assert np.allclose(apply_to_point(flip, (0, 3)), (19, 3))  # x -> 19 - x
    # a quarter turn counter-clockwise on screen: the point right of the centre goes above it
    turn = affine_matrix(centre, angle=90)
    assert np.allclose(apply_to_point(turn, (12.5, 4.5)), (9.5, 1.5))
    zoom = affine_matrix(centre, scale=2.0, translate_xy=(1.0, -2.0))
    assert np.allclose(apply_to_point(zoom, (10.5, 5.5)), (9.5 + 2 + 1, 4.5 + 2 - 2))
    shear = affine_matrix((0.0, 0.0), shear_xy=(45.0, 0.0))
    assert np.allclose(apply_to_point(shear, (1.0, 2.0)), (3.0, 2.0))  # x += tan(45) * y
    both = compose(zoom, flip)
    assert np.allclose(apply_to_point(both, (0, 3)), apply_to_point(zoom, (19, 3)))


def test_random_affine_stays_within_its_ranges() -> None:
    rng = np.random.default_rng(0)
    ranges = AffineRange(rotate=15.0, scale=(0.8, 1.25), translate=0.1)
    for _ in range(50):
        matrix = random_affine(rng, (40, 60), ranges)
        linear = matrix[:, :2]
        scale = math.sqrt(abs(np.linalg.det(linear)))
        angle = math.degrees(math.atan2(linear[0, 1], linear[0, 0]))
        assert 0.8 - 1e-9 <= scale <= 1.25 + 1e-9 and abs(angle) <= 15 + 1e-9
        shift = np.array(apply_to_point(matrix, (29.5, 19.5))) - (29.5, 19.5)  # where the centre goes
        assert abs(shift[0]) <= 6 + 1e-9 and abs(shift[1]) <= 4 + 1e-9
    assert np.allclose(random_affine(rng, (40, 60), AffineRange()), [[1, 0, 0], [0, 1, 0]])


def test_crop_origin_holds_the_point_or_covers_the_canvas() -> None:
    rng = np.random.default_rng(1)
    for _ in range(200):
        point = (rng.uniform(0, 99), rng.uniform(0, 79))  # (x, y) on the 80x100 canvas
        y0, x0 = crop_origin(rng, (80, 100), (32, 48), point)
        assert 0 <= y0 <= 48 and 0 <= x0 <= 52  # inside the canvas
        assert y0 <= round(point[1]) < y0 + 32 and x0 <= round(point[0]) < x0 + 48
        y0, x0 = crop_origin(rng, (20, 30), (32, 48), (point[0] % 30, point[1] % 20))  # bigger: covers it
        assert -12 <= y0 <= 0 and -18 <= x0 <= 0
    # a point off the canvas (warped out of view): any window inside the canvas
    y0, x0 = crop_origin(rng, (80, 100), (32, 48), (500.0, -40.0))
    assert 0 <= y0 <= 48 and 0 <= x0 <= 52


def test_warp_identity_crops_exactly_and_keeps_ids() -> None:
    rng = np.random.default_rng(2)
    frame = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    mask = rng.integers(0, 5, (30, 40), dtype=np.uint8)
    identity = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    out_frame, out_mask = warp(frame, mask, identity, (5, 7), (16, 32))
    assert np.array_equal(out_frame, frame[5:21, 7:39]) and np.array_equal(out_mask, mask[5:21, 7:39])
    zero_field = np.zeros((2, 16, 32), np.float32)
    field_frame, field_mask = warp(frame, mask, identity, (5, 7), (16, 32), zero_field)
    assert np.array_equal(field_frame, out_frame) and np.array_equal(field_mask, out_mask)
    # a rotation resamples the mask with nearest neighbour: no id that was not there
    turned_frame, turned_mask = warp(frame, mask, affine_matrix((19.5, 14.5), angle=33, scale=1.3), (0, 0), (30, 40))
    assert set(np.unique(turned_mask)) <= set(np.unique(mask))


def test_warp_with_a_constant_field_shifts() -> None:
    frame = np.zeros((20, 20, 3), np.uint8)
    mask = np.zeros((20, 20), np.uint8)
    mask[5:10, 5:10] = 3
    field = np.stack([np.full((20, 20), 2.0, np.float32), np.full((20, 20), -1.0, np.float32)])
    _, shifted = warp(frame, mask, np.array([[1.0, 0, 0], [0, 1.0, 0]]), (0, 0), (20, 20), field)
    # output pixel p shows the source at p + (2, -1): the square moves left by 2 and down by 1
    expected = np.zeros((20, 20), np.uint8)
    expected[6:11, 3:8] = 3
    assert np.array_equal(shifted, expected)


def test_elastic_field_is_smooth_with_the_given_magnitude() -> None:
    field = elastic_field(np.random.default_rng(3), (192, 256), magnitude=4.0, cell=32)
    assert field.shape == (2, 192, 256) and field.dtype == np.float32
    assert 2.0 < field.std() < 6.0
    # neighbouring pixels differ by a small fraction of the magnitude (smooth, not noise)
    assert np.abs(np.diff(field, axis=2)).max() < 1.0 and np.abs(np.diff(field, axis=1)).max() < 1.0


def _clip(seed: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = np.repeat(np.repeat(rng.integers(0, 256, (8, 12, 3), dtype=np.uint8), 8, 0), 8, 1)  # 64, 96, 3
    mask = np.zeros((64, 96), np.uint8)
    mask[10:40, 20:50], mask[45:60, 60:90] = 1, 2
    return np.stack([frame] * 3), np.stack([mask] * 3)


def test_no_augment_is_the_crop_itself() -> None:
    frames, masks = _clip()
    out_frames, out_masks = augment_clip(frames, masks, np.random.default_rng(0), NO_AUGMENT, (64, 96),
                                         Photometric(NO_AUGMENT))
    assert np.array_equal(out_frames, frames) and np.array_equal(out_masks, masks)


@pytest.mark.parametrize("augment", [VIDEO_AUGMENT, STATIC_AUGMENT])
def test_clip_wide_part_is_shared_and_jitter_is_not(augment) -> None:
    frames, masks = _clip()
    shared = augment.without_frame_jitter()
    for seed in range(5):
        out_frames, out_masks = augment_clip(frames, masks, np.random.default_rng(seed), shared, (48, 64),
                                             Photometric(shared))
        assert out_frames.shape == (3, 48, 64, 3) and out_masks.shape == (3, 48, 64)
        assert all(np.array_equal(out_frames[0], out_frames[t]) for t in (1, 2))
        assert all(np.array_equal(out_masks[0], out_masks[t]) for t in (1, 2))
        assert (out_masks[0] > 0).any()  # the crop holds an object pixel of frame 0
        assert set(np.unique(out_masks)) <= {0, 1, 2}
        jit_frames, jit_masks = augment_clip(frames, masks, np.random.default_rng(seed), augment, (48, 64),
                                             Photometric(augment))
        assert not np.array_equal(jit_frames[0], jit_frames[1]) and not np.array_equal(jit_masks[0], jit_masks[2])


def test_augmentation_is_reproducible_from_the_seed() -> None:
    frames, masks = _clip()
    photometric = Photometric(VIDEO_AUGMENT)
    runs = [augment_clip(frames, masks, np.random.default_rng(seed), VIDEO_AUGMENT, (48, 64), photometric)
            for seed in (9, 9, 10)]
    assert np.array_equal(runs[0][0], runs[1][0]) and np.array_equal(runs[0][1], runs[1][1])
    assert not np.array_equal(runs[0][0], runs[2][0])


def test_photometric_applies_one_colour_change_to_the_clip() -> None:
    frames, _ = _clip()
    photometric = Photometric(VIDEO_AUGMENT.without_frame_jitter())
    out = photometric(frames, np.random.default_rng(5))
    assert np.array_equal(out[0], out[1]) and np.array_equal(out[0], out[2])
    assert not np.array_equal(out[0], frames[0])
    assert np.array_equal(out, photometric(frames, np.random.default_rng(5)))


def test_recolour_instances_changes_chosen_persons_only() -> None:
    from vcseg.data.augment import recolour_instances

    rng = np.random.default_rng(0)
    frames = rng.integers(40, 216, size=(2, 24, 32, 3), dtype=np.uint8)
    frames[:, :, :, 0] = 200  # reddish everywhere: a hue turn must show
    masks = np.zeros((2, 24, 32), np.uint8)
    masks[:, 2:10, 2:12] = 1
    masks[:, 12:20, 14:30] = 2
    masks[:, 0, :] = 255  # void keeps its colours
    same = recolour_instances(frames, masks, np.random.default_rng(1), 0.0)
    assert same is frames
    out = recolour_instances(frames, masks, np.random.default_rng(1), 1.0)
    person = masks > 0
    person &= masks != 255
    assert np.array_equal(out[~person], frames[~person])  # background and void untouched
    for object_id in (1, 2):
        pixels = masks == object_id
        assert np.abs(out[pixels].astype(int) - frames[pixels]).mean() > 10  # recoloured
    # one draw per clip: the same id gets the same change in both frames (identical frames here)
    clip = np.repeat(frames[:1], 2, axis=0)
    twice = recolour_instances(clip, np.repeat(masks[:1], 2, axis=0), np.random.default_rng(2), 1.0)
    assert np.array_equal(twice[0], twice[1])
    # the rng advances by 4 draws per id present whatever the probability
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    recolour_instances(frames, masks, a, 0.0)
    b.random((2, 4))
    assert a.random() == b.random()


def test_recolour_decoys_recolours_background_blobs_only() -> None:
    from vcseg.data.augment import DECOY_AREA, DECOYS, recolour_decoys

    rng = np.random.default_rng(0)
    frames = rng.integers(40, 216, size=(2, 48, 64, 3), dtype=np.uint8)
    frames[:, :, :, 0] = 200  # reddish everywhere: a hue turn must show
    frames[1] = frames[0]  # identical frames: one blob and one colour per clip
    masks = np.zeros((2, 48, 64), np.uint8)
    masks[:, 10:30, 20:40] = 1
    masks[:, 0, :] = 255
    assert recolour_decoys(frames, masks, np.random.default_rng(1), 0.0) is frames
    for seed in range(5):
        out = recolour_decoys(frames, masks, np.random.default_rng(seed), 1.0)
        changed = (out != frames).any(axis=-1)  # (T, H, W)
        assert not changed[masks > 0].any()  # persons and void keep their colours
        assert np.array_equal(out[0], out[1])
        # 1-3 blobs of 3-15% of the frame each, persons' pixels left out, a few pixels unchanged by rounding
        share = changed[0].mean()
        assert 0.5 * DECOY_AREA[0] < share <= DECOYS[1] * DECOY_AREA[1]
    # the same numbers are drawn whatever the probability
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    recolour_decoys(frames, masks, a, 0.0)
    recolour_decoys(frames, masks, b, 1.0)
    assert a.random() == b.random()


@pytest.mark.parametrize("field, recoloured_inside", [("instance_recolour", True), ("background_recolour", False)])
def test_augment_clip_recolours_when_asked(field: str, recoloured_inside: bool) -> None:
    """instance_recolour changes the person's pixels only; background_recolour the background's only."""
    import dataclasses

    frames = np.full((1, 64, 64, 3), 120, np.uint8)
    frames[..., 0] = 220
    masks = np.zeros((1, 64, 64), np.uint8)
    masks[0, 16:48, 16:48] = 1
    plain, plain_masks = augment_clip(frames, masks, np.random.default_rng(0), NO_AUGMENT, (64, 64))
    recoloured, recoloured_masks = augment_clip(frames, masks, np.random.default_rng(0),
                                                dataclasses.replace(NO_AUGMENT, **{field: 1.0}), (64, 64))
    assert np.array_equal(plain_masks, recoloured_masks)
    changed = plain_masks[0] == 1 if recoloured_inside else plain_masks[0] != 1
    assert np.array_equal(plain[0][~changed], recoloured[0][~changed])
    assert not np.array_equal(plain[0][changed], recoloured[0][changed])
