"""Scoring one video under a protocol: id maps in, per-object J and F out (no file I/O).

Protocols:

- `tianchi`: every frame with a ground-truth mask is scored. Predicted ids are matched one to
  one to GT ids by the Hungarian algorithm on the video-level mean IoU (`match="jf"`: on
  (J_mean + F_mean) / 2); an unmatched GT person scores 0 (J = F = 0 every frame); a prediction
  with more than 8 ids (counted over the scored frames) makes the video invalid, and all its
  persons score 0. GT 255 is decided per video: the competition's person ids are small
  integers 1..N and never 255, so where a video's GT holds 255 beside real ids, 255 is DAVIS'
  void (not a person; cut out of the prediction for J and out of both masks before F, as
  davis-unsup does), while a video whose GT holds no id but 255 is a set of binary 0/255 masks
  and 255 is person 1. Predicted ids on void pixels still count toward the 8-id limit.
- `davis-unsup` (DAVIS 2017 unsupervised): every frame scored; GT 255 is void (left out of J,
  cut out of both masks before the boundary); proposals 1..max id (at most 20) are matched on
  (J_mean + F_mean) / 2; a GT object left without a proposal is scored against an empty mask.
- `davis-semi` (DAVIS 2017 semi-supervised): ids compared as they are, the first and last frame
  not scored, GT 255 is background, a GT id missing from the prediction scored against an empty
  mask.

GT objects are all ids seen in any GT frame (DAVIS takes them from the first frame only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vcseg.errors import VcsegError
from vcseg.io.masks import id_counts
from vcseg.metrics.boundaries import EMPTY_BOUNDARY, frame_boundaries, pair_f
from vcseg.metrics.jf import boundary_radius
from vcseg.metrics.matching import hungarian_match
from vcseg.metrics.report import ObjectScore, VideoScore

PROTOCOLS = ("tianchi", "davis-unsup", "davis-semi")
MATCHES = ("iou", "jf")
TIANCHI_MAX_IDS = 8
DAVIS_MAX_PROPOSALS = 20
VOID_ID = 255
EMPTY = -1  # a padded prediction: an empty mask on every frame
_EMPTY_ROW = 256  # its row in the per-frame pair table (ids are 0..255)


def ids_present(frames: Sequence[np.ndarray], exclude: tuple[int, ...] = (0,)) -> list[int]:
    """Sorted ids seen in any of the `(H, W)` id maps, without the excluded values."""
    seen = np.zeros(256, dtype=bool)
    for frame in frames:
        seen |= id_counts(frame) > 0
    seen[list(exclude)] = False
    return [int(i) for i in np.flatnonzero(seen)]


@dataclass(frozen=True)
class FrameCounts:
    """Pixel counts of every (pred id, gt id) combination present in one frame, kept sparse.

    codes: pred id * 256 + gt id of each combination present, (K,); counts: its pixels, (K,).
    """

    codes: np.ndarray
    counts: np.ndarray

    @classmethod
    def of(cls, pred: np.ndarray, gt: np.ndarray) -> FrameCounts:
        """One joint histogram pass over the frame (void already cut out of `pred`).

        Where both maps are uint8 with every id below 16 (nearly every frame: a video holds a few
        persons), a pair fits one byte, pred << 4 | gt, counted by `id_counts` in 0.34 ms at
        854x480 against 0.59 ms for the 16-bit codes below."""
        if (pred.dtype == gt.dtype == np.uint8 and pred.ndim == 2 and pred.size
                and int(pred.max()) < 16 and int(gt.max()) < 16):
            joint = np.left_shift(pred, 4, dtype=np.uint8)
            joint |= gt
            histogram = id_counts(joint)
            pairs = np.flatnonzero(histogram)  # p * 16 + g, in the order of p * 256 + g
            return cls(codes=(pairs >> 4) * 256 + (pairs & 15), counts=histogram[pairs])
        joint = pred.astype(np.uint16)  # one copy, combined in place: far faster than int64 arithmetic
        joint <<= 8
        np.bitwise_or(joint, gt, out=joint, casting="unsafe")  # ids are 0..255 whatever their dtype
        histogram = np.bincount(joint.ravel())  # as long as the largest code needs
        codes = np.flatnonzero(histogram)
        return cls(codes=codes, counts=histogram[codes])

    def pred_ids(self) -> set[int]:
        return {int(c) for c in np.unique(self.codes // 256)} - {0}

    def gt_ids(self) -> set[int]:
        return {int(c) for c in np.unique(self.codes % 256)} - {0}

    def pair_j(self, pred_ids: Sequence[int], gt_ids: Sequence[int]) -> np.ndarray:
        """J of every (pred id, gt id) pair, `(P, G)`; a pred id of EMPTY is an empty mask.

        From the sparse counts alone (a frame holds a few dozen combinations): each id's area is
        the sum of its combinations' pixels, each pair's intersection the count of its code."""
        pred_of, gt_of = np.divmod(self.codes, 256)
        pred_area = np.bincount(pred_of, weights=self.counts, minlength=_EMPTY_ROW + 1)  # row 256: EMPTY's, 0
        gt_area = np.bincount(gt_of, weights=self.counts, minlength=256)  # float64: exact below 2**53 pixels
        rows = np.array([_EMPTY_ROW if p == EMPTY else p for p in pred_ids], dtype=np.intp)
        cols = np.asarray(gt_ids, dtype=np.intp)
        wanted = rows[:, None] * 256 + cols[None, :]  # EMPTY's codes lie past every real one
        at = np.minimum(np.searchsorted(self.codes, wanted), len(self.codes) - 1)
        intersection = np.where(self.codes[at] == wanted, self.counts[at], 0) if len(self.codes) else np.zeros(wanted.shape)
        union = pred_area[rows][:, None] + gt_area[cols][None, :] - intersection
        j = np.ones(intersection.shape, dtype=np.float64)
        np.divide(intersection, union, out=j, where=union > 0)
        return j


def video_pair_j(counts: Sequence[FrameCounts], pred_ids: Sequence[int], gt_ids: Sequence[int]) -> np.ndarray:
    """Per-frame J of every (pred, gt) pair over a video, `(P, G, T)`."""
    j = np.zeros((len(pred_ids), len(gt_ids), len(counts)))
    for t, frame in enumerate(counts):
        j[:, :, t] = frame.pair_j(pred_ids, gt_ids)
    return j


def video_pair_f(pred_frames: Sequence[np.ndarray], gt_frames: Sequence[np.ndarray],
                 pred_ids: Sequence[int], gt_ids: Sequence[int],
                 f_pairs: Sequence[tuple[int, int]] | None = None) -> np.ndarray:
    """Per-frame F of the index pairs (p, g) in `f_pairs` (None: all), `(P, G, T)`, NaN elsewhere.

    Each object's boundary and dilation is computed once per frame, whatever the number of
    pairs it takes part in. Void must already be cut out of the frames.
    """
    if f_pairs is None:
        f_pairs = [(p, g) for p in range(len(pred_ids)) for g in range(len(gt_ids))]
    f = np.full((len(pred_ids), len(gt_ids), len(gt_frames)), np.nan)
    if not f_pairs:
        return f
    pred_needed = sorted({pred_ids[p] for p, _ in f_pairs} - {EMPTY})
    gt_needed = sorted({gt_ids[g] for _, g in f_pairs})
    for t, (pred, gt) in enumerate(zip(pred_frames, gt_frames)):
        radius = boundary_radius(*gt.shape)
        pred_bounds = frame_boundaries(pred, pred_needed, radius)
        gt_bounds = frame_boundaries(gt, gt_needed, radius)
        for p, g in f_pairs:
            f[p, g, t] = pair_f(pred_bounds.get(pred_ids[p], EMPTY_BOUNDARY), gt_bounds[gt_ids[g]])
    return f


def cut_void(pred_frames: Sequence[np.ndarray], void_frames: Sequence[np.ndarray | None] | None) -> list[np.ndarray]:
    """Predictions with the void pixels set to background (DAVIS cuts void out of both masks)."""
    if void_frames is None:
        return list(pred_frames)
    return [pred if void is None or not void.any() else np.where(void, 0, pred).astype(np.uint8)
            for pred, void in zip(pred_frames, void_frames)]


def video_pair_scores(pred_frames: Sequence[np.ndarray], gt_frames: Sequence[np.ndarray],
                      pred_ids: Sequence[int], gt_ids: Sequence[int],
                      f_pairs: Sequence[tuple[int, int]] | None = None,
                      void_frames: Sequence[np.ndarray | None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame J (every pair) and F (`f_pairs`, None: all) as `(P, G, T)` arrays.

    void_frames: per frame a bool `(H, W)` mask of void pixels (or None), cut out of predictions;
    the GT ids never include the void value.
    """
    pred_frames = cut_void(pred_frames, void_frames)
    counts = [FrameCounts.of(pred, gt) for pred, gt in zip(pred_frames, gt_frames)]
    return (video_pair_j(counts, pred_ids, gt_ids),
            video_pair_f(pred_frames, gt_frames, pred_ids, gt_ids, f_pairs))


