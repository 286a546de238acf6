"""What weights/default.pt scores, beside the previous default weights (from git history, see
`benchmarks.held_out`) in the same run: semi-supervised J&F on demo-like procedural videos against
the copy-forward baseline, and, for weights that hold a proposal network, the unsupervised path
(no mask at all) on the same videos: J&F and persons found vs present. Then semi-supervised J&F
and frames/s on the held-out real DAVIS sequences (rollerblade, tennis: no training saw them; when
the shared data is present) at short sides 320 and 480, against copy-forward: how well the
weights carry to real footage they never saw."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from benchmarks.held_out import DAVIS, HELD_OUT, WEIGHTS, compared_weights, held_out_davis
from vcseg.data.synth import SynthConfig, synthesize
from vcseg.infer.baselines import copy_first_mask_forward
from vcseg.infer.dataset import predict_dataset
from vcseg.infer.options import PredictOptions
from vcseg.io.layouts import find_dataset, find_mask_videos
from vcseg.io.masks import read_mask
from vcseg.metrics.evaluate import score_dataset
from vcseg.model.checkpoint import load_checkpoint

# 320 did better than the 240 of procedural training on real footage; 480 is `vcseg predict`'s default
REAL_SIZES = (320, PredictOptions().size)
VALIDATION = SynthConfig(videos=6, frames=30, height=480, width=854, people_min=1, people_max=4, seed=0)


def _persons(root: Path) -> dict[str, int]:
    return {video: len({int(i) for stem in masks.values() for i in set(read_mask(stem).ravel().tolist())} - {0})
            for video, masks in find_mask_videos(root).items()}


def _row(name: str, scores: dict[str, float], fps: float | None = None) -> None:
    """One line of scores, J&F in the same column for every row."""
    print(f"  {name + ':':<40}J&F {scores['JF_mean']:.4f} (J {scores['J_mean']:.4f}, F {scores['F_mean']:.4f})"
          + ("" if fps is None else f", {fps:.2f} frames/s"))


def _semi(label: str, weights: Path, data: Path, out: Path, size: int, what: str) -> dict[str, float]:
    """Predict `data` from its first masks with `weights` at short side `size`; print and return J&F."""
    started = time.perf_counter()
    semi = predict_dataset(data, out, [weights], data, PredictOptions(size=size))
    fps = semi.frames / (time.perf_counter() - started)
    model = score_dataset(out, data, workers=1).summary()
    _row(f"{label:<8} weights, {what}", model, fps)
    return model


def main() -> None:
    if not WEIGHTS.is_file():
        print(f"{WEIGHTS} not found: run `make weights` first")
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        weights = compared_weights(tmp)
        data = tmp / "data"
        synthesize(data, VALIDATION)
        print(f"{VALIDATION.videos} procedural videos x {VALIDATION.frames} frames at "
              f"{VALIDATION.width}x{VALIDATION.height} (the demo's set), tianchi protocol, predicted at short side 240")
        baseline = copy_first_mask_forward(find_dataset(data), tmp / "baseline")
        base = score_dataset(baseline, data, workers=1).summary()
        _row("copy-forward baseline", base)
        for label, path in weights:
            model = _semi(label, path, data, tmp / f"semi-{label}", 240, "first masks")
            print(f"  {label:<8} gain over the baseline: {model['JF_mean'] - base['JF_mean']:+.4f} J&F")
        for label, path in weights:
            if "proposals" in load_checkpoint(path)["models"]:
                _unsupervised(label, path, data, tmp)
            else:
                print(f"  ({label} weights hold no proposal network: unsupervised path not measured)")
        if DAVIS.is_dir():
            _real_footage(weights, tmp)
        else:
            print(f"{DAVIS} not found: held-out real footage not measured")


def _unsupervised(label: str, weights: Path, data: Path, tmp: Path) -> None:
    """The no-mask path on the procedural videos: J&F and persons found vs present."""
    out = tmp / f"unsup-{label}"
    started = time.perf_counter()
    unsup = predict_dataset(data, out, [weights], None, PredictOptions(size=240))
    fps = unsup.frames / (time.perf_counter() - started)
    found = score_dataset(out, data, workers=1).summary()
    present, predicted = _persons(data), _persons(out)
    _row(f"{label:<8} weights, no mask at all", found, fps)
    print(f"  {label:<8} persons found / present per video: "
          + ", ".join(f"{predicted.get(v, 0)}/{n}" for v, n in sorted(present.items())))


def _real_footage(weights: list[tuple[str, Path]], tmp: Path) -> None:
    """Semi-supervised J&F on the held-out DAVIS sequences at each of `REAL_SIZES`, every weights
    side by side per size: the input size is the user's choice, and on real footage it is not the
    training scale that does best."""
    root = held_out_davis(tmp)
    davis = find_dataset(root)
    frames = sum(len(video.frames) for video in davis.videos)
    base = score_dataset(copy_first_mask_forward(davis, tmp / "davis-copy"), root, workers=1).summary()
    print(f"held-out real DAVIS sequences ({', '.join(HELD_OUT)}: {frames} frames, 854x480, "
          "in no training set), first masks given")
    _row("copy-forward baseline", base)
    for size in REAL_SIZES:
        for label, path in weights:
            _semi(label, path, root, tmp / f"davis-semi-{size}-{label}", size, f"short side {size}")
