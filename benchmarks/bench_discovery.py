"""Finding the people with no mask: weights/default.pt's tracking against two baselines, on
held-out procedural videos with 0 to 12 people and on copy-paste compositions of the shared DAVIS
sequences. Tianchi-protocol J&F, persons found / present, frames per second.

Baselines: proposals on every frame with ids carried by greedy IoU (no memory), and propagation
from the first frame's proposals only (no later discovery); all three run the proposal network at
the same input size (`DiscoveryOptions.proposal_size`). Under each set, tracking minus each
baseline with a 95% paired bootstrap interval over videos (`vcseg.metrics.compare`): a
difference whose interval holds 0 is one these videos cannot rank."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from vcseg.data.compose import ComposeConfig, compose_dataset
from vcseg.data.synth import SynthConfig, synthesize
from vcseg.infer.baselines import write_proposals_per_frame
from vcseg.infer.dataset import predict_dataset
from vcseg.infer.discovery import DiscoveryOptions, network_proposer
from vcseg.infer.options import PredictOptions
from vcseg.io.layouts import find_dataset, find_mask_videos
from vcseg.io.masks import read_mask
from vcseg.metrics.compare import paired_difference
from vcseg.metrics.evaluate import score_dataset
from vcseg.metrics.report import ScoreReport
from vcseg.model.checkpoint import load_checkpoint, load_proposal_network

WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "default.pt"
DAVIS = Path(__file__).resolve().parents[2] / "shared" / "data" / "davis2016-people"
SIZE = 320  # the memory network's input: on real footage the default weights do better at 320 than at 240
# 12 videos (each of the 6 sequences is the base twice): 3 were too few to rank methods
DAVIS_COMPOSITIONS = ComposeConfig(videos=12, people=(2, 3), seed=0)


def _persons(root: Path) -> int:
    return sum(len({i for path in masks.values() for i in set(read_mask(path).ravel().tolist())} - {0})
               for masks in find_mask_videos(root).values())


def _report(name: str, pred: Path, gt: Path, seconds: float, frames: int) -> ScoreReport:
    report = score_dataset(pred, gt, workers=1)
    scores = report.summary()
    print(f"    {name:<34} J&F {scores['JF_mean']:.4f}  persons {_persons(pred):>3} / {_persons(gt):<3} "
          f"{frames / seconds:6.2f} frames/s")
    return report


def _evaluate(title: str, data: Path, tmp: Path) -> None:
    print(f"  {title}")
    frames = sum(len(v.frames) for v in find_dataset(data).videos)
    options = PredictOptions(size=SIZE)
    defaults = DiscoveryOptions()
    reports = []
    for name, discovery in ((f"tracking (key frames every {defaults.key_every})", defaults),
                            ("first-frame proposals only", DiscoveryOptions(key_every=10 ** 6))):
        out = tmp / name.split()[0]
        started = time.perf_counter()
        predict_dataset(data, out, [WEIGHTS], None, options, discovery=discovery)
        reports.append(_report(name, out, data, time.perf_counter() - started, frames))
    model, _ = load_proposal_network(WEIGHTS)
    out = tmp / "per-frame"
    started = time.perf_counter()
    write_proposals_per_frame(find_dataset(data), lambda video: network_proposer(model, defaults.proposal_size or SIZE), out)
    reports.append(_report("proposals per frame, greedy IoU ids", out, data, time.perf_counter() - started, frames))
    tracking, first_only, per_frame = reports
    print(f"    tracking - per-frame proposals:    {paired_difference(tracking, per_frame)}")
    print(f"    tracking - first-frame proposals:  {paired_difference(tracking, first_only)}")


def main() -> None:
    if not WEIGHTS.is_file() or "proposals" not in load_checkpoint(WEIGHTS)["models"]:
        print(f"{WEIGHTS} with a proposal network not found: run `make weights` first")
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        synth = tmp / "synth"
        synthesize(synth, SynthConfig(videos=6, frames=30, height=240, width=427, people_min=0, people_max=12,
                                      seed=7, preset="crowd"))
        _evaluate("held-out procedural videos, 0-12 people (crowd preset), 240x427", synth, tmp / "s")
        if DAVIS.is_dir():
            composed = tmp / "davis"
            compose_dataset([DAVIS], composed, DAVIS_COMPOSITIONS, progress=False)
            _evaluate("DAVIS people sequences composed 2-3 per video (12 videos), 854x480", composed, tmp / "d")
