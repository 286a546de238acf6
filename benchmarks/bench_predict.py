"""`vcseg predict` figures: frames per second at 854x480, the memory bank's bound on long videos, and
today's engine against this checkout's with the default weights on held-out real footage.

- Today's engine (the `vcseg` of BASELINE_COMMIT, run from `git archive`) against this checkout's
  with STM's memory writes (every frame's value written to the memory, read by the next frame; the
  default) and with STCN's (`--memory-frames-only`: values written only for frames that join the
  memory; the previous frame reaches the decoder through its mask): frames/s and J&F (tianchi
  protocol, with the paired bootstrap interval against today's), first masks given (semi) and
  none (the people found by the proposal network), on the held-out DAVIS people sequences
  (rollerblade, tennis: 854x480, one person each; semi on all frames, no mask on the first 30 of
  each) and on two 4-person compositions of them; each run a fresh process, --size 480, auto
  precision. Plus the time from starting `vcseg predict` to its first predicted frame, for both.
- Frames per second of the propagation (one object pair, --size 480, defaults mem_every 5 /
  mem_size 8, fp32 on the CPU, auto precision (bf16) on a GPU) over 10 frames of 854x480 after a
  2-frame warm-up, for a small model (resnet18, the demo config's widths) and the ResNet-50 default,
  random weights.
- Peak memory-bank bytes of a 100-frame and a 1,000-frame video (tiny 64x64 frames at --size 32 so
  that the long video runs fast): the ratio is ~1 when memory does not grow with video length.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.held_out import DAVIS, HELD_OUT, REPO, TRAIN_PEOPLE, held_out_davis
from vcseg.config import ModelConfig
from vcseg.data.compose import ComposeConfig, compose_dataset
from vcseg.infer.models import DEFAULT_WEIGHTS
from vcseg.infer.options import PredictOptions
from vcseg.infer.propagate import VideoStats, predict_video
from vcseg.io.layouts import find_dataset
from vcseg.metrics.compare import paired_difference
from vcseg.metrics.evaluate import score_dataset
from vcseg.model.checkpoint import unpack_payload
from vcseg.model.network import MemoryNetwork

# Today's engine, for the before/after rows: the last commit before the query-major memory read,
# batch norms folded and channels-last prediction (its `vcseg` is run from `git archive`).
BASELINE_COMMIT = "e594ada"
NO_MASK_FRAMES = 30  # per held-out sequence, for the no-mask rows on 1-person footage
# Four persons per video, from the held-out sequences only (the same person more than once).
FOUR_PEOPLE = ComposeConfig(videos=2, people=(4, 4), seed=0, exclude=TRAIN_PEOPLE)

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


def _first_frames(source: Path, out: Path, count: int) -> Path:
    """The first `count` frames (and masks) of every video of `source`, linked into `out`."""
    for video in find_dataset(source).videos:
        for folder, files in (("JPEGImages", video.frames), ("Annotations", video.masks)):
            for stem in list(video.frames)[:count]:
                if stem in files:
                    target = out / folder / video.name / files[stem].name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.symlink_to(files[stem].resolve())
    return out


# One engine's run, in a process of its own whose `vcseg` is the code under test (this checkout,
# or BASELINE_COMMIT's tree): prints the module it ran and the frames and seconds predict took.
_RUNNER = """
import json, sys, time
from pathlib import Path
import vcseg
from vcseg.infer.dataset import predict_dataset
from vcseg.infer.options import PredictOptions
data, out, masks, weights, previous = sys.argv[1:6]
started = time.perf_counter()
summary = predict_dataset(Path(data), Path(out), [Path(weights)], Path(masks) if masks else None,
                          PredictOptions(previous_in_memory=previous == "stm"))
print(json.dumps({"vcseg": vcseg.__file__, "frames": summary.frames, "seconds": time.perf_counter() - started}))
"""


def _baseline_code(tmp: Path) -> Path | None:
    """BASELINE_COMMIT's `vcseg` package, extracted under `tmp` (None, after one line, without git)."""
    root = tmp / f"vcseg-{BASELINE_COMMIT}"
    root.mkdir()
    archive = subprocess.run(["git", "archive", BASELINE_COMMIT, "vcseg"], cwd=REPO, capture_output=True, check=False)
    if archive.returncode != 0:
        print(f"  the engine of {BASELINE_COMMIT} is not available ({archive.stderr.decode(errors='replace').strip()}); "
              "reporting this checkout's only")
        return None
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive.stdout, check=True)
    return root


