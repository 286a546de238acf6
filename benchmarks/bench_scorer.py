"""Scorer speed: vcseg's J&F against the direct per-pair computation of tests/metrics/reference_jf.

The case the issue names: 854x480 frames, 3 ground-truth persons, 4 predicted ones, every pair
scored (what --match jf and davis-unsup need). Prints the median time per frame of each over
several runs and the speed ratio; both run in this one process (no worker parallelism counted).
"""

from __future__ import annotations


import numpy as np

from tests.metrics.reference_jf import reference_pair_scores
from benchmarks.timing import median_seconds
from vcseg.metrics.protocols import score_video, video_pair_scores

HEIGHT, WIDTH, N_FRAMES, N_GT, N_PRED, RUNS = 480, 854, 3, 3, 4, 5


def person_frames(n_people: int, seed: int) -> list[np.ndarray]:
    """Person-sized ellipses (a head on a body) drifting across the frames, one id each."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:HEIGHT, :WIDTH]
    centres = rng.uniform((150, 100), (380, 750), size=(n_people, 2))
    frames = []
    for t in range(N_FRAMES):
        ids = np.zeros((HEIGHT, WIDTH), np.uint8)
        for person, (cy, cx) in enumerate(centres + t * rng.normal(0, 4, size=(n_people, 2)), start=1):
            body = ((yy - cy) / 140) ** 2 + ((xx - cx) / 55) ** 2 <= 1
            head = ((yy - (cy - 165)) / 30) ** 2 + ((xx - cx) / 24) ** 2 <= 1
            ids[body | head] = person
        frames.append(ids)
    return frames


def main() -> None:
    gt = person_frames(N_GT, seed=1)
    pred = person_frames(N_PRED, seed=2)
    pred_ids, gt_ids = list(range(1, N_PRED + 1)), list(range(1, N_GT + 1))

    reference_out: list = []
    ours = median_seconds(lambda: score_video("bench", pred, gt, protocol="tianchi", match="jf"), RUNS, warmup=False)
    reference = median_seconds(
        lambda: reference_out.append(reference_pair_scores(pred, gt, pred_ids, gt_ids)), 3, warmup=False)
    ours_j, ours_f = video_pair_scores(pred, gt, pred_ids, gt_ids)
    ref_j, ref_f = reference_out[0]
    worst = max(np.abs(ours_j - ref_j).max(), np.abs(ours_f - ref_f).max())
    print(f"scorer, {WIDTH}x{HEIGHT}, {N_GT} GT vs {N_PRED} predicted, all pairs, {N_FRAMES} frames "
          f"(median of runs):")
    print(f"  vcseg score_video (tianchi, --match jf): {1000 * ours / N_FRAMES:8.2f} ms/frame")
    print(f"  direct per-pair reference:               {1000 * reference / N_FRAMES:8.2f} ms/frame")
    print(f"  speed ratio: {reference / ours:.1f}x   (max |difference| {worst:.1e})")


if __name__ == "__main__":
    main()
