"""`make demo` / `vcseg demo`: the main job end to end on data vcseg makes itself.

synth -> ingest -> baseline -> predict (default weights, from first masks) -> score -> find the
people in a frames-only test set and score that against its held-back truth, beside the per-frame
baseline -> pack -> report, each step through the library functions the CLI calls.

The demo only ever replaces what an earlier demo wrote: demo.json records the files it wrote at
the top of OUT and in each prediction folder, and a rerun removes exactly those (the synthesized
data follow synth's own rule, through synth_meta.json). A file of the user's elsewhere in OUT
stays; one in a prediction folder, where it would mix with the predictions, stops the demo before
any work, with one line naming it.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

from rich.console import Console

from vcseg.data.ingest import ingest, render_ingest
from vcseg.data.staging import checked_relative, remove_written
from vcseg.data.synth import SynthConfig, synthesize
from vcseg.errors import VcsegError
from vcseg.io.atomic import write_json_atomic
from vcseg.infer.baselines import copy_first_mask_forward, write_proposals_per_frame
from vcseg.infer.discovery import DiscoveryOptions, network_proposer
from vcseg.io.layouts import find_dataset
from vcseg.metrics.compare import paired_difference
from vcseg.metrics.evaluate import score_dataset
from vcseg.metrics.report import render_table, write_json
from vcseg.infer.dataset import predict_dataset
from vcseg.infer.models import DEFAULT_WEIGHTS
from vcseg.infer.options import PredictOptions
from vcseg.io.outputs import check_writable_dir, remove_orphan_temporaries
from vcseg.pack import write_submission
from vcseg.model.checkpoint import load_checkpoint, load_proposal_network
from vcseg.viz.report import write_report


RECORD = "demo.json"
TOP_FILES = (RECORD, "submission.zip", "score.json", "report.html")  # recorded under the key "."
PREDICTION_FOLDERS = ("pred-baseline", "pred-semi", "pred-test", "pred-test-per-frame")


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
    """Run every stage into `out` (replacing what a previous demo wrote there) and return the figures.

    With `weights` (default: weights/default.pt when it exists) the memory network predicts the
    validation videos from their first masks and is scored against the copy-forward baseline; if
    the weights hold a proposal network, a frames-only test set is predicted with no mask at all
    and that is what gets packed. Without weights, the baseline's predictions are packed.
    """
    out = Path(out)
    record = _check_out(out)
    remove_orphan_temporaries(out)
    weights = Path(weights) if weights is not None and Path(weights).is_file() else None
    data, test, truth = out / "data", out / "test", out / "test-truth"
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
    baseline = _fresh(out, "pred-baseline", record)
    copy_first_mask_forward(ingested.dataset, baseline)
    _record_folder(out, "pred-baseline", record)
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
        semi = _fresh(out, "pred-semi", record)
        options = PredictOptions(size=config.predict_size)
        predict_dataset(data, semi, [weights], data, options)
        _record_folder(out, "pred-semi", record)
        semi_report = score_dataset(semi, data, protocol="tianchi", workers=workers)
        render_table(semi_report, console)
        write_json(semi_report, out / "score.json")
        _record_file("score.json", record)
        figures["memory_network"] = _summary(semi_report)
        done("predict")
        packed = semi
        has_proposals = "proposals" in load_checkpoint(weights)["models"]

    if has_proposals:
        step("discover", f"5. the competition's task: vcseg predict --video-dir {test} (frames only, no mask at "
                         "all: finding the people, at most 8)")
        # The organisers keep the test set's ground truth: the same videos with masks, scored against
        # at the end and never shown to predict. Its videos are named apart from the training ones.
        test_config = SynthConfig(videos=config.test_videos, frames=config.frames, height=config.height,
                                  width=config.width, people_min=2, people_max=10, seed=config.seed + 1,
                                  name_prefix="test")
        synthesize(truth, test_config, overwrite=True)
        synthesize(test, replace(test_config, frames_only=True), overwrite=True)
        packed = _fresh(out, "pred-test", record)
        predict_dataset(test, packed, [weights], None, PredictOptions(size=config.predict_size))
        _record_folder(out, "pred-test", record)
        per_frame = _fresh(out, "pred-test-per-frame", record)
        proposals, _ = load_proposal_network(weights)
        proposal_size = DiscoveryOptions().proposal_size
        write_proposals_per_frame(find_dataset(test), lambda video: network_proposer(proposals, proposal_size, None),
                                  per_frame)
        _record_folder(out, "pred-test-per-frame", record)
        no_mask_report = score_dataset(packed, truth, protocol="tianchi", workers=workers)
        per_frame_report = score_dataset(per_frame, truth, protocol="tianchi", workers=workers)
        render_table(no_mask_report, console)
        figures["no_mask"] = _summary(no_mask_report)
        figures["no_mask_per_frame"] = _summary(per_frame_report)
        console.print(f"no mask, tracked (tianchi protocol): J&F {figures['no_mask']['JF_mean']:.4f}; "
                      f"baseline, proposals on every frame with no memory: "
                      f"{figures['no_mask_per_frame']['JF_mean']:.4f}; "
                      f"difference {paired_difference(no_mask_report, per_frame_report)}", soft_wrap=True)
        done("discover")
        frames_root = test
    else:
        frames_root = data

    zip_path = out / "submission.zip"
    step("pack", f"6. vcseg pack {packed} --frames {frames_root} --out {zip_path}")
    summary = write_submission(packed, frames_root, zip_path)
    _record_file(zip_path.name, record)
    console.print(f"wrote {summary.path}: {summary.videos} videos, {summary.frames} frames, "
                  f"{summary.zip_bytes / 1e6:.1f} MB, at most {summary.max_ids} ids per video")
    done("pack")

    report_path = out / "report.html"
    step("report", f"7. vcseg report: scores, plots and the worst frames in {report_path}")
    if has_proposals:  # the competition's task, beside its baseline
        shown = {"pred_root": packed, "gt_root": truth, "frames_root": test, "compare_root": per_frame}
    elif weights is not None:
        shown = {"pred_root": semi, "gt_root": data, "frames_root": data, "compare_root": baseline}
    else:
        shown = {"pred_root": baseline, "gt_root": data, "frames_root": data}
    write_report(out=report_path, workers=workers, **shown)
    _record_file(report_path.name, record)
    done("report")

    figures.update({"seconds": {k: round(v, 2) for k, v in timings.items()}, "zip": str(zip_path),
                    "report": str(report_path),
                    "weights": str(weights) if weights else None})
    _record_file(RECORD, record)
    write_json_atomic(out / RECORD, {**figures, "written": record})
    console.rule("[bold]done")
    titles = {"baseline": "first masks, copied forward (baseline)",
              "memory_network": "first masks, default weights",
              "no_mask_per_frame": "no mask, proposals on every frame (baseline)",
              "no_mask": "no mask, people found and tracked (the competition's task)"}
    for name, title in titles.items():
        if name in figures:
            f = figures[name]
            console.print(f"{title} (tianchi protocol): J&F {f['JF_mean']:.4f} "
                          f"(J {f['J_mean']:.4f}, F {f['F_mean']:.4f})")
    console.print("seconds per step: " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    console.print(f"report: {report_path} (open it in a browser)", soft_wrap=True)
    return figures


def _check_out(out: Path) -> dict[str, list[str]]:
    """Refuse (one line, before any work) an `out` holding files the demo would replace but did
    not write; return the record of what earlier demos wrote there."""
    if out.exists() and not out.is_dir():
        raise VcsegError(f"{out}: exists and is not a folder; choose another --out")
    check_writable_dir(out, "--out")
    if not out.is_dir() or not any(out.iterdir()):
        return {}
    if not (out / RECORD).is_file():
        raise VcsegError(f"{out}: not empty and not a previous demo output; choose another folder")
    try:
        record = json.loads((out / RECORD).read_text()).get("written")
    except (OSError, ValueError, AttributeError):
        record = None
    if not isinstance(record, dict):  # an older demo, which did not record what it wrote
        raise VcsegError(f"{out / RECORD}: does not list the files the demo wrote; remove {out} by hand "
                         "or choose another --out")
    ours = set(record.get(".", []))
    for name in TOP_FILES:
        if (out / name).exists() and name not in ours:
            raise VcsegError(f"{out / name}: not written by the demo, which would replace it; move it away "
                             "or choose another --out")
    for name in PREDICTION_FOLDERS:
        ours = set(record.get(name, []))
        foreign = [rel for rel in _files_under(out / name) if rel not in ours]
        if foreign:
            raise VcsegError(f"{out / name / foreign[0]}: not written by the demo, in a folder of its "
                             "predictions; move it away or choose another --out")
    return record


def _files_under(folder: Path) -> list[str]:
    """Every file below `folder`, relative to it (none when it does not exist)."""
    if not folder.is_dir():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() or p.is_symlink())


def _fresh(out: Path, name: str, record: dict[str, list[str]]) -> Path:
    """`out/name` emptied of what an earlier demo wrote there (and removed when that empties it)."""
    remove_written(out, [checked_relative(f"{name}/{rel}", out / RECORD) for rel in record.pop(name, [])])
    return out / name


def _record_folder(out: Path, name: str, record: dict[str, list[str]]) -> None:
    record[name] = _files_under(out / name)


def _record_file(name: str, record: dict[str, list[str]]) -> None:
    record["."] = sorted(set(record.get(".", [])) | {name})


def _summary(report) -> dict[str, float]:
    scores = report.summary()
    return {key: scores[key] for key in ("JF_mean", "J_mean", "F_mean")}
