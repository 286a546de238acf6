"""`make gpu-check`: the GPU paths end to end, in at most about 8 minutes, unattended.

On a machine with CUDA:
  1. the GPU-relevant tests on the GPU (tests/gpu, tests/model/test_precision.py, test_devices.py);
  2. 2-process torchrun trainings (one process per GPU, or two sharing one GPU over gloo) of the
     memory network and of the proposal network, in bf16 and in fp16 (the memory network, the one
     with the option, channels_last in fp16 and in the CPU dry run): each is
     killed (SIGKILL) once its first checkpoint exists and resumed to the end;
  3. a sharded `vcseg predict` under torchrun, then one of two videos at 854x480 for frames/s
     (each process's first video apart: it pays for the warm-up) and peak memory.
It prints steps/s, frames/s, peak GPU memory, and every warning about grad strides, skipped
GradScaler steps or scheduler order. Exit 1 when a part failed.

Without CUDA it prints one line and exits 0. `--cpu` runs the same sequence on the CPU (fp32,
gloo, fewer steps): a dry run of everything but the GPU itself.
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

BUDGET_S = 480
WARNING = re.compile(r"grad strides|bucket view strides|lr_scheduler\.step\(\)` before `optimizer\.step|"
                     r"skipp|inf checks|GradScaler", re.IGNORECASE)
# The interpreter running this, with `-m`: no console script (vcseg, torchrun) needs to be installed
# beside it, as on a GPU image whose Python holds torch and the package is only on PYTHONPATH
VCSEG = [sys.executable, "-m", "vcseg.cli"]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]
DEADLINE = time.monotonic() + BUDGET_S


def _left() -> float:
    return max(10.0, DEADLINE - time.monotonic())


def _run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    print("$", " ".join(args), flush=True)
    return subprocess.run(args, capture_output=True, text=True, timeout=_left(), **kwargs)


def _warnings(text: str) -> list[str]:
    return sorted({line.strip() for line in text.splitlines() if WARNING.search(line)})


def _torchrun(*args: str) -> list[str]:
    return [*TORCHRUN, "--standalone", "--nproc_per_node=2", "-m", "vcseg.cli", *args]


def _steps_per_s(run: Path, batch_size: int) -> float:
    rows = list(csv.DictReader((run / "log.csv").open()))[2:]  # the first steps warm up
    speeds = [float(row["samples_per_s"]) / batch_size for row in rows]
    return sum(speeds) / len(speeds) if speeds else float("nan")


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (torchrun's workers start sessions of their own, so killing the
    launcher's process group leaves them running)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, queue = [], [pid]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def _kill_tree(pid: int) -> None:
    """SIGKILL a launcher and everything it started, as a crash or an OOM killer would, and wait
    until they are gone."""
    victims = [*_descendants(pid), pid]
    for victim in victims:
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(_running(victim) for victim in victims):
        time.sleep(0.1)


def _running(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def train_killed_and_resumed(data: Path, run: Path, task: str, precision: str, channels_last: bool,
                             steps: int, device: str) -> tuple[bool, str]:
    """One 2-process training, SIGKILLed after its first checkpoint and resumed; (ok, report line)."""
    section = "model" if task == "memory" else "proposals"
    settings = [f"data.root={data}", "data.short_side=128", "data.crop=[128, 224]", "data.workers=1",
                "train.batch_size=4", f"train.steps={steps}", f"train.checkpoint_every={steps // 3}",
                "train.log_every=1", "train.warmup_steps=2", f"train.precision={precision}",
                f"train.device={device}", f"{section}.encoder=resnet18"]
    if task == "memory":
        settings += ["model.value_encoder=resnet18", "train.max_skip=[2]", "train.max_skip_at=[0.0]"]
    channels_last = channels_last and task == "memory"  # the proposal network has no such option
    if channels_last:
        settings.append("model.channels_last=true")
    config = run.with_suffix(".toml")
    config.write_text("# gpu-check: everything is set with --set\n")
    command = _torchrun("train", "--config", str(config), "--task", task, "--out", str(run),
                        *sum((["--set", s] for s in settings), []))
    print("$", " ".join(command), flush=True)
    started = time.monotonic()
    with open(run.with_suffix(".log"), "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        last = run / "checkpoints" / "last.pt"
        while process.poll() is None and not last.exists() and time.monotonic() < DEADLINE:
            time.sleep(0.5)
        killed = process.poll() is None
        if killed:
            time.sleep(1.0)  # into the next steps: the resume redoes them
            _kill_tree(process.pid)
        process.wait()
    first = run.with_suffix(".log").read_text()
    if not killed and process.returncode != 0:
        return False, f"{task} {precision}: failed before its first checkpoint:\n{first[-3000:]}"
    resumed = _run(_torchrun("train", "--out", str(run), "--resume"))
    seconds = time.monotonic() - started
    text = first + resumed.stdout + resumed.stderr
    if resumed.returncode != 0:
        return False, f"{task} {precision}: resume failed (exit {resumed.returncode}):\n{text[-3000:]}"
    line = (f"{task:9s} {precision}{' channels_last' if channels_last else ''}: {steps} steps, killed once "
            f"and resumed, {_steps_per_s(run, 4):.2f} steps/s (after warm-up), {seconds:.0f} s in all")
    found = _warnings(text)
    return True, line + "".join(f"\n    warning: {w}" for w in found)


def predict(data: Path, checkpoint: Path, out: Path, device: str, sharded: bool) -> tuple[bool, str]:
    args = ["predict", "--video-dir", str(data / "JPEGImages"), "--first-masks", str(data / "Annotations"),
            "--checkpoint", str(checkpoint), "--out", str(out), "--size", "480", "--device", device]
    command = _torchrun(*args) if sharded else [*VCSEG, *args]
    done = _run(command)
    if done.returncode != 0:
        return False, f"predict failed (exit {done.returncode}):\n{(done.stdout + done.stderr)[-3000:]}"
    # one log per process (`.predict_log.shard-I-of-N.json` under torchrun): its per-video records,
    # not its "total", which would count every video twice
    logs = [list(json.loads(log.read_text())["videos"].values()) for log in sorted(out.glob(".predict_log*.json"))]
    records = [record for log in logs for record in log]
    peak = max((r.get("peak_memory_bytes", 0) for r in records), default=0)
    kind = "sharded over 2 processes" if sharded else "one process"
    rate = "frames/s per process" if sharded else "frames/s"
    first, later = _rate([log[:1] for log in logs]), _rate([log[1:] for log in logs])
    # A process's first video pays for CUDA's and cuDNN's warm-up (kernels loaded, a plan found for
    # every new shape): on an H200 at 854x480 about 10 against 65 frames/s afterwards, so the two
    # are told apart
    first_of = "each one's first video" if sharded else "the first video"
    rates = (f"{first:.1f} {rate} on {first_of}, {later:.1f} on the others" if later is not None
             else f"{first:.1f} {rate} (one video per process: warm-up included)")
    return True, (f"predict {kind}: {len(records)} video(s), {rates}, peak memory {peak / 2**20:.0f} MiB"
                  + "".join(f"\n    warning: {w}" for w in _warnings(done.stderr)))


def _rate(groups: list[list[dict]]) -> float | None:
    """Frames per second of the per-video records in `groups` together (None: no record)."""
    records = [record for group in groups for record in group]
    if not records:
        return None
    return sum(r["frames"] for r in records) / max(sum(r["seconds"] for r in records), 1e-9)


def main(argv: list[str]) -> int:
    cpu = "--cpu" in argv
    if not cpu and not torch.cuda.is_available():
        print("gpu-check: no CUDA device visible here; nothing to check (run `make gpu-check` on a GPU machine)")
        return 0
    device, steps = ("cpu", 9) if cpu else ("auto", 36)
    precisions = [("fp32", True)] if cpu else [("bf16", False), ("fp16", True)]
    if not cpu:
        print(f"gpu-check on {torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    results: list[tuple[bool, str]] = []
    with tempfile.TemporaryDirectory(prefix="vcseg-gpu-check-") as tmp:
        root = Path(tmp)
        os.environ.setdefault("OMP_NUM_THREADS", "1" if cpu else "4")
        if not cpu:
            tests = _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/gpu",
                          "tests/model/test_precision.py", "tests/model/test_devices.py",
                          "tests/train/test_gpu_paths.py", "tests/train/test_ranks.py"])
            summary = (tests.stdout.strip().splitlines() or ["(no output)"])[-1]
            results.append((tests.returncode == 0, f"tests on the GPU: {summary}"
                            + ("" if tests.returncode == 0 else "\n" + tests.stdout[-3000:])))
        data = root / "train-data"
        size = "128x224" if cpu else "240x427"
        made = _run([*VCSEG, "synth", str(data), "--videos", "4", "--frames", "12", "--size", size,
                     "--people", "1-3", "--seed", "1"])
        if made.returncode != 0:
            print(made.stdout + made.stderr)
            return 1
        for task in ("memory", "proposals"):
            for precision, channels_last in precisions:
                if time.monotonic() > DEADLINE:
                    results.append((False, f"{task} {precision}: skipped, past the {BUDGET_S} s budget"))
                    continue
                run = root / f"run-{task}-{precision}"
                results.append(train_killed_and_resumed(data, run, task, precision, channels_last, steps, device))
        checkpoint = root / f"run-memory-{precisions[0][0]}" / "checkpoints" / "last.pt"
        if checkpoint.is_file():
            results.append(predict(data, checkpoint, root / "pred-sharded", "cpu" if cpu else "cuda", sharded=True))
            video = root / "video-480"
            _run([*VCSEG, "synth", str(video), "--videos", "2", "--frames", "8" if cpu else "60",
                  "--size", "480x854", "--people", "2-3", "--seed", "2"])
            results.append(predict(video, checkpoint, root / "pred-480", "cpu" if cpu else "cuda", sharded=False))
    print("\n== gpu-check" + (" (CPU dry run)" if cpu else ""))
    for ok, line in results:
        print(("ok    " if ok else "FAIL  ") + line)
    return 0 if all(ok for ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
