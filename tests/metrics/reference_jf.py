"""A direct, obviously-correct J&F: the test oracle and the benchmark's baseline.

Full-frame boundary maps, `scipy.ndimage.binary_dilation` with an explicit disk footprint, and
every (prediction, ground truth) pair computed from scratch: no crops, no sharing, no tricks.
Written from the definition in docs/competition.md, independently of `vcseg.metrics`.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import binary_dilation


def reference_disk(radius: int) -> np.ndarray:
    footprint = np.zeros((2 * radius + 1, 2 * radius + 1), dtype=bool)
    for y in range(-radius, radius + 1):
        for x in range(-radius, radius + 1):
            footprint[y + radius, x + radius] = x * x + y * y <= radius * radius
    return footprint


def reference_boundary(mask: np.ndarray) -> np.ndarray:
    mask = mask.astype(bool)
    height, width = mask.shape
    east = np.zeros_like(mask)
    south = np.zeros_like(mask)
    south_east = np.zeros_like(mask)
    east[:, : width - 1] = mask[:, 1:]
    south[: height - 1, :] = mask[1:, :]
    south_east[: height - 1, : width - 1] = mask[1:, 1:]
    boundary = (mask != east) | (mask != south) | (mask != south_east)
    boundary[height - 1, :] = mask[height - 1, :] != east[height - 1, :]
    boundary[:, width - 1] = mask[:, width - 1] != south[:, width - 1]
    boundary[height - 1, width - 1] = False
    return boundary


def reference_j(pred: np.ndarray, gt: np.ndarray, void: np.ndarray | None = None) -> float:
    keep = np.ones(pred.shape, bool) if void is None else ~void.astype(bool)
    inter = np.sum(pred.astype(bool) & gt.astype(bool) & keep)
    union = np.sum((pred.astype(bool) | gt.astype(bool)) & keep)
    return 1.0 if union == 0 else float(inter) / float(union)


def reference_f(pred: np.ndarray, gt: np.ndarray, void: np.ndarray | None = None) -> float:
    keep = np.ones(pred.shape, bool) if void is None else ~void.astype(bool)
    pred, gt = pred.astype(bool) & keep, gt.astype(bool) & keep
    height, width = pred.shape
    radius = int(math.ceil(0.008 * math.sqrt(height ** 2 + width ** 2)))
    disk = reference_disk(radius)
    pred_b, gt_b = reference_boundary(pred), reference_boundary(gt)
    pred_dil = binary_dilation(pred_b, structure=disk)
    gt_dil = binary_dilation(gt_b, structure=disk)
    n_pred, n_gt = int(pred_b.sum()), int(gt_b.sum())
    if n_pred == 0 and n_gt == 0:
        return 1.0
    if n_pred == 0:
        precision, recall = 1.0, 0.0
    elif n_gt == 0:
        precision, recall = 0.0, 1.0
    else:
        precision = int((pred_b & gt_dil).sum()) / float(n_pred)
        recall = int((gt_b & pred_dil).sum()) / float(n_gt)
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def reference_pair_scores(pred_frames, gt_frames, pred_ids, gt_ids, void_frames=None):
    """(P, G, T) J and F for every pair, each computed from scratch on full frames.

    A pred id of -1 is an empty mask. void_frames: per-frame bool void masks, or None.
    """
    n_frames = len(gt_frames)
    j = np.zeros((len(pred_ids), len(gt_ids), n_frames))
    f = np.zeros((len(pred_ids), len(gt_ids), n_frames))
    for t in range(n_frames):
        void = None if void_frames is None else void_frames[t]
        for p, pred_id in enumerate(pred_ids):
            pred = pred_frames[t] == pred_id
            for g, gt_id in enumerate(gt_ids):
                gt = gt_frames[t] == gt_id
                j[p, g, t] = reference_j(pred, gt, void)
                f[p, g, t] = reference_f(pred, gt, void)
    return j, f


def reference_statistics(values: np.ndarray) -> tuple[float, float, float]:
    """Mean, recall (> 0.5) and decay with DAVIS' four overlapping bins, written out by hand."""
    n = len(values)
    edges = [int(round(1 + k * (n - 1) / 4 + 1e-10)) - 1 for k in range(5)]
    first = values[edges[0]: edges[1] + 1]
    last = values[edges[3]: edges[4] + 1]
    return (float(np.mean(values)), float(np.mean(np.asarray(values) > 0.5)),
            float(np.mean(first) - np.mean(last)))
