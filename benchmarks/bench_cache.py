"""Frame cache speed: a random 3-frame clip (frames + masks) decoded from JPG/PNG vs read from the cache.

On the DAVIS people sequences at short side 480 (854x480 frames: no resize, so the JPG path is
pure decoding), or on synthetic 854x480 videos where those are absent. Prints the cache build
time, then frames per second of each path (3 / median clip time over the same random clips,
in this one process) and their ratio.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from vcseg.data.cache import FrameCache, build_cache, load_clip
from vcseg.io.layouts import DatasetFiles, find_dataset
from vcseg.io.masks import write_mask

DAVIS = Path("/work/shared/data/davis2016-people")
SHORT_SIDE, CLIP, CLIPS = 480, 3, 60


def _synthetic(root: Path) -> DatasetFiles:
    rng = np.random.default_rng(0)
    for v in range(3):
        for t in range(40):
            frame = rng.integers(0, 256, (480, 854, 3), dtype=np.uint8)
            path = root / "JPEGImages" / f"video_{v}" / f"{t:05d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(frame).save(path, quality=90)
            ids = np.zeros((480, 854), dtype=np.uint8)
            ids[100:400, 200 + 3 * t:400 + 3 * t] = 1
            write_mask(root / "Annotations" / f"video_{v}" / f"{t:05d}.png", ids)
    return find_dataset(root)


def _clip_times(dataset: DatasetFiles, clips: list[tuple[int, list[str]]],
                cache: FrameCache | None) -> list[float]:
    times = []
    for video_index, stems in clips:
        start = time.perf_counter()
        clip = load_clip(dataset.videos[video_index], stems, SHORT_SIDE, cache)  # copies: all pixels read
        times.append(time.perf_counter() - start)
        assert clip.from_cache == (cache is not None)
    return times


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        if (DAVIS / "JPEGImages").is_dir():
            dataset, label = find_dataset(DAVIS), "DAVIS people sequences"
        else:
            dataset, label = _synthetic(Path(tmp) / "data"), "synthetic 854x480 videos"
        frames = sum(len(v.frames) for v in dataset.videos)
        start = time.perf_counter()
        build_cache(dataset, Path(tmp) / "cache", SHORT_SIDE, progress=False)
        build_s = time.perf_counter() - start
        print(f"{label}: {len(dataset.videos)} videos, {frames} frames, short side {SHORT_SIDE}")
        print(f"cache build: {build_s:.1f} s ({frames / build_s:.0f} frames/s)")

        rng = np.random.default_rng(0)
        clips = []
        for _ in range(CLIPS):
            video_index = int(rng.integers(len(dataset.videos)))
            stems = dataset.videos[video_index].stems
            first = int(rng.integers(len(stems) - CLIP + 1))
            clips.append((video_index, stems[first:first + CLIP]))
        cache = FrameCache(Path(tmp) / "cache", SHORT_SIDE)
        _clip_times(dataset, clips[:5], cache)  # open the memory maps once, as training would
        jpg = statistics.median(_clip_times(dataset, clips, None))
        cached = statistics.median(_clip_times(dataset, clips, cache))
        print(f"random {CLIP}-frame clip, frames + masks, median of {CLIPS}:")
        print(f"  from JPG/PNG : {CLIP / jpg:8.1f} frames/s ({jpg * 1e3:.1f} ms per clip)")
        print(f"  from cache   : {CLIP / cached:8.1f} frames/s ({cached * 1e3:.2f} ms per clip)")
        print(f"  cache / JPG  : {jpg / cached:8.1f}x")


if __name__ == "__main__":
    main()
