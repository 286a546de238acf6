"""Synthetic data speed: frames per second of `synthesize` (written to disk) and of in-memory rendering.

Median over a few runs of a small 480x854 set; the demo set (20 videos x 60 frames) takes about
1200 / fps seconds on one core.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from vcseg.data.synth import SynthConfig, render_video, synthesize

RUNS = 3
CONFIG = SynthConfig(videos=3, frames=20, height=480, width=854, seed=0)
DEMO_FRAMES = 20 * 60


def _written_fps() -> float:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        synthesize(Path(tmp) / "out", CONFIG)
        return CONFIG.videos * CONFIG.frames / (time.perf_counter() - start)


def _rendered_fps() -> float:
    start = time.perf_counter()
    for index in range(CONFIG.videos):
        render_video(CONFIG, index)
    return CONFIG.videos * CONFIG.frames / (time.perf_counter() - start)


def main() -> None:
    written = statistics.median(_written_fps() for _ in range(RUNS))
    rendered = statistics.median(_rendered_fps() for _ in range(RUNS))
    print(f"synth {CONFIG.height}x{CONFIG.width}, {CONFIG.videos} videos x {CONFIG.frames} frames, "
          f"median of {RUNS} runs")
    print(f"  written (JPEG + PNG + meta): {written:6.1f} frames/s  "
          f"-> demo set ({DEMO_FRAMES} frames) ~{DEMO_FRAMES / written:.0f} s")
    print(f"  rendered in memory:         {rendered:6.1f} frames/s")


if __name__ == "__main__":
    main()
