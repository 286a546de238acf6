"""Tiny datasets for the viz tests: flat grey frames (so that colours survive H.264), GT masks, and
predictions written the way `vcseg predict` writes them."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from PIL import Image

from tests.conftest import make_video
from vcseg.io.masks import write_mask

GREY = 100


def write_grey_video(root: Path, name: str, masks: list[np.ndarray], value: int = GREY) -> None:
    """Frames of one flat grey (DAVIS layout) with `masks` as the ground truth."""
    make_video(root, name, masks)
    for stem, mask in zip((f"{i:05d}" for i in range(len(masks))), masks):
        frame = np.full((*mask.shape, 3), value, dtype=np.uint8)
        Image.fromarray(frame).save(root / "JPEGImages" / name / f"{stem}.jpg", quality=95)


def write_predictions(root: Path, name: str, masks: list[np.ndarray]) -> Path:
    for t, mask in enumerate(masks):
        write_mask(root / name / f"{t:05d}.png", mask)
    return root


def blocks(frames: int, ids: tuple[int, ...] = (1, 2)) -> list[np.ndarray]:
    """48x96 masks with each id a still 40x40 square, side by side (id k at columns 4 + 48k..):
    big enough for colour checks on the decoded video at INSIDE, far from outlines and labels."""
    mask = np.zeros((48, 96), np.uint8)
    for k, person in enumerate(ids):
        mask[4:44, 4 + 48 * k:44 + 48 * k] = person
    return [mask.copy() for _ in range(frames)]


def inside(k: int) -> tuple[int, int]:
    """A pixel inside the k-th square of `blocks`, in an 8x8 block of pure fill."""
    return 12, 12 + 48 * k


def decode(path: Path) -> list[np.ndarray]:
    """Every frame of a video as RGB, decoded with PyAV (the library that wrote it)."""
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
