"""The drawing functions on hand-made arrays: fill, outlines, labels, error classes, exact colours."""

from __future__ import annotations

import numpy as np
import pytest

from vcseg.viz.draw import (ERROR_COLOURS, FALSE, MISSED, NO_ERROR, PALETTE, SWITCH, _lookup_rgb, _rgbx, bounding_box,
                            centroids, draw_ids, error_classes, even, outline_mask)


def square(size: int = 40, object_id: int = 3, top: int = 10, left: int = 10, side: int = 20) -> np.ndarray:
    ids = np.zeros((size, size), np.uint8)
    ids[top:top + side, left:left + side] = object_id
    return ids


def grey_frame(size: int = 40, value: int = 100) -> np.ndarray:
    return np.full((size, size, 3), value, np.uint8)


def test_outline_is_the_boundary_of_each_object():
    ids = square()
    edge = outline_mask(ids)
    assert edge[10, 10:30].all() and edge[29, 10:30].all() and edge[10:30, 10].all() and edge[10:30, 29].all()
    assert not edge[11:29, 11:29].any()  # the inside
    assert not edge[ids == 0].any()  # background is never outline
    touching = np.zeros((4, 6), np.uint8)
    touching[:, :3], touching[:, 3:] = 1, 2
    assert outline_mask(touching)[:, 2].all() and outline_mask(touching)[:, 3].all()  # both sides of a shared edge


def test_inside_pixels_blend_towards_the_palette_colour_and_outlines_are_exact():
    frame, ids = grey_frame(), square(object_id=3)
    panel = np.zeros_like(frame)
    draw_ids(panel, frame, ids)
    colour = PALETTE[3].astype(int)
    inside = panel[12, 12].astype(int)  # inside, far from the label at the centroid
    assert np.array_equal(inside, (100 >> 1) + (colour >> 1))
    assert np.abs(inside - colour).sum() < np.abs(100 - colour).sum()  # moved towards the id's colour
    assert np.array_equal(panel[10, 15], PALETTE[3]) and np.array_equal(panel[29, 20], PALETTE[3])
    assert np.array_equal(panel[0, 0], frame[0, 0]) and np.array_equal(panel[35, 35], frame[35, 35])


def test_the_id_number_is_drawn_near_the_centroid():
    frame, ids = grey_frame(), square(object_id=3)
    panel = np.zeros_like(frame)
    draw_ids(panel, frame, ids)
    assert centroids(ids) == {3: (20, 20)}
    label = panel[15:26, 15:26]
    assert (label == 255).all(axis=-1).any()  # white digits on the id's colour
    assert not (panel[11:14, 11:14] == 255).all(axis=-1).any()


def test_error_classes_missed_false_and_switch():
    gt = np.array([[1, 1, 2, 2, 0, 0]], np.uint8)
    pred = np.array([[0, 1, 1, 2, 3, 0]], np.uint8)
    matched = np.zeros(256, np.uint8)
    matched[1], matched[2] = 1, 2
    assert error_classes(pred, gt, matched).tolist() == [[MISSED, NO_ERROR, SWITCH, NO_ERROR, FALSE, NO_ERROR]]
    unmatched = np.zeros(256, np.uint8)  # a GT person without a match: any id on it is a switch
    assert error_classes(pred, gt, unmatched).tolist() == [[MISSED, SWITCH, SWITCH, SWITCH, FALSE, NO_ERROR]]


def test_error_pixels_take_their_colour_under_the_outlines():
    frame = grey_frame()
    gt = square(object_id=1)
    pred = np.zeros_like(gt)
    pred[10:30, 10:20] = 1  # the left half found, the right half missed
    pred[0:6, 0:14] = 2  # a false person
    matched = np.zeros(256, np.uint8)
    matched[1] = 1
    errors = error_classes(pred, gt, matched)
    panel = np.zeros_like(frame)
    draw_ids(panel, frame, pred, errors=errors, error_box=bounding_box((pred | gt) != 0))
    assert np.array_equal(panel[15, 25], ERROR_COLOURS[MISSED])
    assert np.array_equal(panel[1, 1], ERROR_COLOURS[FALSE])
    assert np.array_equal(panel[5, 1], PALETTE[2])  # the false person's outline drawn over its error colour
    assert np.array_equal(panel[12, 12], (100 >> 1) + (PALETTE[1] >> 1))  # the found part: filled, no error


