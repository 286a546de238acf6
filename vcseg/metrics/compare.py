"""Is method A better than method B on this set of videos, or is the difference noise?

Two predictions of the same videos, scored with the same protocol, differ object by object. The
overall J&F difference is the mean of the per-object differences (every object weighs the same,
as in `ScoreReport.summary`). Its uncertainty comes from a paired bootstrap over videos: a
video's objects share its footage and its mistakes, so they are resampled together, and a set of
12 videos gives a wide interval however many persons they hold. A difference whose interval
excludes 0 is one this set can tell apart; the others need more videos before they rank methods.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from vcseg.metrics.report import ScoreReport


@dataclass(frozen=True)
class Difference:
    """J&F of A minus J&F of B, with its bootstrap interval (`confidence`, e.g. 0.95)."""

    mean: float
    low: float
    high: float
    confidence: float
    videos: int
    objects: int

    @property
    def significant(self) -> bool:
        """True when the interval excludes 0: this set tells A and B apart."""
        return self.low > 0 or self.high < 0

    def __str__(self) -> str:
        verdict = "" if self.significant else ", not significant"
        return (f"{self.mean:+.4f} J&F ({self.confidence:.0%} interval {self.low:+.4f} .. {self.high:+.4f} "
                f"over {self.videos} videos{verdict})")


def object_jf(report: ScoreReport) -> dict[tuple[str, int], float]:
    """(video, ground-truth id) -> that object's (J-Mean + F-Mean) / 2."""
    return {(video.name, obj.gt_id): (obj.j.mean + obj.f.mean) / 2 for video in report.videos for obj in video.objects}


def paired_difference(a: ScoreReport, b: ScoreReport, *, resamples: int = 2000, confidence: float = 0.95,
                      seed: int = 0) -> Difference:
    """J&F of `a` minus `b` over the same ground-truth objects, with a paired bootstrap over videos.

    Raises ValueError when the two reports do not hold the same objects (not the same videos, or
    not the same ground truth), or hold none.
    """
    if not 0 < confidence < 1 or resamples < 1:
        raise ValueError(f"confidence must be in (0, 1) and resamples at least 1 (got {confidence}, {resamples})")
    scores_a, scores_b = object_jf(a), object_jf(b)
    if scores_a.keys() != scores_b.keys():
        only = sorted(scores_a.keys() ^ scores_b.keys())[:3]
        raise ValueError(f"the two reports score different objects (e.g. {only}); compare predictions of the "
                         "same videos against the same ground truth")
    if not scores_a:
        raise ValueError("no ground-truth object to compare")
    by_video: dict[str, list[float]] = defaultdict(list)
    for key, value in scores_a.items():
        by_video[key[0]].append(value - scores_b[key])
    sums = np.array([sum(diffs) for diffs in by_video.values()])
    counts = np.array([len(diffs) for diffs in by_video.values()])
    picks = np.random.default_rng(seed).integers(0, len(sums), size=(resamples, len(sums)))
    means = sums[picks].sum(axis=1) / counts[picks].sum(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return Difference(mean=float(sums.sum() / counts.sum()), low=float(low), high=float(high),
                      confidence=confidence, videos=len(sums), objects=int(counts.sum()))
