"""Packing throughput: validate + zip a synthetic test set at DAVIS size, then --check the zip.

A 48-video test set of ~100 frames each is ~4,800 PNGs; the figures here say how long that takes
(frames per second of `write_submission` and of `summarize_zip`, medians of 3 runs in one process).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.timing import median_seconds
from vcseg.io.masks import write_mask
from vcseg.pack import summarize_zip, write_submission

VIDEOS, FRAMES, HEIGHT, WIDTH = 4, 30, 480, 854


def _build(root: Path) -> tuple[Path, Path]:
    frames_root, preds = root / "test", root / "preds"
    rng = np.random.default_rng(0)
    frame = Image.fromarray(rng.integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8))
    for v in range(VIDEOS):
        video = f"video_{v:02d}"
        (frames_root / video).mkdir(parents=True)
        for f in range(FRAMES):
            stem = f"{f:05d}"
            frame.save(frames_root / video / f"{stem}.jpg", quality=85)
            ids = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)  # three moving people
            for person in range(3):
                left = 100 + 200 * person + 2 * f
                ids[80:440, left:left + 120] = person + 1
            write_mask(preds / video / f"{stem}.png", ids)
    return preds, frames_root


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        preds, frames_root = _build(Path(tmp))
        out = Path(tmp) / "submission.zip"
        total = VIDEOS * FRAMES
        pack_s = median_seconds(lambda: write_submission(preds, frames_root, out), 3, warmup=False)
        check_s = median_seconds(lambda: summarize_zip(out, frames_root), 3, warmup=False)
        print(f"{VIDEOS} videos x {FRAMES} frames at {WIDTH}x{HEIGHT}: zip {out.stat().st_size / 1e3:.0f} kB")
        print(f"pack (validate + write): {pack_s:.2f} s median, {total / pack_s:.0f} frames/s")
        print(f"check (zip in memory):   {check_s:.2f} s median, {total / check_s:.0f} frames/s")
        print(f"48 videos x 100 frames would take about {4800 / (total / pack_s):.0f} s to pack")


if __name__ == "__main__":
    main()
