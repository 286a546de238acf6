"""Paired comparison of two scored predictions: the mean difference and its bootstrap interval,
on hand-made reports whose every resample can be enumerated."""

from __future__ import annotations

import numpy as np
import pytest

from vcseg.metrics.compare import object_jf, paired_difference
from vcseg.metrics.report import ObjectScore, ScoreReport, VideoScore


def report(videos: dict[str, list[tuple[float, float]]]) -> ScoreReport:
    """A report whose objects have constant per-frame J and F: (J, F) per object, ids 1, 2, ..."""
    return ScoreReport(protocol="tianchi", videos=[
        VideoScore(name=name, valid=True, n_frames=4, objects=[
            ObjectScore(gt_id=i, pred_id=i, j_per_frame=np.full(4, j), f_per_frame=np.full(4, f))
            for i, (j, f) in enumerate(objects, start=1)])
        for name, objects in videos.items()])


def test_mean_is_the_summary_difference_and_the_interval_spans_the_resamples():
    a = report({"v1": [(0.8, 0.6), (0.4, 0.2)], "v2": [(0.5, 0.5)]})
    b = report({"v1": [(0.6, 0.6), (0.4, 0.4)], "v2": [(0.1, 0.3)]})
    assert object_jf(a) == pytest.approx({("v1", 1): 0.7, ("v1", 2): 0.3, ("v2", 1): 0.5})
    difference = paired_difference(a, b)
    # per object 0.1, -0.1, 0.3: mean 0.1, as the summaries say (J&F 0.5 vs 0.4)
    assert difference.mean == pytest.approx(0.1)
    assert difference.mean == pytest.approx(a.summary()["JF_mean"] - b.summary()["JF_mean"])
    # resampling 2 videos: v1 twice 0/4, one each 0.3/3, v2 twice 0.6/2 (each at least a quarter)
    assert difference.low == pytest.approx(0.0) and difference.high == pytest.approx(0.3)
    assert not difference.significant and "not significant" in str(difference)
    assert (difference.videos, difference.objects) == (2, 3)


def test_one_video_has_no_spread_and_consistent_gains_are_significant():
    one = paired_difference(report({"v": [(0.9, 0.9)]}), report({"v": [(0.5, 0.7)]}))
    assert one.mean == one.low == one.high == pytest.approx(0.3)
    two = paired_difference(report({"v1": [(0.6, 0.6)], "v2": [(0.9, 0.9)]}),
                            report({"v1": [(0.4, 0.4)], "v2": [(0.5, 0.5)]}))
    assert two.mean == pytest.approx(0.3) and two.low == pytest.approx(0.2) and two.high == pytest.approx(0.4)
    assert two.significant and "not significant" not in str(two)
    assert paired_difference(report({"v": [(0.5, 0.5)]}), report({"v": [(0.5, 0.5)]})).mean == 0


def test_different_objects_or_none_are_refused():
    with pytest.raises(ValueError, match="different objects"):
        paired_difference(report({"v1": [(0.5, 0.5)]}), report({"v2": [(0.5, 0.5)]}))
    with pytest.raises(ValueError, match="no ground-truth object"):
        paired_difference(report({"v": []}), report({"v": []}))
    with pytest.raises(ValueError, match="confidence"):
        paired_difference(report({"v": [(0.5, 0.5)]}), report({"v": [(0.5, 0.5)]}), confidence=1.5)
