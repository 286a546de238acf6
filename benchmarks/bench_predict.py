"""`vcseg predict` figures: frames per second at 854x480, and the memory bank's bound on long videos.

- Frames per second of the propagation (one object pair, --size 480, defaults mem_every 5 /
  mem_size 8, fp32 on the CPU, auto precision (bf16) on a GPU) over 10 frames of 854x480 after a
  2-frame warm-up, for a small model (resnet18, the demo config's widths) and the ResNet-50 default,
  random weights.
- Peak memory-bank bytes of a 100-frame and a 1,000-frame video (tiny 64x64 frames at --size 32 so
  that the long video runs fast): the ratio is ~1 when memory does not grow with video length.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from vcseg.config import ModelConfig
from vcseg.infer.options import PredictOptions
from vcseg.infer.propagate import VideoStats, predict_video
from vcseg.model.network import MemoryNetwork

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


def main() -> None:
    bench_fps("cpu")
    if torch.cuda.is_available():
        bench_fps("cuda")
    print("memory bank peak bytes (64x64 frames, --size 32, mem_every 5, mem_size 8)")
    bench_memory_bound()


if __name__ == "__main__":
    main()
