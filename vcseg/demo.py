"""`make demo` / `vcseg demo`: the main job end to end on data vcseg makes itself.

synth -> ingest -> baseline -> predict (default weights, from first masks) -> score -> find the
people in a frames-only test set -> pack, each step through the library functions the CLI calls.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from vcseg.data.ingest import ingest, render_ingest
from vcseg.data.synth import SynthConfig, synthesize
from vcseg.errors import VcsegError
from vcseg.io.atomic import write_json_atomic
from vcseg.infer.baselines import copy_first_mask_forward
from vcseg.metrics.evaluate import score_dataset
from vcseg.metrics.report import render_table, write_json
from vcseg.infer.dataset import predict_dataset
from vcseg.infer.options import PredictOptions
from vcseg.pack import write_submission
from vcseg.train.checkpoint import load_checkpoint


DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "default.pt"


@dataclass(frozen=True)
class DemoConfig:
    """The demo's data: small enough for a few CPU minutes, large enough to mean something."""

    videos: int = 6
    frames: int = 30
    height: int = 480
    width: int = 854
    people_min: int = 1
    people_max: int = 4
    seed: int = 0
    test_videos: int = 3
    predict_size: int = 240  # the default weights' training resolution


def run_demo(out: str | os.PathLike[str], console: Console, config: DemoConfig = DemoConfig(),
             workers: int | None = None, weights: str | os.PathLike[str] | None = DEFAULT_WEIGHTS) -> dict:
    """Run every stage into `out` (replacing a previous demo there) and return the figures.

    With `weights` (default: weights/default.pt when it exists) the memory network predicts the
    validation videos from their first masks and is scored against the copy-forward baseline; if
    the weights hold a proposal network, a frames-only test set is predicted with no mask at all
    and that is what gets packed. Without weights, the baseline's predictions are packed.
    """
    out = Path(out)
    if out.exists() and not (out / "demo.json").exists() and any(out.iterdir()):
        raise VcsegError(f"{out}: not empty and not a previous demo output; choose another folder")
    weights = Path(weights) if weights is not None and Path(weights).is_file() else None
    data, test = out / "data", out / "test"
    timings: dict[str, float] = {}
    figures: dict = {}

    def step(name: str, title: str) -> None:
        console.rule(f"[bold]{title}")
        timings[name] = time.perf_counter()

    def done(name: str) -> None:
        timings[name] = time.perf_counter() - timings[name]

    step("synth", f"1. vcseg synth {data}")
    synthesize(data, SynthConfig(videos=config.videos, frames=config.frames, height=config.height,
                                 width=config.width, people_min=config.people_min,
                                 people_max=config.people_max, seed=config.seed), overwrite=True)
    done("synth")
    console.print(f"{config.videos} videos x {config.frames} frames at {config.width}x{config.height}")

    step("ingest", f"2. vcseg ingest {data}")
    ingested = ingest(data, workers=workers)
    render_ingest(ingested, console)
    if ingested.errors:
        raise VcsegError(f"{data}: the synthesized data failed validation ({len(ingested.errors)} errors)")
    done("ingest")

    step("baseline", "3. baseline: the first frame's mask copied to every frame")
    baseline = _fresh(out / "pred-baseline")
    copy_first_mask_forward(ingested.dataset, baseline)
    baseline_report = score_dataset(baseline, data, protocol="tianchi", workers=workers)
    render_table(baseline_report, console)
    figures["baseline"] = _summary(baseline_report)
    done("baseline")
    packed = baseline

    has_proposals = False
    if weights is None:
        console.print("[yellow]no weights/default.pt: skipping the model steps (make weights trains it)[/yellow]")
    else:
        step("predict", f"4. vcseg predict --video-dir {data} --first-masks {data} --size {config.predict_size}")
        semi = _fresh(out / "pred-semi")
        options = PredictOptions(size=config.predict_size)
        predict_dataset(data, semi, [weights], data, options)
        semi_report = score_dataset(semi, data, protocol="tianchi", workers=workers)
        render_table(semi_report, console)
        write_json(semi_report, out / "score.json")
        figures["memory_network"] = _summary(semi_report)
        done("predict")
        packed = semi
        has_proposals = "proposals" in load_checkpoint(weights)["models"]

    if has_proposals:
        step("discover", f"5. vcseg predict --video-dir {test} (frames only: finding the people, at most 8)")
        synthesize(test, SynthConfig(videos=config.test_videos, frames=config.frames, height=config.height,
                                     width=config.width, people_min=2, people_max=10, seed=config.seed + 1,
                                     frames_only=True), overwrite=True)
        packed = _fresh(out / "pred-test")
        predict_dataset(test, packed, [weights], None, PredictOptions(size=config.predict_size))
        done("discover")
        frames_root = test
    else:
        frames_root = data

    zip_path = out / "submission.zip"
    step("pack", f"6. vcseg pack {packed} --frames {frames_root} --out {zip_path}")
    summary = write_submission(packed, frames_root, zip_path)
    console.print(f"wrote {summary.path}: {summary.videos} videos, {summary.frames} frames, "
                  f"{summary.zip_bytes / 1e6:.1f} MB, at most {summary.max_ids} ids per video")
    done("pack")

    figures.update({"seconds": {k: round(v, 2) for k, v in timings.items()}, "zip": str(zip_path),
                    "weights": str(weights) if weights else None})
    write_json_atomic(out / "demo.json", figures)
    console.rule("[bold]done")
    for name in ("baseline", "memory_network"):
        if name in figures:
            f = figures[name]
            console.print(f"{name.replace('_', ' ')} (tianchi protocol): J&F {f['JF_mean']:.4f} "
                          f"(J {f['J_mean']:.4f}, F {f['F_mean']:.4f})")
    console.print("seconds per step: " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    return figures


def _fresh(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    return path


def _summary(report) -> dict[str, float]:
    scores = report.summary()
    return {key: scores[key] for key in ("JF_mean", "J_mean", "F_mean")}
