"""J (region similarity) and F (boundary measure) as pure functions: arrays in, numbers out.

Definitions follow DAVIS 2017 to the pixel (see docs/competition.md):

- J over a frame = |P ∩ G| / |P ∪ G|, 1 where the union is empty; void pixels are left out.
- F over a frame: boundary maps of both masks (void cut out first), each dilated by a disk of
  radius r = ceil(0.008 * sqrt(H² + W²)); precision = pred boundary pixels near the GT boundary,
  recall = GT boundary pixels near the pred boundary, F = 2PR / (P + R) with DAVIS' special cases.
- Per object over its frames: Mean, Recall (fraction of frames > 0.5) and Decay (mean of the
  first of four overlapping bins minus mean of the last).

The scorer does not call `f_measure` per pair: `vcseg.metrics.boundaries` computes each mask's
boundary and dilation once per frame and then counts pairs from those. `f_measure` here is the
one-pair form of the same definition, shared building blocks included.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np

BOUND_TH = 0.008
DECAY_BINS = 4


def boundary_radius(height: int, width: int, bound_th: float = BOUND_TH) -> int:
    """Tolerance radius of the boundary measure in pixels: ceil(0.008 * diagonal); 8 at 854x480."""
    return int(math.ceil(bound_th * math.sqrt(height * height + width * width)))


def disk_footprint(radius: int) -> np.ndarray:
    """The `(2r+1, 2r+1)` bool disk x² + y² <= r² (the footprint of skimage.morphology.disk)."""
    offsets = np.arange(-radius, radius + 1)
    return offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius * radius


def region_similarity(pred: np.ndarray, gt: np.ndarray, void: np.ndarray | None = None) -> float:
    """J of one frame: |P ∩ G| / |P ∪ G| over non-void pixels, 1 when the union is empty."""
    pred, gt = np.asarray(pred, dtype=bool), np.asarray(gt, dtype=bool)
    if void is not None:
        keep = ~np.asarray(void, dtype=bool)
        pred, gt = pred & keep, gt & keep
    intersection = int(np.count_nonzero(pred & gt))
    union = int(np.count_nonzero(pred | gt))
    return j_from_counts(intersection, union)


def j_from_counts(intersection: int, union: int) -> float:
    """J from pixel counts; an empty union (both masks empty) scores 1."""
    return 1.0 if union == 0 else intersection / union


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """The `(H, W)` bool boundary of a binary mask, DAVIS' one-pixel-wide definition.

    A pixel is on the boundary where it differs from its east, south or south-east neighbour.
    The last row compares only east, the last column only south, and the bottom-right pixel is
    never a boundary, so the image border itself is not a boundary.
    """
    mask = np.asarray(mask, dtype=bool)
    boundary = np.zeros_like(mask)
    boundary[:-1, :-1] = ((mask[:-1, :-1] ^ mask[:-1, 1:]) | (mask[:-1, :-1] ^ mask[1:, :-1])
                          | (mask[:-1, :-1] ^ mask[1:, 1:]))
    boundary[-1, :-1] = mask[-1, :-1] ^ mask[-1, 1:]
    boundary[:-1, -1] = mask[:-1, -1] ^ mask[1:, -1]
    boundary[-1, -1] = False
    return boundary


def dilate_disk(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation of `mask` by `disk_footprint(radius)`; pixels outside the array count as 0.

    OpenCV's dilation with the disk itself as the kernel (a constant 0 border): the same pixels as
    `scipy.ndimage.binary_dilation` with that footprint (the tests compare them), 3-10x faster
    than the max-filters over the disk's horizontal runs it replaced (0.94 against 5.98 ms for a
    sparse 854x480 map at r = 8; 0.12 against 0.60 ms for a 260x160 box).
    """
    mask = np.ascontiguousarray(mask, dtype=bool)
    if radius <= 0 or not mask.any():
        return mask.copy()
    dilated = cv2.dilate(mask.view(np.uint8), _disk_kernel(radius), borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return dilated.view(bool)


@functools.lru_cache(maxsize=32)
def _disk_kernel(radius: int) -> np.ndarray:
    return disk_footprint(radius).astype(np.uint8)


def f_from_counts(n_pred: int, n_gt: int, pred_matched: int, gt_matched: int) -> float:
    """F from boundary pixel counts, with DAVIS' special cases.

    n_pred, n_gt: boundary pixels of prediction and GT; pred_matched: pred boundary pixels inside
    the dilated GT boundary; gt_matched: GT boundary pixels inside the dilated pred boundary.
    Only the prediction has no boundary: P=1, R=0; only the GT: P=0, R=1; neither: P=R=1.
    """
    if n_pred == 0 and n_gt > 0:
        precision, recall = 1.0, 0.0
    elif n_pred > 0 and n_gt == 0:
        precision, recall = 0.0, 1.0
    elif n_pred == 0 and n_gt == 0:
        precision, recall = 1.0, 1.0
    else:
        precision, recall = pred_matched / float(n_pred), gt_matched / float(n_gt)
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def f_measure(pred: np.ndarray, gt: np.ndarray, void: np.ndarray | None = None,
              radius: int | None = None) -> float:
    """F of one frame for one pair of binary masks; void pixels are cut out of both first."""
    pred, gt = np.asarray(pred, dtype=bool), np.asarray(gt, dtype=bool)
    if void is not None:
        keep = ~np.asarray(void, dtype=bool)
        pred, gt = pred & keep, gt & keep
    if radius is None:
        radius = boundary_radius(*pred.shape)
    pred_boundary, gt_boundary = boundary_map(pred), boundary_map(gt)
    pred_matched = int(np.count_nonzero(pred_boundary & dilate_disk(gt_boundary, radius)))
    gt_matched = int(np.count_nonzero(gt_boundary & dilate_disk(pred_boundary, radius)))
    return f_from_counts(int(np.count_nonzero(pred_boundary)), int(np.count_nonzero(gt_boundary)),
                         pred_matched, gt_matched)


@dataclass(frozen=True)
class ObjectStatistics:
    """Mean, Recall and Decay of one object's per-frame values (J or F)."""

    mean: float
    recall: float
    decay: float


def decay_bins(n_frames: int, n_bins: int = DECAY_BINS) -> list[tuple[int, int]]:
    """DAVIS' overlapping bins as [start, stop) frame ranges.

    Bin edges are round(linspace(1, N, 5) + 1e-10) - 1 and bin i spans edges i..i+1 inclusive,
    so neighbouring bins share their edge frame. (Plain ints: DAVIS casts to uint8 and breaks
    past 255 frames.)
    """
    edges = (np.round(np.linspace(1, n_frames, n_bins + 1) + 1e-10) - 1).astype(np.int64)
    return [(int(edges[i]), int(edges[i + 1]) + 1) for i in range(n_bins)]


def object_statistics(values: np.ndarray) -> ObjectStatistics:
    """Mean, Recall (fraction of frames > 0.5) and Decay (first bin mean - last bin mean)."""
    values = np.asarray(values, dtype=np.float64)  # (T,)
    if values.size == 0:
        raise ValueError("no frames to compute statistics over")
    bins = decay_bins(values.size)
    first, last = bins[0], bins[-1]
    decay = np.mean(values[first[0]:first[1]]) - np.mean(values[last[0]:last[1]])
    return ObjectStatistics(mean=float(np.mean(values)), recall=float(np.mean(values > 0.5)),
                            decay=float(decay))