def _check_shapes(name: str, pred_frames: Sequence[np.ndarray | None], gt_frames: Sequence[np.ndarray]) -> None:
    for t, (pred, gt) in enumerate(zip(pred_frames, gt_frames)):
        if pred is not None and pred.shape != gt.shape:
            raise VcsegError(f"{name}: frame {t} prediction is {pred.shape[1]}x{pred.shape[0]} but ground "
                             f"truth is {gt.shape[1]}x{gt.shape[0]}; predict at the frame's own size")


def score_video(name: str, pred_frames: Sequence[np.ndarray | None], gt_frames: Sequence[np.ndarray],
                protocol: str = "tianchi", match: str = "iou") -> VideoScore:
    """Score one video: `pred_frames[t]` against `gt_frames[t]`, `(H, W)` uint8 id maps.

    Ground truth keeps 255 as read: void or background under the DAVIS protocols; under tianchi
    void, or person 1 in a video of binary 0/255 masks (`tianchi_ground_truth`).
    Under davis-semi the first and last frames are not scored (their predictions may be None).
    Raises VcsegError for predictions the DAVIS protocols refuse (too many or unknown ids).
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {PROTOCOLS}")
    if match not in MATCHES:
        raise ValueError(f"unknown match {match!r}; choose one of {MATCHES}")
    if len(pred_frames) != len(gt_frames):
        raise ValueError(f"{name}: {len(pred_frames)} predicted frames for {len(gt_frames)} GT frames")
    if protocol == "tianchi":
        return _score_tianchi(name, pred_frames, gt_frames, match)
    if protocol == "davis-unsup":
        return _score_davis_unsup(name, pred_frames, gt_frames)
    return _score_davis_semi(name, pred_frames, gt_frames)


def _objects(gt_ids: Sequence[int], pred_ids: Sequence[int], assignment: dict[int, int],
             j: np.ndarray | None, f: np.ndarray | None, present: set[int],
             n_frames: int) -> list[ObjectScore]:
    """ObjectScores of every GT object from its assigned prediction (unassigned: zeros).

    j, f: `(P, G, T)` per-frame scores (None when nothing is assigned); present: the pred ids
    that appear in the prediction (others are empty masks and reported as pred_id None).
    """
    objects = []
    for g, gt_id in enumerate(gt_ids):
        if g in assignment:
            p = assignment[g]
            pred_id = pred_ids[p] if pred_ids[p] in present else None
            objects.append(ObjectScore(gt_id, pred_id, j[p, g].copy(), f[p, g].copy()))
        else:
            objects.append(ObjectScore(gt_id, None, np.zeros(n_frames), np.zeros(n_frames)))
    return objects


def tianchi_ground_truth(gt_frames: Sequence[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
    """The GT frames as tianchi scores them, and the per-frame void masks (None: no void).

    Decided over the whole video, so that a frame showing only void beside frames with persons
    cannot turn void into person 1: no 255 at all, nothing to do; 255 the only non-zero value,
    binary masks (255 becomes id 1); 255 beside other ids, void.
    """
    present = ids_present(gt_frames)
    if VOID_ID not in present:
        return list(gt_frames), None
    if present == [VOID_ID]:
        return [(gt == VOID_ID).astype(np.uint8) for gt in gt_frames], None
    return list(gt_frames), [gt == VOID_ID for gt in gt_frames]


def _score_tianchi(name: str, pred_frames: Sequence[np.ndarray], gt_frames: Sequence[np.ndarray],
                   match: str) -> VideoScore:
    _check_shapes(name, pred_frames, gt_frames)
    n_frames = len(gt_frames)
    gt_frames, voids = tianchi_ground_truth(gt_frames)
    scored = cut_void(pred_frames, voids)
    counts = [FrameCounts.of(pred, gt) for pred, gt in zip(scored, gt_frames)]
    gt_ids = sorted(set().union(*(frame.gt_ids() for frame in counts)) - {VOID_ID})
    pred_ids = sorted(set().union(*(frame.pred_ids() for frame in counts)))
    if voids is not None:  # cutting void may hide ids from the counts; the 8-id rule sees them as submitted
        pred_ids = ids_present(pred_frames)
    if len(pred_ids) > TIANCHI_MAX_IDS:
        objects = [ObjectScore(g, None, np.zeros(n_frames), np.zeros(n_frames)) for g in gt_ids]
        return VideoScore(name, False, objects, n_frames,
                          note=f"{len(pred_ids)} ids > {TIANCHI_MAX_IDS}")
    if not pred_ids or not gt_ids:
        return VideoScore(name, True, _objects(gt_ids, pred_ids, {}, None, None, set(), n_frames), n_frames)
    j = video_pair_j(counts, pred_ids, gt_ids)
    if match == "jf":
        f = video_pair_f(scored, gt_frames, pred_ids, gt_ids)
        assignment = hungarian_match((j.mean(axis=2) + f.mean(axis=2)) / 2)
    else:
        assignment = hungarian_match(j.mean(axis=2))
        # F only for the pairs that count
        f = video_pair_f(scored, gt_frames, pred_ids, gt_ids, [(p, g) for g, p in assignment.items()])
    return VideoScore(name, True, _objects(gt_ids, pred_ids, assignment, j, f, set(pred_ids), n_frames),
                      n_frames)


def _score_davis_unsup(name: str, pred_frames: Sequence[np.ndarray], gt_frames: Sequence[np.ndarray]) -> VideoScore:
    _check_shapes(name, pred_frames, gt_frames)
    n_frames = len(gt_frames)
    gt_ids = ids_present(gt_frames, exclude=(0, VOID_ID))
    present = ids_present(pred_frames)
    max_id = max(present, default=0)
    if max_id > DAVIS_MAX_PROPOSALS:
        raise VcsegError(f"{name}: prediction holds id {max_id}; davis-unsup allows at most "
                         f"{DAVIS_MAX_PROPOSALS} proposals, numbered 1..{DAVIS_MAX_PROPOSALS}")
    # proposals are ids 1..max (a gap is an empty proposal), padded with empty masks up to the
    # number of GT objects: DAVIS' rule, which lets a GT object match an empty mask
    proposals = list(range(1, max_id + 1)) + [EMPTY] * max(len(gt_ids) - max_id, 0)
    if not gt_ids:
        return VideoScore(name, True, [], n_frames)
    voids = [gt == VOID_ID for gt in gt_frames]
    j, f = video_pair_scores(pred_frames, gt_frames, proposals, gt_ids, void_frames=voids)
    assignment = hungarian_match((np.mean(j, axis=2) + np.mean(f, axis=2)) / 2)
    return VideoScore(name, True, _objects(gt_ids, proposals, assignment, j, f, set(present), n_frames),
                      n_frames)


def _score_davis_semi(name: str, pred_frames: Sequence[np.ndarray | None], gt_frames: Sequence[np.ndarray]) -> VideoScore:
    if len(gt_frames) < 3:
        raise VcsegError(f"{name}: {len(gt_frames)} annotated frames; davis-semi leaves out the first and "
                         "last frame and needs at least 3")
    gt_ids = ids_present(gt_frames, exclude=(0, VOID_ID))  # first and last frame define objects too
    pred_frames, gt_frames = list(pred_frames[1:-1]), [np.where(gt == VOID_ID, 0, gt).astype(np.uint8)
                                                       for gt in gt_frames[1:-1]]
    _check_shapes(name, pred_frames, gt_frames)
    n_frames = len(gt_frames)
    present = ids_present(pred_frames)
    unknown = sorted(set(present) - set(gt_ids))
    if unknown:
        raise VcsegError(f"{name}: prediction holds ids {unknown} that no ground-truth object has "
                         f"(GT ids {gt_ids}); davis-semi compares ids as they are, renumber the prediction")
    if not gt_ids:
        return VideoScore(name, True, [], n_frames)
    pairs = [(g, g) for g in range(len(gt_ids))]  # prediction id k against GT id k
    j, f = video_pair_scores(pred_frames, gt_frames, gt_ids, gt_ids, f_pairs=pairs)
    assignment = {g: g for g in range(len(gt_ids))}
    return VideoScore(name, True, _objects(gt_ids, gt_ids, assignment, j, f, set(present), n_frames), n_frames)
