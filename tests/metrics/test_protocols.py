"""Protocol differences, and the fast pair scores against the direct reference."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from tests.metrics.reference_jf import reference_f, reference_j, reference_pair_scores
from vcseg.errors import VcsegError
from vcseg.metrics.boundaries import object_boundary
from vcseg.metrics.jf import boundary_map, dilate_disk
from vcseg.metrics.protocols import EMPTY, score_video, video_pair_scores


def random_ids(shape, n_ids, rng, keep=0.8):
    """Overlapping smooth random blobs, later ids painted over earlier ones; some ids left out."""
    ids = np.zeros(shape, np.uint8)
    for object_id in range(1, n_ids + 1):
        if rng.random() > keep:
            continue
        noise = gaussian_filter(rng.random(shape), rng.uniform(1, 5))
        ids[noise > np.quantile(noise, rng.uniform(0.6, 0.97))] = object_id
    return ids


@pytest.mark.parametrize("seed", range(6))
def test_fast_pair_scores_equal_the_reference(seed):
    rng = np.random.default_rng(seed)
    shape = tuple(int(v) for v in rng.integers(3, 70, 2))
    gt = [random_ids(shape, 3, rng) for _ in range(3)]
    pred = [random_ids(shape, 4, rng) for _ in range(3)]
    gt[1][:] = 0  # an empty frame
    voids = None
    if seed % 2:
        voids = [rng.random(shape) < 0.05 for _ in range(3)]
        gt = [np.where(v, 255, g).astype(np.uint8) for g, v in zip(gt, voids)]
    pred_ids, gt_ids = [1, 2, 3, 4, EMPTY], [1, 2, 3]
    j, f = video_pair_scores(pred, gt, pred_ids, gt_ids, void_frames=voids)
    ref_j, ref_f = reference_pair_scores(pred, gt, pred_ids, gt_ids, void_frames=voids)
    assert np.abs(j - ref_j).max() <= 1e-12
    assert np.abs(f - ref_f).max() <= 1e-12


def test_bbox_boundary_equals_full_frame_at_an_odd_size():
    rng = np.random.default_rng(7)
    mask = random_ids((481, 853), 1, rng, keep=1.0) == 1
    mask[0, :40] = mask[-1, -30:] = True  # touch the image border
    boundary = object_boundary(mask, 8)
    full_boundary = boundary_map(mask)
    assert boundary.size == full_boundary.sum()
    assert full_boundary[boundary.rows, boundary.cols].all()
    full_dilated = dilate_disk(full_boundary, 8)
    window = full_dilated[boundary.top:boundary.top + boundary.dilated.shape[0],
                          boundary.left:boundary.left + boundary.dilated.shape[1]]
    assert (window == boundary.dilated).all() and window.sum() == full_dilated.sum()


def _square_frames(n, shape=(16, 16), box=(4, 10), object_id=1):
    frames = []
    for _ in range(n):
        ids = np.zeros(shape, np.uint8)
        ids[box[0]:box[1], box[0]:box[1]] = object_id
        frames.append(ids)
    return frames


def test_semi_leaves_out_first_and_last_frame():
    gt = _square_frames(4)
    pred = [np.zeros((16, 16), np.uint8)] + _square_frames(2) + [np.zeros((16, 16), np.uint8)]
    semi = score_video("v", pred, gt, protocol="davis-semi")
    assert semi.n_frames == 2 and semi.objects[0].j.mean == 1.0
    unsup = score_video("v", pred, gt, protocol="davis-unsup")
    assert unsup.n_frames == 4 and unsup.objects[0].j.mean == pytest.approx(0.5)
    tianchi = score_video("v", pred, gt, protocol="tianchi")
    assert tianchi.objects[0].j.mean == pytest.approx(0.5)
    assert score_video("v", [None] + pred[1:3] + [None], gt, protocol="davis-semi").objects[0].j.mean == 1.0


def test_semi_compares_ids_as_they_are_and_treats_255_as_background():
    gt = _square_frames(3)
    gt[1][0:2, 0:2] = 255
    swapped = _square_frames(3, object_id=2)
    gt_two = [g.copy() for g in gt]
    for g in gt_two:
        g[12:15, 12:15] = 2
    video = score_video("v", swapped, gt_two, protocol="davis-semi")
    assert [o.j.mean for o in video.objects] == [0.0, 0.0]  # no matching: id 2 is not object 1
    pred = [g.copy() for g in gt]
    pred[1][0:2, 0:2] = 1  # predicting the 255 area: it is background, so this costs J
    obj = score_video("v", pred, gt, protocol="davis-semi").objects[0]
    assert obj.j.mean == pytest.approx(36 / 40)


def test_semi_refuses_unknown_ids_and_short_videos():
    gt = _square_frames(3)
    with pytest.raises(VcsegError, match="ids \\[2\\]"):
        score_video("v", _square_frames(3, object_id=2), gt, protocol="davis-semi")
    with pytest.raises(VcsegError, match="at least 3"):
        score_video("v", gt[:2], gt[:2], protocol="davis-semi")


def test_unsup_void_is_left_out_of_j_and_f():
    gt = _square_frames(2)
    pred = [g.copy() for g in gt]
    for g, p in zip(gt, pred):
        p[10:12, 4:10] = 1  # the prediction spills over two rows below the square...
        g[10:12, :] = 255  # ...which are void in the GT
    obj = score_video("v", pred, gt, protocol="davis-unsup").objects[0]
    assert obj.j.mean == 1.0 and obj.f.mean == 1.0
    # tianchi too: 255 beside a real id is void, never a person (it used to be person 255)
    tianchi = score_video("v", pred, gt, protocol="tianchi")
    assert [o.gt_id for o in tianchi.objects] == [1]
    assert tianchi.objects[0].j.mean == 1.0 and tianchi.objects[0].f.mean == 1.0


def test_unsup_pads_missing_proposals_and_an_empty_prediction_scores_one_where_gt_is_absent():
    gt = _square_frames(4)
    gt[2][:] = 0
    gt[3][:] = 0  # the object leaves after frame 1
    empty = [np.zeros((16, 16), np.uint8) for _ in range(4)]
    obj = score_video("v", empty, gt, protocol="davis-unsup").objects[0]
    assert obj.pred_id is None
    assert list(obj.j_per_frame) == [0.0, 0.0, 1.0, 1.0]  # DAVIS: empty vs absent is a hit
    assert list(obj.f_per_frame) == [0.0, 0.0, 1.0, 1.0]
    tianchi = score_video("v", empty, gt, protocol="tianchi").objects[0]
    assert list(tianchi.j_per_frame) == [0.0, 0.0, 0.0, 0.0]  # tianchi: unmatched scores 0


def test_unsup_refuses_more_than_20_proposals():
    gt = _square_frames(2)
    pred = [g.copy() for g in gt]
    pred[0][0, 0] = 21
    with pytest.raises(VcsegError, match="at most 20"):
        score_video("v", pred, gt, protocol="davis-unsup")
    pred[0][0, 0] = 20
    assert score_video("v", pred, gt, protocol="davis-unsup").objects[0].j.mean == 1.0


def test_unsup_matching_on_jf():
    gt = _square_frames(2)
    for g in gt:
        g[12:15, 12:15] = 2
    pred = [np.where(g == 1, 3, np.where(g == 2, 1, 0)).astype(np.uint8) for g in gt]
    video = score_video("v", pred, gt, protocol="davis-unsup")
    assert [(o.gt_id, o.pred_id) for o in video.objects] == [(1, 3), (2, 1)]
    assert all(o.j.mean == 1.0 and o.f.mean == 1.0 for o in video.objects)


def test_real_davis_masks(davis_people):
    from vcseg.io.layouts import find_mask_videos
    from vcseg.io.masks import read_mask

    masks = find_mask_videos(davis_people)
    video = sorted(masks)[0]
    paths = list(masks[video].values())[:4]
    gt = [read_mask(p) for p in paths]  # 0/255 masks: person id 1
    assert gt[0].shape == (480, 854) and set(np.unique(gt[0])) == {0, 1}
    # prediction: each GT frame moved 6 pixels right, as a slightly wrong tracker would
    pred = [np.roll(g, 6, axis=1) for g in gt]
    obj = score_video(video, pred, gt, protocol="tianchi").objects[0]
    for t in range(len(gt)):
        assert obj.j_per_frame[t] == pytest.approx(reference_j(pred[t] == 1, gt[t] == 1), abs=1e-12)
        assert obj.f_per_frame[t] == pytest.approx(reference_f(pred[t] == 1, gt[t] == 1), abs=1e-12)
    assert 0.5 < obj.j.mean < 1.0 and 0.5 < obj.f.mean <= 1.0


# ---- tianchi: 255 in the ground truth ------------------------------------------------------------

def _persons_and_void(n_frames=3):
    """16x16 frames: person 1 (rows 2-6), person 2 (rows 9-13), a void band (rows 7-8) between them."""
    frames = []
    for _ in range(n_frames):
        gt = np.zeros((16, 16), np.uint8)
        gt[2:7, 3:12] = 1
        gt[9:14, 5:10] = 2
        gt[7:9, :] = 255
        frames.append(gt)
    return frames


@pytest.mark.parametrize("match", ["iou", "jf"])
def test_tianchi_perfect_prediction_beside_void_scores_exactly_one(match):
    gt = _persons_and_void()
    as_background = [np.where(g == 255, 0, g).astype(np.uint8) for g in gt]
    spilled = [np.where(g == 255, 1, g).astype(np.uint8) for g in gt]  # person 1 paints the void
    for pred in (as_background, spilled):
        video = score_video("v", pred, gt, protocol="tianchi", match=match)
        assert video.valid and [o.gt_id for o in video.objects] == [1, 2]  # no person 255
        assert [(o.j.mean, o.f.mean) for o in video.objects] == [(1.0, 1.0), (1.0, 1.0)]


def test_tianchi_void_is_cut_from_j_and_f_worked_by_hand():
    # GT person: rows 4-9, cols 4-9 (36 px); void: rows 10-11. Prediction: rows 4-11, cols 4-11;
    # without its void rows it is rows 4-9, cols 4-11 (48 px), so J = 36 / 48.
    # F at radius ceil(0.008 * sqrt(2 * 16^2)) = 1 (a cross): GT boundary 24 px, predicted 28 px;
    # 7 predicted boundary pixels lie off the dilated GT boundary (column 11), P = 21/28; 3 GT
    # boundary pixels (column 9, rows 5-7) lie off the dilated predicted one, R = 21/24;
    # F = 2PR / (P + R) = 21/26.
    gt = np.zeros((16, 16), np.uint8)
    gt[4:10, 4:10] = 1
    gt[10:12, :] = 255
    pred = np.zeros((16, 16), np.uint8)
    pred[4:12, 4:12] = 1
    void = gt == 255
    assert reference_j(pred == 1, gt == 1, void) == 36 / 48
    assert reference_f(pred == 1, gt == 1, void) == pytest.approx(21 / 26, abs=1e-12)
    for match in ("iou", "jf"):
        video = score_video("v", [pred], [gt], protocol="tianchi", match=match)
        [obj] = video.objects
        assert (obj.gt_id, obj.pred_id) == (1, 1)
        assert obj.j_per_frame[0] == 36 / 48
        assert obj.f_per_frame[0] == pytest.approx(21 / 26, abs=1e-12)
    # the same numbers as davis-unsup, which has always cut void this way
    unsup = score_video("v", [pred], [gt], protocol="davis-unsup").objects[0]
    assert unsup.j_per_frame[0] == 36 / 48 and unsup.f_per_frame[0] == pytest.approx(21 / 26, abs=1e-12)


def test_tianchi_binary_0_255_ground_truth_is_person_1():
    gt = [np.where(g == 1, 255, 0).astype(np.uint8) for g in _square_frames(3)]  # only 0 and 255
    gt[1][:] = 0  # an empty frame leaves the video binary
    pred = [(g == 255).astype(np.uint8) for g in gt]
    video = score_video("v", pred, gt, protocol="tianchi")
    [obj] = video.objects
    assert (obj.gt_id, obj.pred_id) == (1, 1) and obj.j.mean == 1.0 and obj.f.mean == 1.0


def test_tianchi_void_is_decided_per_video_not_per_frame():
    # frame 1 shows only void (both persons out of view); read alone it would look like a binary
    # mask and its void would become person 1
    gt = _persons_and_void(2)
    gt[1] = np.where(gt[1] == 255, 255, 0).astype(np.uint8)
    pred = [np.where(g == 255, 0, g).astype(np.uint8) for g in gt]  # frame 1: nobody
    video = score_video("v", pred, gt, protocol="tianchi")
    assert [o.gt_id for o in video.objects] == [1, 2]
    # frame 1: GT person absent and prediction empty, J = 1 (it would be 0 against "person 1")
    assert [list(o.j_per_frame) for o in video.objects] == [[1.0, 1.0], [1.0, 1.0]]


def test_tianchi_ids_on_void_still_count_toward_the_8_id_limit():
    gt = _persons_and_void(2)
    pred = [np.where(g == 255, 0, g).astype(np.uint8) for g in gt]
    pred[0][7, 0:6] = [3, 4, 5, 6, 7, 8]  # on void pixels: 8 ids in all, still valid
    video = score_video("v", pred, gt, protocol="tianchi")
    assert video.valid and [(o.j.mean, o.f.mean) for o in video.objects] == [(1.0, 1.0), (1.0, 1.0)]
    pred[0][8, 0] = 9  # a ninth id, also on void: as submitted, the video breaks the rule
    video = score_video("v", pred, gt, protocol="tianchi")
    assert not video.valid and video.note == "9 ids > 8"
    assert all(o.j.mean == 0 and o.f.mean == 0 and o.pred_id is None for o in video.objects)


def test_frame_pair_j_equals_each_pairs_own_j():
    """The sparse per-frame J table against J of each pair's two binary masks (DAVIS's reference),
    an empty prediction among the rows, ids absent from the frame among both."""
    from vcseg.metrics.protocols import FrameCounts

    rng = np.random.default_rng(3)
    for _ in range(50):
        pred = rng.choice([0, 1, 2, 7], (23, 31)).astype(np.uint8)
        gt = rng.choice([0, 1, 3], (23, 31)).astype(np.uint8)
        pred_ids, gt_ids = [1, 2, 7, 9, EMPTY], [1, 3, 4]
        table = FrameCounts.of(pred, gt).pair_j(pred_ids, gt_ids)
        for p, pred_id in enumerate(pred_ids):
            for g, gt_id in enumerate(gt_ids):
                mask = np.zeros_like(pred, dtype=bool) if pred_id == EMPTY else pred == pred_id
                assert table[p, g] == pytest.approx(reference_j(mask, gt == gt_id), abs=1e-12), (pred_id, gt_id)


def test_frame_counts_are_every_pairs_pixels_whatever_the_ids():
    """FrameCounts against counting each (pred, gt) pair directly: small ids (one byte per pair),
    ids of 16 and over (16-bit codes), 255, a strided view and int32 maps."""
    from vcseg.metrics.protocols import FrameCounts

    rng = np.random.default_rng(5)
    cases = [([0, 1, 2, 15], [0, 1, 3, 15]), ([0, 1, 16, 200], [0, 2, 255]), ([0, 3], [0, 17])]
    for pred_values, gt_values in cases:
        pred = rng.choice(pred_values, (40, 60)).astype(np.uint8)
        gt = rng.choice(gt_values, (40, 60)).astype(np.uint8)
        for p, g in ((pred, gt), (pred[::2, 1::3], gt[::2, 1::3]), (pred.astype(np.int32), gt.astype(np.int32))):
            counts = FrameCounts.of(p, g)
            expected = {pv * 256 + gv: int(((p == pv) & (g == gv)).sum())
                        for pv in pred_values for gv in gt_values if ((p == pv) & (g == gv)).any()}
            assert counts.codes.tolist() == sorted(expected)
            assert counts.counts.tolist() == [expected[code] for code in sorted(expected)]
