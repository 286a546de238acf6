"""What weights/default.pt scores: semi-supervised J&F on demo-like procedural videos against the
copy-forward baseline, and, when the weights hold a proposal network, the unsupervised path (no
mask at all) on the same videos: J&F and persons found vs present. Then semi-supervised J&F on the
shared real DAVIS sequences (when present), against copy-forward: how far procedural training
carries to real footage."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from vcseg.data.synth import SynthConfig, synthesize
from vcseg.infer.baselines import copy_first_mask_forward
from vcseg.infer.dataset import predict_dataset
from vcseg.infer.options import PredictOptions
from vcseg.io.layouts import find_dataset, find_mask_videos
from vcseg.io.masks import read_mask
from vcseg.metrics.evaluate import score_dataset
from vcseg.model.checkpoint import load_checkpoint

WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "default.pt"
DAVIS = Path(__file__).resolve().parents[2] / "shared" / "data" / "davis2016-people"
# the default weights were trained at 240x427; the last is `vcseg predict`'s default (480)
REAL_SIZES = (240, 320, PredictOptions().size)
VALIDATION = SynthConfig(videos=6, frames=30, height=480, width=854, people_min=1, people_max=4, seed=0)


def _persons(root: Path) -> dict[str, int]:
    return {video: len({int(i) for stem in masks.values() for i in set(read_mask(stem).ravel().tolist())} - {0})
            for video, masks in find_mask_videos(root).items()}


def main() -> None:
    if not WEIGHTS.is_file():
        print(f"{WEIGHTS} not found: run `make weights` first")
        return
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        synthesize(data, VALIDATION)
        print(f"{VALIDATION.videos} procedural videos x {VALIDATION.frames} frames at "
              f"{VALIDATION.width}x{VALIDATION.height} (the demo's set), tianchi protocol, predicted at short side 240")
        baseline = copy_first_mask_forward(find_dataset(data), Path(tmp) / "baseline")
        base = score_dataset(baseline, data, workers=1).summary()
        print(f"  copy-forward baseline:             J&F {base['JF_mean']:.4f} (J {base['J_mean']:.4f}, F {base['F_mean']:.4f})")
        started = time.perf_counter()
        semi = predict_dataset(data, Path(tmp) / "semi", [WEIGHTS], data, PredictOptions(size=240))
        fps = semi.frames / (time.perf_counter() - started)
        model = score_dataset(Path(tmp) / "semi", data, workers=1).summary()
        print(f"  default weights, first masks:      J&F {model['JF_mean']:.4f} (J {model['J_mean']:.4f}, "
              f"F {model['F_mean']:.4f}), {fps:.2f} frames/s")
        print(f"  gain over the baseline: {model['JF_mean'] - base['JF_mean']:+.4f} J&F")
        if "proposals" in load_checkpoint(WEIGHTS)["models"]:
            _unsupervised(data, Path(tmp))
        else:
            print("  (no proposal network in the weights: unsupervised path not measured)")
        if DAVIS.is_dir():
            _real_footage(Path(tmp))


def _unsupervised(data: Path, tmp: Path) -> None:
    """The no-mask path on the procedural videos: J&F and persons found vs present."""
    started = time.perf_counter()
    unsup = predict_dataset(data, tmp / "unsup", [WEIGHTS], None, PredictOptions(size=240))
    fps = unsup.frames / (time.perf_counter() - started)
    found = score_dataset(tmp / "unsup", data, workers=1).summary()
    present, predicted = _persons(data), _persons(tmp / "unsup")
    print(f"  default weights, no mask at all:   J&F {found['JF_mean']:.4f} (J {found['J_mean']:.4f}, "
          f"F {found['F_mean']:.4f}), {fps:.2f} frames/s")
    print("  persons found / present per video: "
          + ", ".join(f"{predicted.get(v, 0)}/{n}" for v, n in sorted(present.items())))


def _real_footage(tmp: Path) -> None:
    """Semi-supervised J&F on the shared DAVIS people sequences at each of `REAL_SIZES`: the input
    size is the user's choice, and on real footage it is not the training scale that does best."""
    davis = find_dataset(DAVIS)
    base = score_dataset(copy_first_mask_forward(davis, tmp / "davis-copy"), DAVIS, workers=1).summary()
    print(f"real DAVIS people sequences ({len(davis.videos)} videos, 854x480), first masks given")
    print(f"  copy-forward baseline:             J&F {base['JF_mean']:.4f}")
    for size in REAL_SIZES:
        out = tmp / f"davis-semi-{size}"
        started = time.perf_counter()
        semi = predict_dataset(DAVIS, out, [WEIGHTS], DAVIS, PredictOptions(size=size))
        fps = semi.frames / (time.perf_counter() - started)
        model = score_dataset(out, DAVIS, workers=1).summary()
        print(f"  default weights at short side {size}: J&F {model['JF_mean']:.4f} (J {model['J_mean']:.4f}, "
              f"F {model['F_mean']:.4f}), {fps:.2f} frames/s")
