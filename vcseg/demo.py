"""`make demo` / `vcseg demo`: the main job end to end on data vcseg makes itself.

synth -> ingest -> predict (copy-forward baseline until the trained model lands) -> score -> pack,
each step through the same library functions the CLI commands call.
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
from vcseg.pack import write_submission


@dataclass(frozen=True)
class DemoConfig:
    """The demo's data: small enough for a CPU minute, large enough to mean something."""

    videos: int = 8
    frames: int = 40
    height: int = 480
    width: int = 854
    people_min: int = 1
    people_max: int = 4
    seed: int = 0


def run_demo(out: str | os.PathLike[str], console: Console, config: DemoConfig = DemoConfig(),
             workers: int | None = None) -> dict:
    """Run every stage into `out` (replacing a previous demo there) and return the figures."""
    out = Path(out)
    if out.exists() and not (out / "demo.json").exists() and any(out.iterdir()):
        raise VcsegError(f"{out}: not empty and not a previous demo output; choose another folder")
    data, pred, zip_path = out / "data", out / "pred", out / "submission.zip"
    timings: dict[str, float] = {}

    def step(name: str, title: str):
        console.rule(f"[bold]{title}")
        timings[name] = time.perf_counter()

    def done(name: str) -> None:
        timings[name] = time.perf_counter() - timings[name]

    step("synth", f"1. vcseg synth {data}")
    synth = SynthConfig(videos=config.videos, frames=config.frames, height=config.height,
                        width=config.width, people_min=config.people_min,
                        people_max=config.people_max, seed=config.seed)
    synthesize(data, synth, overwrite=True)
    done("synth")
    console.print(f"{config.videos} videos x {config.frames} frames at {config.width}x{config.height}")

    step("ingest", f"2. vcseg ingest {data}")
    ingested = ingest(data, workers=workers)
    render_ingest(ingested, console)
    if ingested.errors:
        raise VcsegError(f"{data}: the synthesized data failed validation ({len(ingested.errors)} errors)")
    done("ingest")

    step("predict", "3. predict: copy-forward baseline (first frame's mask on every frame)")
    if pred.exists():
        shutil.rmtree(pred)
    copy_first_mask_forward(ingested.dataset, pred)
    done("predict")

    step("score", f"4. vcseg score --pred {pred} --gt {data}")
    report = score_dataset(pred, data, protocol="tianchi", workers=workers)
    render_table(report, console)
    write_json(report, out / "score.json")
    done("score")

    step("pack", f"5. vcseg pack {pred} --frames {data} --out {zip_path}")
    summary = write_submission(pred, data, zip_path)
    console.print(f"wrote {summary.path}: {summary.videos} videos, {summary.frames} frames, "
                  f"{summary.zip_bytes / 1e6:.1f} MB, at most {summary.max_ids} ids per video")
    done("pack")

    scores = report.summary()
    figures = {"JF_mean": scores["JF_mean"], "J_mean": scores["J_mean"], "F_mean": scores["F_mean"],
               "seconds": {k: round(v, 2) for k, v in timings.items()}, "zip": str(zip_path)}
    write_json_atomic(out / "demo.json", figures)
    console.rule("[bold]done")
    console.print(f"copy-forward baseline, tianchi protocol: J&F {scores['JF_mean']:.4f} "
                  f"(J {scores['J_mean']:.4f}, F {scores['F_mean']:.4f})")
    console.print("seconds per step: " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    return figures