def test_error_colours_are_no_palette_colour():
    for colour in ERROR_COLOURS.values():
        assert not (PALETTE == colour).all(axis=1).any()


def test_even_and_bounding_box():
    assert [even(v) for v in (1, 2, 25, 254)] == [2, 2, 26, 254]
    assert bounding_box(np.zeros((3, 3), bool)) is None
    assert bounding_box(square() > 0, margin=1) == (slice(9, 31), slice(9, 31))


def test_lookup_rgb_takes_the_table_row_of_every_code():
    table = _rgbx(np.array([[1, 2, 3], [4, 5, 6], [7, 8, 255]], np.uint8))
    code = np.array([[2, 0, 1], [1, 1, 2]], np.uint16)
    assert _lookup_rgb(table, code).tolist() == [[[7, 8, 255], [1, 2, 3], [4, 5, 6]],
                                                 [[4, 5, 6], [4, 5, 6], [7, 8, 255]]]


def random_scene(seed: int, height: int = 37, width: int = 53):
    """A frame, an id map of overlapping rectangles (some on the frame's border, id 255 among them)
    and a ground truth of the same shifted, their error classes under a partial matching."""
    rng = np.random.default_rng(seed)
    ids = np.zeros((height, width), np.uint8)
    for _ in range(rng.integers(0, 5)):
        top, left = rng.integers(-5, height), rng.integers(-5, width)
        ids[max(top, 0):top + rng.integers(1, 25), max(left, 0):left + rng.integers(1, 25)] = rng.choice([1, 2, 3, 255])
    gt = np.roll(ids, (rng.integers(-3, 4), rng.integers(-3, 4)), axis=(0, 1))
    matched = np.zeros(256, np.uint8)
    matched[1], matched[2] = 1, 3
    frame = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    return frame, ids, gt, error_classes(ids, gt, matched)


def drawn_by_the_rules(frame: np.ndarray, ids: np.ndarray, errors: np.ndarray | None) -> np.ndarray:
    """`draw_ids` without labels, one rule at a time over the whole map: fill, errors, outlines."""
    panel = frame.copy()
    on = ids > 0
    panel[on] = (frame[on] >> 1) + (PALETTE[ids[on]] >> 1)
    if errors is not None:
        for kind, colour in ERROR_COLOURS.items():
            panel[errors == kind] = colour
    edge = outline_mask(ids)
    panel[edge] = PALETTE[ids[edge]]
    return panel


@pytest.mark.parametrize("seed", range(24))
def test_draw_ids_draws_every_pixel_by_the_rules(seed):
    frame, ids, gt, errors = random_scene(seed)
    no_labels = tuple(range(256))
    for options in ({}, {"errors": errors}, {"errors": errors, "error_box": bounding_box((ids | gt) != 0)}):
        panel = np.zeros_like(frame)
        draw_ids(panel, frame, ids, skip_labels=no_labels, **options)
        assert np.array_equal(panel, drawn_by_the_rules(frame, ids, options.get("errors"))), options


def test_draw_ids_into_a_view_leaves_the_rest_of_the_canvas():
    frame, ids, gt, errors = random_scene(3)
    canvas = np.full((frame.shape[0] + 4, 2 * frame.shape[1], 3), 7, np.uint8)
    draw_ids(canvas[:frame.shape[0], frame.shape[1]:], frame, ids, errors=errors, skip_labels=tuple(range(256)))
    assert np.array_equal(canvas[:frame.shape[0], frame.shape[1]:], drawn_by_the_rules(frame, ids, errors))
    assert (canvas[:, :frame.shape[1]] == 7).all() and (canvas[frame.shape[0]:] == 7).all()


@pytest.mark.parametrize("seed", range(12))
def test_centroids_are_the_mean_position_of_each_id(seed):
    _, ids, _, _ = random_scene(seed)
    for step in (1, 2):
        sampled = ids[::step, ::step]
        expected = {}
        for object_id in sorted(set(np.unique(sampled).tolist()) - {0}):
            rows, cols = np.nonzero(sampled == object_id)
            expected[object_id] = (int(round(rows.mean() * step)), int(round(cols.mean() * step)))
        assert centroids(ids, step) == expected
