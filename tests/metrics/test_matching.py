"""Hungarian matching and the tianchi protocol's matching rules."""

from __future__ import annotations

import numpy as np
import pytest

from vcseg.metrics.matching import hungarian_match
from vcseg.metrics.protocols import score_video


def test_hungarian_prefers_the_best_total_not_the_greedy_pick():
    score = np.array([[0.9, 0.8],
                      [0.85, 0.1]])
    # greedy would give gt0 <- p0 (0.9) and leave p1 with 0.1: total 1.0; best is 0.8 + 0.85
    assert hungarian_match(score) == {0: 1, 1: 0}
    assert hungarian_match(np.zeros((0, 3))) == {}


def _square(shape, top, left, size):
    mask = np.zeros(shape, bool)
    mask[top:top + size, left:left + size] = True
    return mask


def _frames(objects: dict[int, list], shape=(20, 30), n=3):
    """Id maps with object id -> square (top, left, size) the same on every frame."""
    frames = []
    for _ in range(n):
        ids = np.zeros(shape, np.uint8)
        for object_id, (top, left, size) in objects.items():
            ids[_square(shape, top, left, size)] = object_id
        frames.append(ids)
    return frames


def test_swapped_ids_are_matched_and_score_perfectly():
    gt = _frames({1: (2, 2, 6), 2: (10, 15, 7)})
    pred = _frames({2: (2, 2, 6), 1: (10, 15, 7)})
    video = score_video("v", pred, gt, protocol="tianchi")
    assert video.valid
    assert [(o.gt_id, o.pred_id) for o in video.objects] == [(1, 2), (2, 1)]
    assert all(o.j.mean == 1.0 and o.f.mean == 1.0 for o in video.objects)


def test_extra_prediction_is_not_penalised():
    gt = _frames({1: (2, 2, 6)})
    pred = _frames({1: (12, 20, 5), 3: (2, 2, 6)})  # id 3 is right, id 1 is a false person
    video = score_video("v", pred, gt, protocol="tianchi")
    assert len(video.objects) == 1
    assert video.objects[0].pred_id == 3 and video.objects[0].j.mean == 1.0


def test_missing_person_scores_zero():
    gt = _frames({1: (2, 2, 6), 2: (10, 15, 7)})
    pred = _frames({1: (2, 2, 6)})
    video = score_video("v", pred, gt, protocol="tianchi")
    missed = video.objects[1]
    assert missed.gt_id == 2 and missed.pred_id is None
    assert (missed.j_per_frame == 0).all() and (missed.f_per_frame == 0).all()
    assert video.objects[0].j.mean == 1.0
    # unmatched scores 0 even where an empty prediction would have scored 1 (person absent)
    gt_absent = [np.where(g == 2, 0, g).astype(np.uint8) for g in gt]
    gt_absent[0] = gt[0]
    video = score_video("v", pred, gt_absent, protocol="tianchi")
    assert (video.objects[1].j_per_frame == 0).all()


def test_nine_ids_make_the_video_invalid():
    gt = _frames({1: (2, 2, 6)})
    pred_objects = {i: (1 + 2 * (i - 1), 1, 1) for i in range(1, 10)}
    pred_objects[1] = (2, 2, 6)
    pred = _frames(pred_objects, shape=(20, 30))
    video = score_video("v", pred, gt, protocol="tianchi")
    assert not video.valid and "9 ids" in video.note
    assert video.objects[0].j.mean == 0.0 and video.objects[0].pred_id is None
    eight = {i: v for i, v in pred_objects.items() if i <= 8}
    assert score_video("v", _frames(eight), gt, protocol="tianchi").valid


def test_match_jf_can_choose_differently_from_match_iou():
    # 40x40: radius ceil(0.008 * 56.6) = 1. GT: a 20x20 square on both frames.
    # id 1, frame 0 only: the square shifted by (2, 4): J 0.5625, boundary mostly off (F 0.075).
    # id 2, frame 1 only: a one-pixel-wide outline of the square: J 0.19, F 1.
    gt = np.zeros((40, 40), np.uint8)
    gt[10:30, 10:30] = 1
    shifted = np.zeros_like(gt)
    shifted[12:32, 14:34] = 1
    outline = np.zeros_like(gt)
    outline[10:30, 10:30] = 2
    outline[11:29, 11:29] = 0
    pred, truth = [shifted, outline], [gt, gt]
    j1, j2 = np.mean([0.5625, 0.0]), np.mean([0.0, 0.19])
    f1, f2 = np.mean([0.075, 0.0]), np.mean([0.0, 1.0])
    assert j1 > j2 and (j1 + f1) / 2 < (j2 + f2) / 2

    by_iou = score_video("v", pred, truth, protocol="tianchi", match="iou").objects[0]
    by_jf = score_video("v", pred, truth, protocol="tianchi", match="jf").objects[0]
    assert by_iou.pred_id == 1 and by_iou.j.mean == pytest.approx(j1) and by_iou.f.mean == pytest.approx(f1)
    assert by_jf.pred_id == 2 and by_jf.j.mean == pytest.approx(j2) and by_jf.f.mean == pytest.approx(f2)
