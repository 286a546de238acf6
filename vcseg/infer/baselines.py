"""Reference predictors that need no model: the floor any trained model must beat."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from vcseg.errors import VcsegError
from vcseg.infer.discovery import Proposer, mask_iou, relabel
from vcseg.io.frames import read_frame
from vcseg.io.layouts import DatasetFiles, VideoFiles
from vcseg.io.masks import read_mask, write_mask


def copy_first_mask_forward(dataset: DatasetFiles, out: str | os.PathLike[str],
                            videos: list[str] | None = None,
                            progress: Callable[[int, int], None] | None = None) -> Path:
    """Predict every frame as the video's first annotated mask (semi-supervised copy-forward).

    Writes `out/<video>/<stem>.png` for every frame of each video (all videos, or `videos`).
    This is the baseline the propagation model is measured against.
    """
    out = Path(out)
    chosen = [v for v in dataset.videos if videos is None or v.name in videos]
    for done, video in enumerate(chosen, start=1):
        first = next((stem for stem in video.frames if stem in video.masks), None)
        if first is None:
            raise VcsegError(f"{dataset.frames_root / video.name}: no annotated frame to copy forward; "
                             "the copy-forward baseline needs a first-frame mask")
        ids = read_mask(video.masks[first])
        for stem in video.frames:
            write_mask(out / video.name / f"{stem}.png", ids)
        if progress is not None:
            progress(done, len(chosen))
    return out


def proposals_per_frame(propose: Proposer, frames: Iterable[np.ndarray], match_iou: float = 0.3,
                        max_instances: int = 8) -> list[np.ndarray]:
    """Unsupervised baseline with no memory: `propose` (e.g. `network_proposer`) on every frame,
    ids carried over by greedy IoU with the previous frame's instances (a new id below
    `match_iou`), the `max_instances` most frequent ids kept. What tracking with the memory
    network must beat. Returns each frame's (H, W) uint8 ids."""
    outputs, previous, next_id, seen = [], {}, 1, {}
    for index, frame in enumerate(frames):
        current, ids = {}, np.zeros(frame.shape[:2], np.uint8)
        for proposal in propose(index, frame):
            candidates = [(mask_iou(proposal.mask, mask), object_id) for object_id, mask in previous.items()
                          if object_id not in current]
            best_iou, best_id = max(candidates, default=(0.0, 0))
            if best_iou < match_iou:
                if next_id > 255:
                    continue
                best_id, next_id = next_id, next_id + 1
            current[best_id] = proposal.mask
            ids[proposal.mask & (ids == 0)] = best_id
            seen[best_id] = seen.get(best_id, 0) + 1
        previous = current
        outputs.append(ids)
    kept = sorted(seen, key=lambda object_id: -seen[object_id])[:max_instances]
    mapping = {object_id: rank for rank, object_id in enumerate(sorted(kept), start=1)}
    return [relabel(ids, mapping) for ids in outputs]


def write_proposals_per_frame(dataset: DatasetFiles, proposer_for: Callable[[VideoFiles], Proposer],
                              out: str | os.PathLike[str]) -> Path:
    """The per-frame baseline of the no-mask task: `proposals_per_frame` with `proposer_for(video)`
    on every video, masks written to out/<video>/<stem>.png."""
    out = Path(out)
    for video in dataset.videos:
        if not video.frames:
            continue
        masks = proposals_per_frame(proposer_for(video), (read_frame(path) for path in video.frames.values()))
        for stem, ids in zip(video.frames, masks):
            write_mask(out / video.name / f"{stem}.png", ids)
    return out
