"""Finding the people with no mask: weights/default.pt's tracking against two baselines, beside
the previous default weights (from git history, see `benchmarks.held_out`) in the same run, on
held-out procedural videos with 0 to 12 people and on copy-paste compositions of the held-out DAVIS
sequences only (rollerblade, tennis: no training saw them). Tianchi-protocol J&F, persons found /
present, frames per second, and the proposal network's recall at IoU 0.5 (every 5th frame).

Baselines: proposals on every frame with ids carried by greedy IoU (no memory), and propagation
from the first frame's proposals only (no later discovery); all three run the proposal network at
the same input size (`DiscoveryOptions.proposal_size`). Under each weights on each set, tracking
minus each baseline with a 95% paired bootstrap interval over videos (`vcseg.metrics.compare`): a
difference whose interval holds 0 is one these videos cannot rank."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from benchmarks.held_out import (DAVIS, HELD_OUT, HELD_OUT_COMPOSITIONS, WEIGHTS, compared_weights,
                                 held_out_compositions, proposal_recall)
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

SIZE = 320  # the memory network's input: on real footage the default weights do better at 320 than at 240


def _persons(root: Path) -> int:
    return sum(len({i for path in masks.values() for i in set(read_mask(path).ravel().tolist())} - {0})
               for masks in find_mask_videos(root).values())


def _report(name: str, pred: Path, gt: Path, seconds: float, frames: int) -> ScoreReport:
    report = score_dataset(pred, gt, workers=1)
    scores = report.summary()
    print(f"      {name:<36} J&F {scores['JF_mean']:.4f}  persons {_persons(pred):>3} / {_persons(gt):<3} "
          f"{frames / seconds:6.2f} frames/s")
    return report


def _evaluate(title: str, data: Path, tmp: Path, weights: list[tuple[str, Path]]) -> None:
    """Each of `weights` on `data`: tracking, both baselines, their differences and the recall."""
    print(f"  {title}")
    dataset = find_dataset(data)
    frames = sum(len(v.frames) for v in dataset.videos)
    options = PredictOptions(size=SIZE)
    defaults = DiscoveryOptions()
    proposal_size = defaults.proposal_size or SIZE
    tracked = {}
    for label, path in weights:
        print(f"    {label} weights")
        reports = []
        for name, discovery in ((f"tracking (key frames every {defaults.key_every})", defaults),
                                ("first-frame proposals only", DiscoveryOptions(key_every=10 ** 6))):
            out = tmp / label / name.split()[0]
            started = time.perf_counter()
            predict_dataset(data, out, [path], None, options, discovery=discovery)
            reports.append(_report(name, out, data, time.perf_counter() - started, frames))
        model, _ = load_proposal_network(path)
        out = tmp / label / "per-frame"
        started = time.perf_counter()
        write_proposals_per_frame(dataset, lambda video: network_proposer(model, proposal_size), out)
        reports.append(_report("proposals per frame, greedy IoU ids", out, data, time.perf_counter() - started,
                               frames))
        tracking, first_only, per_frame = reports
        tracked[label] = tracking
        print(f"      tracking - per-frame proposals:    {paired_difference(tracking, per_frame)}")
        print(f"      tracking - first-frame proposals:  {paired_difference(tracking, first_only)}")
        recall = proposal_recall(dataset, lambda video: network_proposer(model, proposal_size))
        print(f"      proposal recall at IoU 0.5 (short side {proposal_size}, every 5th frame): {recall:.3f}")
    if len(tracked) == 2:
        print(f"    tracking, new - previous weights:  {paired_difference(tracked['new'], tracked['previous'])}")


def main() -> None:
    if not WEIGHTS.is_file():
        print(f"{WEIGHTS} not found: run `make weights` first")
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        weights = []
        for label, path in compared_weights(tmp):
            if "proposals" in load_checkpoint(path)["models"]:
                weights.append((label, path))
            else:
                print(f"{label} weights ({path.name}) hold no proposal network: not measured")
        if not weights:
            print("no weights with a proposal network to measure: run `make weights` first")
            return
        synth = tmp / "synth"
        synthesize(synth, SynthConfig(videos=6, frames=30, height=240, width=427, people_min=0, people_max=12,
                                      seed=7, preset="crowd"))
        _evaluate("held-out procedural videos, 0-12 people (crowd preset), 240x427", synth, tmp / "s", weights)
        if DAVIS.is_dir():
            composed = held_out_compositions(tmp / "davis")
            _evaluate(f"held-out DAVIS sequences ({', '.join(HELD_OUT)}) composed "
                      f"{HELD_OUT_COMPOSITIONS.people[0]}-{HELD_OUT_COMPOSITIONS.people[1]} per video "
                      f"({HELD_OUT_COMPOSITIONS.videos} videos), 854x480", composed, tmp / "d", weights)
        else:
            print(f"{DAVIS} not found: held-out real footage not measured")
