"""One-to-one matching of predicted objects to ground-truth objects (Hungarian assignment)."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment


def hungarian_match(score: np.ndarray) -> dict[int, int]:
    """Pairs maximising the total score: {gt index: pred index}, min(P, G) pairs.

    score: (P, G) video-level score of prediction p against ground truth g (higher is better).
    Predictions are the rows as in the DAVIS code, so ties resolve the same way it does.
    """
    score = np.asarray(score, dtype=np.float64)
    if score.ndim != 2:
        raise ValueError(f"score matrix must be (P, G), got shape {score.shape}")
    if score.size == 0:
        return {}
    pred_rows, gt_cols = linear_sum_assignment(-score)
    return {int(g): int(p) for p, g in zip(pred_rows, gt_cols)}
