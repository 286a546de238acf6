"""The metric's pure functions on tiny hand-worked cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import binary_dilation

from tests.metrics.reference_jf import reference_disk, reference_statistics
from vcseg.metrics.jf import (boundary_map, boundary_radius, decay_bins, dilate_disk, disk_footprint,
                              f_from_counts, f_measure, object_statistics, region_similarity)


def test_region_similarity_hand_worked():
    pred = np.array([[1, 1, 0],
                     [1, 0, 0]], bool)
    gt = np.array([[1, 0, 0],
                   [1, 1, 0]], bool)
    assert region_similarity(pred, gt) == pytest.approx(2 / 4)  # 2 shared of 4 covered


def test_region_similarity_empty_union_is_one_and_void_is_left_out():
    empty = np.zeros((2, 3), bool)
    assert region_similarity(empty, empty) == 1.0
    pred = np.array([[1, 1, 1]], bool)
    gt = np.array([[1, 0, 0]], bool)
    void = np.array([[0, 1, 0]], bool)
    assert region_similarity(pred, gt, void) == pytest.approx(1 / 2)  # pixel 1 no longer counts


def test_boundary_map_of_a_square():
    mask = np.zeros((5, 5), bool)
    mask[1:3, 1:3] = True
    # a pixel differs from E, S or SE: the square's own pixels on its right/bottom edge, and the
    # background pixels just above/left of it (offset by half a pixel towards the origin)
    expected = np.array([[1, 1, 1, 0, 0],
                         [1, 0, 1, 0, 0],
                         [1, 1, 1, 0, 0],
                         [0, 0, 0, 0, 0],
                         [0, 0, 0, 0, 0]], bool)
    assert (boundary_map(mask) == expected).all()


def test_boundary_map_border_rules():
    full = np.ones((3, 4), bool)
    assert not boundary_map(full).any()  # the image border is not a boundary
    mask = np.zeros((3, 3), bool)
    mask[2, 2] = True  # bottom-right corner pixel
    expected = np.array([[0, 0, 0],
                         [0, 1, 1],  # (1,1) sees it SE; (1,2) in the last column sees it S
                         [0, 1, 0]], bool)  # (2,1) in the last row sees it E; the corner is 0
    assert (boundary_map(mask) == expected).all()


def test_radius_and_disk():
    assert boundary_radius(480, 854) == 8  # ceil(0.008 * 979.6)
    assert boundary_radius(10, 10) == 1
    assert (disk_footprint(3) == reference_disk(3)).all()
    assert disk_footprint(1).sum() == 5 and disk_footprint(2).sum() == 13


@pytest.mark.parametrize("radius", [1, 2, 3, 5, 8])
def test_dilate_disk_matches_scipy(radius):
    rng = np.random.default_rng(radius)
    mask = rng.random((23, 31)) < 0.03
    mask[0, 0] = mask[-1, -1] = True  # reach the edges
    expected = binary_dilation(mask, structure=reference_disk(radius))
    assert (dilate_disk(mask, radius) == expected).all()


@pytest.mark.parametrize("radius", [1, 4, 8, 13])
def test_dilate_disk_matches_scipy_on_any_shape_and_density(radius):
    """Arrays smaller than the disk, thin strips, dense masks and a strided view, against scipy's
    binary dilation with the same footprint (pixels outside the array are 0 for both)."""
    rng = np.random.default_rng(10 + radius)
    for shape, density in (((1, 1), 1.0), ((3, 40), 0.1), ((60, 5), 0.1), ((37, 29), 0.5), ((80, 90), 0.002)):
        mask = rng.random(shape) < density
        expected = binary_dilation(mask, structure=reference_disk(radius))
        assert (dilate_disk(mask, radius) == expected).all(), shape
    wide = rng.random((40, 80)) < 0.02
    assert (dilate_disk(wide[::2, 1::3], radius) == binary_dilation(wide[::2, 1::3], structure=reference_disk(radius))).all()


def test_f_special_cases():
    assert f_from_counts(0, 5, 0, 0) == 0.0  # only GT has a boundary: P=1, R=0
    assert f_from_counts(5, 0, 0, 0) == 0.0  # only the prediction: P=0, R=1
    assert f_from_counts(0, 0, 0, 0) == 1.0  # neither
    assert f_from_counts(4, 4, 0, 0) == 0.0  # P + R = 0
    assert f_from_counts(4, 8, 2, 8) == pytest.approx(2 * 0.5 * 1.0 / 1.5)


def test_f_measure_hand_worked():
    empty = np.zeros((20, 20), bool)
    square = empty.copy()
    square[5:10, 5:10] = True
    assert f_measure(square, square) == 1.0
    assert f_measure(empty, empty) == 1.0
    assert f_measure(empty, square) == 0.0 and f_measure(square, empty) == 0.0
    # radius ceil(0.008 * sqrt(800)) = 1: a square shifted by 3 pixels shares boundary only where
    # its edges cross the other's within 1 pixel; count it out with the reference definition
    shifted = np.roll(square, 3, axis=1)
    pb, gb = boundary_map(shifted), boundary_map(square)
    disk = reference_disk(1)
    precision = (pb & binary_dilation(gb, disk)).sum() / pb.sum()
    recall = (gb & binary_dilation(pb, disk)).sum() / gb.sum()
    assert f_measure(shifted, square) == pytest.approx(2 * precision * recall / (precision + recall))
    assert 0 < f_measure(shifted, square) < 1


def test_f_measure_void_cut_out_before_boundary():
    gt = np.zeros((10, 10), bool)
    gt[2:8, 2:8] = True
    pred = gt.copy()
    pred[2:8, 7] = False  # pred misses the right column...
    void = np.zeros_like(gt)
    void[:, 6:] = True  # ...which is void: both masks become the same 6x4 block
    assert f_measure(pred, gt, void, radius=0) == 1.0
    assert f_measure(pred, gt, None, radius=0) < 1.0


def test_statistics_hand_worked():
    values = np.array([1.0, 0.8, 0.6, 0.4, 0.2])
    # bins from round(linspace(1, 5, 5)) - 1 = [0, 1, 2, 3, 4]: first bin frames 0-1, last 3-4
    stats = object_statistics(values)
    assert stats.mean == pytest.approx(0.6)
    assert stats.recall == pytest.approx(3 / 5)  # 1.0, 0.8, 0.6 are > 0.5
    assert stats.decay == pytest.approx(0.9 - 0.3)
    assert object_statistics(np.array([0.7])).decay == 0.0
    assert object_statistics(np.array([0.5, 0.5])).recall == 0.0  # strictly greater


def test_decay_bins_overlap_and_long_videos():
    assert decay_bins(5) == [(0, 2), (1, 3), (2, 4), (3, 5)]
    assert decay_bins(9) == [(0, 3), (2, 5), (4, 7), (6, 9)]
    # DAVIS casts bin edges to uint8 and breaks past 255 frames; ours does not
    n = 600
    values = np.linspace(1.0, 0.0, n)
    bins = decay_bins(n)
    assert bins[0][0] == 0 and bins[-1][1] == n
    assert object_statistics(values).decay == pytest.approx(reference_statistics(values)[2])
    assert object_statistics(values).decay > 0.7


@pytest.mark.parametrize("n", [1, 2, 3, 7, 80, 256, 257, 1000])
def test_statistics_match_the_reference(n):
    values = np.random.default_rng(n).random(n)
    stats = object_statistics(values)
    assert (stats.mean, stats.recall, stats.decay) == pytest.approx(reference_statistics(values), abs=1e-12)
