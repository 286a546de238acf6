"""Reference predictors that need no model: the floor any trained model must beat."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from vcseg.errors import VcsegError
from vcseg.io.layouts import DatasetFiles
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