# Config keys added after BASELINE_COMMIT, which its config loader refuses as unknown. All are
# training settings (how the networks were trained), none changes what inference does.
SETTINGS_AFTER_BASELINE = {"proposals": ("foreground_dice_weight",), "data": ("instance_recolour",),
                           "train": ("encoder_lr_scale",)}


def _version_1_copy(weights: Path, out: Path) -> Path:
    """`weights` as a version 1 checkpoint (plain state dicts), which BASELINE_COMMIT's code reads:
    the same tensors, unpacked, and its config without `SETTINGS_AFTER_BASELINE`."""
    payload = unpack_payload(torch.load(weights, map_location="cpu", weights_only=True))
    config = {section: {key: value for key, value in settings.items()
                        if key not in SETTINGS_AFTER_BASELINE.get(section, ())}
              for section, settings in payload["config"].items()}
    torch.save(dict(payload, version=1, config=config), out)
    return out


def _in_code(code: Path) -> dict:
    """subprocess.run's cwd and env for a Python whose `vcseg` is the one under `code` (`python -c`
    and `-m` put the working folder first on the path, so it must be `code` too)."""
    return {"cwd": code, "env": {**os.environ, "PYTHONPATH": str(code), "NO_ALBUMENTATIONS_UPDATE": "1"}}


def _run_engine(code: Path, weights: Path, data: Path, out: Path, first_masks: Path | None, engine: str) -> float:
    """Frames/s of predict (`weights`, --size 480, auto precision) with the `vcseg` under `code`."""
    result = subprocess.run(
        [sys.executable, "-c", _RUNNER, str(data), str(out), str(first_masks or ""), str(weights), engine],
        capture_output=True, text=True, **_in_code(code))
    if result.returncode != 0:
        raise RuntimeError(f"the engine under {code} failed:\n{result.stderr[-2000:]}")
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    if not Path(figures["vcseg"]).resolve().is_relative_to(code.resolve()):
        raise RuntimeError(f"the run meant for {code} imported {figures['vcseg']}")
    return figures["frames"] / figures["seconds"]


def _engine_rows(title: str, data: Path, first_masks: Path | None, tmp: Path,
                 baseline: tuple[Path, Path] | None, repeats: int = 1) -> None:
    """The baseline engine against this checkout's STM and STCN writes on one set, J&F tianchi protocol.

    repeats: runs of each engine, interleaved (baseline, STM, STCN, baseline, ...) so that all meet
    the same machine; frames/s is their median (the masks, and so J&F, are the first run's: every
    run writes the same)."""
    print(f"  {title}" + (f" (frames/s: median of {repeats} interleaved runs)" if repeats > 1 else ""))
    tmp.mkdir(parents=True)
    engines = ([(f"{BASELINE_COMMIT} (today's engine, STM)", *baseline, "stm")] if baseline else []) + [
        ("new engine, STM (default)", REPO, DEFAULT_WEIGHTS, "stm"),
        ("new engine, STCN --memory-frames-only", REPO, DEFAULT_WEIGHTS, "stcn")]
    runs: dict[str, list[float]] = {name: [] for name, *_ in engines}
    outs: dict[str, Path] = {}
    for _ in range(repeats):
        for name, code, weights, engine in engines:
            out = tmp / f"pred-{len(list(tmp.iterdir()))}"
            outs.setdefault(name, out)
            runs[name].append(_run_engine(code, weights, data, out, first_masks, engine))
    speeds = {name: statistics.median(values) for name, values in runs.items()}
    reports = {name: score_dataset(out, data, workers=1) for name, out in outs.items()}
    for name in speeds:
        print(f"    {name:40s} {speeds[name]:5.2f} frames/s, J&F {reports[name].summary()['JF_mean']:.4f}", flush=True)
    names = list(speeds)
    for name in names[1:]:
        print(f"    {name} / {names[0]}: {speeds[name] / speeds[names[0]]:.2f}x frames/s, J&F "
              f"{paired_difference(reports[name], reports[names[0]])}", flush=True)


