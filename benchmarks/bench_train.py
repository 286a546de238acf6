"""Training step time on this machine for configs/cpu-small.toml, split into data vs compute.

Synthesizes a few videos, runs a handful of steps in fp32 and under bf16 autocast, and prints
medians over the steps after the first (which pays for start-up). On a GPU machine the same run
uses CUDA (precision auto = bf16). On a CPU without native bf16 (AVX2) the bf16 row shows the cost
of emulation: many times slower than fp32, which is why precision auto stays fp32 there.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

import torch

from vcseg.config import load_config
from vcseg.data.synth import SynthConfig, synthesize
from vcseg.train.loop import train

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "cpu-small.toml"
STEPS = 5


def _run(root: Path, run_dir: Path, precision: str, device: str) -> dict[str, float]:
    config = load_config(CONFIG, [f"data.root={root}", f"train.steps={STEPS}", "train.log_every=1",
                                  f"train.precision={precision}", f"train.device={device}",
                                  "train.checkpoint_every=1000", "data.workers=2"])
    timings: list[tuple[float, float, float]] = []
    summary = train(config, run_dir)
    rows = (run_dir / "log.csv").read_text().splitlines()[1:]
    for row in rows[1:]:  # skip the first step: start-up, worker spawn
        fields = row.split(",")
        timings.append((float(fields[7]), float(fields[8]), float(fields[9])))
    assert summary.steps_done == STEPS
    return {"samples_per_s": statistics.median(t[0] for t in timings),
            "data_s": statistics.median(t[1] for t in timings),
            "compute_s": statistics.median(t[2] for t in timings)}


def main() -> None:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    config = load_config(CONFIG)
    print(f"config {CONFIG.name}: {config.model.encoder}, crop {config.data.crop[0]}x{config.data.crop[1]}, "
          f"batch {config.train.batch_size}, {config.data.clip_frames}-frame clips, device {device}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        synthesize(root, SynthConfig(videos=4, frames=20, height=320, width=568, people_min=1, people_max=3))
        results = {}
        for precision in ("fp32", "bf16"):
            results[precision] = _run(root, Path(tmp) / f"run-{precision}", precision, device)
            r = results[precision]
            print(f"  {precision}: {r['samples_per_s']:.2f} samples/s, step = data {r['data_s'] * 1000:.0f} ms "
                  f"+ compute {r['compute_s'] * 1000:.0f} ms (medians of {STEPS - 1} steps)")
        ratio = results["bf16"]["compute_s"] / results["fp32"]["compute_s"]
        print(f"  bf16 / fp32 compute time: {ratio:.2f}")
