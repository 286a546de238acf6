"""Tracking against per-frame proposals on real footage, with the proposal network taken out.

The discovery benchmark runs weights/default.pt's proposal network, which finds real people
poorly (it learnt four people); on real footage it mostly measures that network. Here the
proposals are simulated from the ground truth with controlled errors (`vcseg.infer.simulated`),
at three levels, on the compositions of the held-out DAVIS people sequences that no training saw
(`benchmarks.held_out.HELD_OUT_COMPOSITIONS`, 8 videos of 2-3 persons); the memory network is
weights/default.pt's at short side 320, as in the discovery benchmark. Per level: the proposals' recall at IoU 0.5 (the discovery benchmark prints the
network's), tianchi-protocol J&F of tracking with two re-anchoring rules (the `DiscoveryOptions()`
default: a matched proposal scoring 0.8 or more replaces a drifted track's mask, IoU below 0.5;
and `vcseg predict --correct-iou 1 --correct-score 0`: every match replaces it) and of proposals
on every frame with greedy IoU ids, and each tracking minus per-frame with a 95% paired bootstrap
interval over videos. A level's proposals are the same frames' same proposals for every method.
About an hour on 2 cores.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from benchmarks.bench_discovery import SIZE
from benchmarks.held_out import DAVIS, HELD_OUT, HELD_OUT_COMPOSITIONS, WEIGHTS, held_out_compositions, proposal_recall
from vcseg.infer.baselines import write_proposals_per_frame
from vcseg.infer.dataset import predict_dataset
from vcseg.infer.discovery import Discovery, DiscoveryOptions
from vcseg.infer.options import PredictOptions
from vcseg.infer.simulated import ProposalErrors, SimulatedProposer
from vcseg.io.layouts import VideoFiles, find_dataset
from vcseg.metrics.compare import paired_difference
from vcseg.metrics.evaluate import score_dataset

LEVELS = {
    "exact": ProposalErrors(miss_rate=0.0, boundary=0.0, fragment_rate=0.0, false_rate=0.0),
    "light": ProposalErrors(miss_rate=0.1, boundary=0.01, fragment_rate=0.05, false_rate=0.05),
    "moderate": ProposalErrors(),  # the defaults
}
RULES = {
    "default re-anchoring": DiscoveryOptions(),
    "re-anchor at every match": DiscoveryOptions(correct_iou=1.0, correct_score=0.0),
}


def _evaluate(name: str, errors: ProposalErrors, data: Path, tmp: Path) -> None:
    dataset = find_dataset(data)
    frames = sum(len(video.frames) for video in dataset.videos)

    def proposer_for(video: VideoFiles) -> SimulatedProposer:
        return SimulatedProposer.for_video(video, errors)

    print(f"  {name}: {errors.describe()}; recall at IoU 0.5 {proposal_recall(dataset, proposer_for):.3f}")
    trackings = {}
    for rule, discovery in RULES.items():
        started = time.perf_counter()
        predict_dataset(data, tmp / rule, [WEIGHTS], None, PredictOptions(size=SIZE),
                        object_sources=lambda video, discovery=discovery: Discovery(proposer_for(video), discovery))
        seconds = time.perf_counter() - started
        trackings[rule] = score_dataset(tmp / rule, data, workers=1)
        print(f"    tracking, {rule:<26} J&F {trackings[rule].summary()['JF_mean']:.4f}  "
              f"{frames / seconds:5.2f} frames/s")
    write_proposals_per_frame(dataset, proposer_for, tmp / "per-frame")
    per_frame = score_dataset(tmp / "per-frame", data, workers=1)
    print(f"    proposals per frame, greedy IoU ids    J&F {per_frame.summary()['JF_mean']:.4f}")
    for rule, tracking in trackings.items():
        print(f"    tracking ({rule}) - per-frame: {paired_difference(tracking, per_frame)}")


def main() -> None:
    if not WEIGHTS.is_file() or not DAVIS.is_dir():
        print(f"needs {WEIGHTS} (make weights) and the shared DAVIS data at {DAVIS}")
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = held_out_compositions(tmp / "held-out")
        print(f"  held-out DAVIS people ({', '.join(HELD_OUT)}) composed 2-3 per video "
              f"({HELD_OUT_COMPOSITIONS.videos} videos), 854x480, memory network at short side {SIZE}; "
              "simulated proposals:")
        for name, errors in LEVELS.items():
            _evaluate(name, errors, data, tmp / name)


if __name__ == "__main__":
    main()
