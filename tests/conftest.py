"""Shared test fixtures: the real DAVIS people sequences and tiny datasets made on the spot."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vcseg.io.masks import write_mask

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

DAVIS_PEOPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "davis2016-people"


@pytest.fixture
def davis_people() -> Path:
    if not DAVIS_PEOPLE.is_dir():
        pytest.skip("shared DAVIS people sequences not present")
    return DAVIS_PEOPLE


def write_frame(path: Path, height: int, width: int, seed: int = 0) -> None:
    """A small random JPG frame."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(path, quality=90)


def make_video(root: Path, name: str, masks: list[np.ndarray], layout: str = "davis",
               stems: list[str] | None = None) -> None:
    """Write one video (frames + masks) in the given layout ("davis", "flat", "frames-only")."""
    stems = stems or [f"{i:05d}" for i in range(len(masks))]
    for i, (stem, mask) in enumerate(zip(stems, masks)):
        height, width = mask.shape
        if layout == "flat":
            frame_path, mask_path = root / name / f"{stem}.jpg", root / name / f"{stem}.png"
        else:
            frame_path = root / "JPEGImages" / name / f"{stem}.jpg"
            mask_path = root / "Annotations" / name / f"{stem}.png"
        write_frame(frame_path, height, width, seed=i)
        if layout != "frames-only":
            write_mask(mask_path, mask)


def person_masks(frames: int, height: int = 24, width: int = 32, ids: tuple[int, ...] = (1, 2)) -> list[np.ndarray]:
    """Masks with each id a moving rectangle."""
    masks = []
    for t in range(frames):
        mask = np.zeros((height, width), np.uint8)
        for k, person in enumerate(ids):
            top = 2 + 6 * k
            left = (2 + t + 8 * k) % (width - 6)
            mask[top:top + 5, left:left + 5] = person
        masks.append(mask)
    return masks


@pytest.fixture
def unwritable_dir(tmp_path: Path) -> Path:
    """A folder nothing can be written into: read-only for a normal user; as root (who writes
    through permission bits, as CI does) a sysfs folder, which refuses root too."""
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o500)
        yield folder
        folder.chmod(0o700)
        return
    for candidate in (Path("/sys/kernel"), Path("/sys"), Path("/proc")):
        try:
            fd = os.open(candidate / ".vcseg-probe", os.O_CREAT | os.O_WRONLY, 0o600)
        except OSError:
            yield candidate
            return
        os.close(fd)
        os.unlink(candidate / ".vcseg-probe")
    pytest.skip("no folder here refuses writes to root")
