"""Training clip speed: items per second of the video and static clip datasets at crop 384.

On the DAVIS people sequences at short side 480 (skipped when absent), in this one process (no
DataLoader workers; a loader with N workers gives up to N times this on N free cores). Each line
is 1 / median item time over the same keys, decoding the JPG/PNG files vs reading the frame cache,
with the default augmentation (VIDEO_AUGMENT / STATIC_AUGMENT); plus the video dataset with a
copy-paste in every item.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from vcseg.data.cache import FrameCache, build_cache
from vcseg.data.clips import ClipKey, VideoClipDataset
from vcseg.data.static import StaticClipDataset
from vcseg.io.layouts import find_dataset

DAVIS = Path("/work/shared/data/davis2016-people")
SHORT_SIDE, CROP, ITEMS = 480, 384, 40


def _rate(dataset, keys: list[ClipKey]) -> tuple[float, float]:
    """(items per second from the median item time, the median in ms) over `keys`, after a warm-up."""
    for key in keys[:3]:
        dataset[key]
    times = []
    for key in keys:
        start = time.perf_counter()
        dataset[key]
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return 1.0 / median, median * 1e3


def main() -> None:
    if not (DAVIS / "JPEGImages").is_dir():
        print(f"{DAVIS}: not found; clip benchmark skipped")
        return
    files = find_dataset(DAVIS)
    with tempfile.TemporaryDirectory() as tmp:
        build_cache(files, Path(tmp) / "cache", SHORT_SIDE, progress=False)
        cache = FrameCache(Path(tmp) / "cache", SHORT_SIDE)
        print(f"DAVIS people: {len(files.videos)} videos, short side {SHORT_SIDE}, crop {CROP}, "
              f"3-frame clips, median of {ITEMS} items, one process")
        cases = [
            ("video, files", VideoClipDataset(files, short_side=SHORT_SIDE, crop=CROP)),
            ("video, cache", VideoClipDataset(files, short_side=SHORT_SIDE, crop=CROP, cache=cache)),
            ("video + paste, cache", VideoClipDataset(files, short_side=SHORT_SIDE, crop=CROP, cache=cache,
                                                      paste_probability=1.0)),
            ("static, files", StaticClipDataset(files, short_side=SHORT_SIDE, crop=CROP)),
            ("static, cache", StaticClipDataset(files, short_side=SHORT_SIDE, crop=CROP, cache=cache)),
        ]
        for label, dataset in cases:
            keys = [ClipKey(i // len(dataset), i % len(dataset), 15) for i in range(ITEMS)]
            rate, ms = _rate(dataset, keys)
            print(f"  {label:22s}: {rate:6.1f} items/s ({ms:.1f} ms per item)")


if __name__ == "__main__":
    main()
