"""`vcseg predict` figures: frames per second at 854x480, the memory bank's bound on long videos, and
the old engine against the new one with the default weights on real footage.

- STM's memory writes (every frame's value written to the memory, read by the next frame; the
  default) against STCN's (`--memory-frames-only`: values written only for frames that join the
  memory; the previous frame reaches the decoder through its mask): frames/s and J&F, first masks given (semi) and none (the people found by the
  proposal network), on the six shared DAVIS people sequences (854x480, one person each; semi on
  all frames, no mask on the first 30 of each) and on two 4-person compositions of them; plus the
  time from starting `vcseg predict` to its first predicted frame.

- Frames per second of the propagation (one object pair, --size 480, defaults mem_every 5 /
  mem_size 8, fp32 on the CPU, auto precision (bf16) on a GPU) over 10 frames of 854x480 after a
  2-frame warm-up, for a small model (resnet18, the demo config's widths) and the ResNet-50 default,
  random weights.
- Peak memory-bank bytes of a 100-frame and a 1,000-frame video (tiny 64x64 frames at --size 32 so
  that the long video runs fast): the ratio is ~1 when memory does not grow with video length.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vcseg.config import ModelConfig
from vcseg.data.compose import ComposeConfig, compose_dataset
from vcseg.infer.dataset import predict_dataset
from vcseg.infer.models import DEFAULT_WEIGHTS
from vcseg.infer.options import PredictOptions
from vcseg.infer.propagate import VideoStats, predict_video
from vcseg.io.layouts import find_dataset
from vcseg.metrics.compare import paired_difference
from vcseg.metrics.evaluate import score_dataset
from vcseg.model.network import MemoryNetwork

DAVIS = Path(__file__).resolve().parents[2] / "shared" / "data" / "davis2016-people"
ENGINES = {"STM, every frame's value in memory (default)": True, "STCN, --memory-frames-only": False}
NO_MASK_FRAMES = 30  # per DAVIS sequence, for the no-mask rows (proposals make them the slow ones)

MODELS = {
    "resnet18": ModelConfig(encoder="resnet18", value_encoder="resnet18", key_dim=32, value_dim=128,
                            decoder_dim=64, aspp_rates=(2, 4, 6)),
    "resnet50": ModelConfig(),  # the default: resnet50 query encoder, value_dim 512
}
FRAMES, WARMUP = 10, 2


def _video(frames: int, height: int, width: int) -> tuple[list[np.ndarray], dict[int, np.ndarray]]:
    rng = np.random.default_rng(0)
    video = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(frames)]
    mask = np.zeros((height, width), np.uint8)
    mask[height // 8:height // 2, width // 10:width // 3] = 1
    mask[height // 2:height * 7 // 8, width // 2:width * 4 // 5] = 2
    return video, {0: mask}


def bench_fps(device: str) -> None:
    print(f"frames/s at 854x480 (--size 480), 2 objects, {FRAMES} frames, device {device}")
    frames, given = _video(WARMUP + FRAMES, 480, 854)
    for name, config in MODELS.items():
        torch.manual_seed(0)
        model = MemoryNetwork(config)
        options = PredictOptions(size=480, device=device)
        predict_video([model.to(device)], frames[:WARMUP], given, options)  # warm-up (allocations, kernels)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        predict_video([model], frames[WARMUP:], given, options)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        print(f"  {name:9s} {FRAMES / seconds:7.2f} frames/s ({seconds / FRAMES * 1000:.0f} ms/frame)")


def bench_memory_bound() -> None:
    torch.manual_seed(0)
    model = MemoryNetwork(MODELS["resnet18"])
    options = PredictOptions(size=32, mem_every=5, mem_size=8, device="cpu")
    peaks = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: extra threads only spin (up to 100x slower on a busy CPU)
    try:
        for length in (100, 1000):
            frames, given = _video(length, 64, 64)
            stats = VideoStats()
            start = time.perf_counter()
            predict_video([model], frames, given, options, stats=stats)
            peaks[length] = stats.memory_bank_peak_bytes
            print(f"  {length:5d} frames: peak memory bank {peaks[length] / 1024:.1f} KiB "
                  f"({length / (time.perf_counter() - start):.0f} frames/s)")
    finally:
        torch.set_num_threads(threads)
    print(f"  ratio 1000 / 100 frames: {peaks[1000] / peaks[100]:.3f} (1.0 = memory does not grow)")


def _first_frames(source: Path, out: Path, count: int) -> Path:
    """The first `count` frames (and masks) of every video of `source`, linked into `out`."""
    for video in find_dataset(source).videos:
        for folder, files in (("JPEGImages", video.frames), ("Annotations", video.masks)):
            for stem in list(video.frames)[:count]:
                if stem in files:
                    target = out / folder / video.name / files[stem].name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.symlink_to(files[stem].resolve())
    return out


def _engine_rows(title: str, data: Path, first_masks: Path | None, tmp: Path) -> None:
    print(f"  {title}")
    reports, speeds = [], []
    for name, previous in ENGINES.items():
        out = tmp / f"{title.split()[0]}-{previous}-{first_masks is not None}"
        started = time.perf_counter()
        options = PredictOptions(previous_in_memory=previous)
        summary = predict_dataset(data, out, [DEFAULT_WEIGHTS], first_masks, options)
        speeds.append(summary.frames / (time.perf_counter() - started))
        reports.append(score_dataset(out, data, workers=1))
        print(f"    {name:38s} {speeds[-1]:5.2f} frames/s, J&F {reports[-1].summary()['JF_mean']:.4f}", flush=True)
    print(f"    STCN / STM frames/s: {speeds[1] / speeds[0]:.2f}x; J&F STCN minus STM "
          f"{paired_difference(reports[1], reports[0])}", flush=True)


def _startup() -> None:
    """Seconds from starting `vcseg predict` (a fresh process) to its first frame's mask on disk."""
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "data" / "v"
        video.mkdir(parents=True)
        from PIL import Image

        Image.fromarray(np.zeros((480, 854, 3), np.uint8)).save(video / "00000.jpg")
        Image.fromarray(np.pad(np.ones((100, 100), np.uint8), 100)).save(video / "00000.png")
        times = []
        for _ in range(3):  # the first run warms the disk cache; the median is a warm start
            out = Path(tmp) / f"pred{len(times)}"
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "vcseg.cli", "predict", "--video-dir", str(video.parent),
                            "--first-masks", str(video.parent), "--out", str(out)], check=True, capture_output=True,
                           env={**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"})
            times.append(time.perf_counter() - started)
    print(f"  vcseg predict, a fresh process to one 854x480 frame's mask: median {sorted(times)[1]:.2f} s "
          f"({', '.join(f'{t:.2f}' for t in times)})")


def bench_engines() -> None:
    if not DEFAULT_WEIGHTS.is_file():
        print(f"  {DEFAULT_WEIGHTS} not found: run `make weights` first")
        return
    print("STM's and STCN's memory writes, default weights, --size 480, fp32 on the CPU")
    _startup()
    if not DAVIS.is_dir():
        print(f"  {DAVIS} not found: the real-footage rows need the shared DAVIS people sequences")
        return
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        _engine_rows("DAVIS people, first masks (6 sequences, 854x480, 1 person)", DAVIS, DAVIS, tmp)
        short = _first_frames(DAVIS, tmp / "davis-short", NO_MASK_FRAMES)
        _engine_rows(f"DAVIS people, no mask (first {NO_MASK_FRAMES} frames of each)", short, None, tmp)
        composed = tmp / "composed"
        compose_dataset([DAVIS], composed, ComposeConfig(videos=2, people=(4, 4), seed=0), progress=False)
        _engine_rows("4-person compositions of them, first masks (2 videos)", composed, composed, tmp)
        _engine_rows("4-person compositions of them, no mask", composed, None, tmp)


def main() -> None:
    bench_engines()
    bench_fps("cpu")
    if torch.cuda.is_available():
        bench_fps("cuda")
    print("memory bank peak bytes (64x64 frames, --size 32, mem_every 5, mem_size 8)")
    bench_memory_bound()


if __name__ == "__main__":
    main()
