"""Tiny test sets for the pack tests: JPG frames, and prediction folders of indexed PNGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import write_frame
from vcseg.io.masks import write_mask

# video -> (frame stems, (height, width)); sizes not multiples of 16, as in the test set
VIDEOS = {
    "alpha": (["00000", "00001", "00002"], (20, 30)),
    "beta": (["00005", "00006"], (18, 26)),
}


def write_frames(root: Path, videos=VIDEOS) -> Path:
    for video, (stems, (height, width)) in videos.items():
        for seed, stem in enumerate(stems):
            write_frame(root / video / f"{stem}.jpg", height, width, seed=seed)
    return root


def person_mask(height: int, width: int, ids: list[int]) -> np.ndarray:
    """A mask with one vertical band per id (ids left to right), background elsewhere."""
    mask = np.zeros((height, width), dtype=np.uint8)
    for index, person in enumerate(ids):
        mask[2:-2, 1 + 3 * index:3 + 3 * index] = person
    return mask


# the ids each prediction frame holds: alpha has persons 1 and 2, beta person 3
PRED_IDS = {"alpha": [[1, 2], [1, 2], [2]], "beta": [[3], [3]]}


def write_predictions(root: Path, videos=VIDEOS, ids=PRED_IDS) -> Path:
    for video, (stems, (height, width)) in videos.items():
        for stem, frame_ids in zip(stems, ids[video]):
            write_mask(root / video / f"{stem}.png", person_mask(height, width, frame_ids))
    return root


@pytest.fixture
def test_set(tmp_path: Path) -> tuple[Path, Path]:
    """(predictions folder, frames root) of a valid two-video submission."""
    frames = write_frames(tmp_path / "test")
    preds = write_predictions(tmp_path / "preds")
    return preds, frames