def _startup(code: Path, weights: Path, label: str) -> None:
    """Seconds from starting `vcseg predict` (a fresh process) on a one-frame video to that frame's
    mask on disk (polled every 5 ms), and to the process's exit: from a first mask (the mask is the
    given one, written after the memory is set up) and with none (the proposal network finds the
    person: a frame predicted)."""
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "data" / "v"
        video.mkdir(parents=True)
        from PIL import Image

        Image.fromarray(np.zeros((480, 854, 3), np.uint8)).save(video / "00000.jpg")
        mask = np.zeros((480, 854), np.uint8)
        mask[100:300, 300:500] = 1
        Image.fromarray(mask).save(video / "00000.png")
        for mode, extra in (("first mask", ["--first-masks", str(video.parent)]), ("no mask", [])):
            to_mask, to_exit = [], []
            for run in range(3):  # the first run warms the disk cache; the median is a warm start
                out = Path(tmp) / f"pred-{len(mode)}-{run}"
                started = time.perf_counter()
                process = subprocess.Popen([sys.executable, "-m", "vcseg.cli", "predict", "--video-dir",
                                            str(video.parent), *extra, "--out", str(out), "--checkpoint", str(weights)],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **_in_code(code))
                while not (out / "v" / "00000.png").is_file() and process.poll() is None:
                    time.sleep(0.005)
                to_mask.append(time.perf_counter() - started)
                _, error = process.communicate()
                to_exit.append(time.perf_counter() - started)
                if process.returncode != 0:
                    raise RuntimeError(error.decode(errors="replace"))
            print(f"  {label}, {mode}: a fresh `vcseg predict` process to one 854x480 frame's mask on disk: "
                  f"median {sorted(to_mask)[1]:.2f} s ({', '.join(f'{t:.2f}' for t in to_mask)}); to its exit: "
                  f"median {sorted(to_exit)[1]:.2f} s")


_IMPORT_TORCH = "import time; started = time.perf_counter(); import torch; print(time.perf_counter() - started)"


def _torch_import() -> None:
    """The floor under any start-up: a fresh interpreter that imports torch and nothing else."""
    whole, imports = [], []
    for _ in range(3):
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", _IMPORT_TORCH], check=True, capture_output=True, text=True)
        whole.append(time.perf_counter() - started)
        imports.append(float(done.stdout))
    print(f"  for reference, a fresh process that only imports torch: the import median {sorted(imports)[1]:.2f} s "
          f"({', '.join(f'{t:.2f}' for t in imports)}), the process to its exit {sorted(whole)[1]:.2f} s "
          "(python's exit collects torch's objects: 0.6-0.7 s here, which vcseg's commands skip)")


def bench_engines() -> None:
    if not DEFAULT_WEIGHTS.is_file():
        print(f"  {DEFAULT_WEIGHTS} not found: run `make weights` first")
        return
    print(f"today's engine ({BASELINE_COMMIT}) against this checkout's, STM's and STCN's memory writes, "
          f"default weights, --size 480, auto precision, held-out real footage")
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        baseline_code = _baseline_code(tmp)
        # its code reads version 1 checkpoints only: the same weights, unpacked
        baseline = (baseline_code, _version_1_copy(DEFAULT_WEIGHTS, tmp / "default-v1.pt")) if baseline_code else None
        startups = [(*baseline, BASELINE_COMMIT)] if baseline else []
        for code, weights, label in startups + [(REPO, DEFAULT_WEIGHTS, "this checkout")]:
            _startup(code, weights, label)
        _torch_import()
        if not DAVIS.is_dir():
            print(f"  {DAVIS} not found: the real-footage rows need the shared DAVIS people sequences")
            return
        held_out = held_out_davis(tmp)
        rows = tmp / "rows"
        _engine_rows(f"held-out DAVIS people ({', '.join(HELD_OUT)}), first masks (854x480, 1 person)",
                     held_out, held_out, rows / "a", baseline, repeats=3)
        short = _first_frames(held_out, tmp / "held-out-short", NO_MASK_FRAMES)
        _engine_rows(f"the same, no mask (first {NO_MASK_FRAMES} frames of each)", short, None, rows / "b", baseline)
        composed = tmp / "composed"
        compose_dataset([DAVIS], composed, FOUR_PEOPLE, progress=False)
        _engine_rows("4-person compositions of them, first masks (2 videos, 854x480)", composed, composed,
                     rows / "c", baseline)
        _engine_rows("4-person compositions of them, no mask", composed, None, rows / "d", baseline, repeats=3)


def main() -> None:
    bench_engines()
    bench_fps("cpu")
    if torch.cuda.is_available():
        bench_fps("cuda")
    print("memory bank peak bytes (64x64 frames, --size 32, mem_every 5, mem_size 8)")
    bench_memory_bound()


if __name__ == "__main__":
    main()
