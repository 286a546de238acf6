from __future__ import annotations

import contextlib
import csv
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.train.conftest import tiny_config
from vcseg.errors import VcsegError
from vcseg.model.checkpoint import load_checkpoint, load_memory_network
from vcseg.train import loop
from vcseg.train.loop import train
from vcseg.train.tasks import clip_loss

# What the exact-resume tests check, whatever machine runs them: the CPU in fp32, deterministic.
EXACT = ("train.device=cpu", "train.precision=fp32", "train.deterministic=true")


def test_training_lowers_the_loss(tiny_videos, tmp_path):
    config = tiny_config(tiny_videos, "train.steps=40", "train.lr=1e-3", "train.bootstrap_start=1.0",
                         "train.bootstrap_end=1.0", "train.checkpoint_every=1000")
    summary = train(config, tmp_path / "run")
    losses = [r.loss for r in summary.history]
    cross_entropy = [r.cross_entropy for r in summary.history]
    assert len(losses) == 40
    # from random weights: the total loss drops by a third, the pixel loss by more than half
    assert np.mean(losses[-10:]) < 0.7 * np.mean(losses[:3]), losses
    assert np.mean(cross_entropy[-10:]) < 0.5 * np.mean(cross_entropy[:3]), cross_entropy
    rows = list(csv.DictReader((tmp_path / "run" / "log.csv").open()))
    assert [int(r["step"]) for r in rows] == list(range(1, 41))
    assert float(rows[-1]["loss"]) == pytest.approx(losses[-1], abs=1e-6)
    # the checkpoint loads for inference without the training state
    model, loaded = load_memory_network(tmp_path / "run" / "checkpoints" / "last.pt")
    assert loaded == loop.with_input_normalisation(config, "model") and not model.training


def test_resume_reproduces_the_next_steps(tiny_videos, tmp_path):
    config = tiny_config(tiny_videos, "train.steps=4", "train.checkpoint_every=1000", *EXACT)
    straight = [r.loss for r in train(config, tmp_path / "a").history]
    first = train(config, tmp_path / "b", stop_after=2)
    assert first.interrupted and first.steps_done == 2 and first.stopped_by == "stop_after"
    assert load_checkpoint(first.last_checkpoint)["train"]["step"] == 2
    resumed = train(None, tmp_path / "b", resume=True)
    assert [r.step for r in resumed.history] == [3, 4]
    assert [r.loss for r in first.history + resumed.history] == straight  # exactly, not approximately
    rows = list(csv.DictReader((tmp_path / "b" / "log.csv").open()))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]


def test_ctrl_c_checkpoints_at_the_end_of_the_step(tiny_videos, tmp_path):
    config = tiny_config(tiny_videos, "train.steps=5", "train.checkpoint_every=1000")

    def interrupt(result, samples_per_s):
        if result.step == 2:
            os.kill(os.getpid(), signal.SIGINT)

    summary = train(config, tmp_path / "run", on_step=interrupt)
    assert summary.interrupted and summary.steps_done == 2 and summary.stopped_by == "interrupt"
    assert load_checkpoint(summary.last_checkpoint)["train"]["step"] == 2


def test_refuses_to_overwrite_or_resume_nothing(tiny_videos, tmp_path):
    config = tiny_config(tiny_videos, "train.steps=1")
    with pytest.raises(VcsegError, match="nothing to resume"):
        train(None, tmp_path / "run", resume=True)
    train(config, tmp_path / "run")
    with pytest.raises(VcsegError, match="already holds a training run"):
        train(config, tmp_path / "run")


def test_clip_loss_ignores_padded_slots():
    masks = torch.zeros(1, 3, 2, 4, 4)
    masks[:, :, 0, :2] = 1  # slot 0 on the top half in every frame, slot 1 padded
    logits = torch.zeros(1, 2, 3, 4, 4)
    logits[:, :, 1, :2] = 10.0  # confident and right
    logits[:, :, 0, 2:] = 10.0
    loss, cross_entropy, dice = clip_loss(logits, masks, torch.tensor([[True, False]]), 1.0, 1.0)
    assert cross_entropy.item() < 1e-3 and dice.item() < 1e-3 and loss.item() < 2e-3


def test_proposal_task_trains_through_the_same_loop(tiny_videos, tmp_path):
    from click.testing import CliRunner

    from vcseg.cli import main
    from vcseg.train.tasks import ProposalTask

    config_file = tmp_path / "p.toml"
    config_file.write_text(f'[data]\nroot = "{tiny_videos}"\nshort_side = 64\ncrop = [64, 96]\nworkers = 0\n'
                           '[train]\nsteps = 3\nbatch_size = 2\nwarmup_steps = 1\nlog_every = 1\n'
                           '[proposals]\nencoder = "resnet18"\ndecoder_channels = 32\nhead_channels = 16\n')
    result = CliRunner().invoke(main, ["train", "--config", str(config_file), "--out", str(tmp_path / "run"),
                                       "--task", "proposals"])
    assert result.exit_code == 0, result.output
    state = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert list(state["models"]) == ["proposals"] and state["config"]["train"]["task"] == "proposals"
    header = (tmp_path / "run" / "log.csv").read_text().splitlines()[0].split(",")
    assert header[:5] == ["step", "loss", *ProposalTask.parts]
    with pytest.raises(VcsegError, match="holds no memory network"):
        load_memory_network(tmp_path / "run" / "checkpoints" / "last.pt")


def test_validation_keeps_the_best_checkpoint(tiny_videos, tmp_path):
    from vcseg.data.ingest import ingest
    from vcseg.io.atomic import write_json_atomic
    from vcseg.validation import validator_from_config

    index = ingest(tiny_videos, val_fraction=0.5, seed=0, workers=1).index
    write_json_atomic(tmp_path / "index.json", index)
    config = tiny_config(tiny_videos, "train.steps=4", "train.val_every=2", "train.val_frames=4",
                         "train.checkpoint_every=1000", f"data.index={tmp_path / 'index.json'}")
    validator = validator_from_config(config, max_videos=1, max_frames=4)
    assert [v.name for v in validator.videos] == index["split"]["val"]
    train(config, tmp_path / "run", validate=validator)
    rows = list(csv.DictReader((tmp_path / "run" / "val.csv").open()))
    assert [int(r["step"]) for r in rows] == [2, 4]
    scores = [float(r["JF_mean"]) for r in rows]
    assert all(0.0 <= s <= 1.0 for s in scores)
    best = load_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt")
    assert best["train"]["step"] == (2 if scores[0] >= scores[1] else 4)
    assert best["train"]["best_score"] == pytest.approx(max(scores), abs=1e-6)
    # the video the model trains on is not among those it is validated on
    from vcseg.train.tasks import train_videos
    assert set(train_videos(config)).isdisjoint(index["split"]["val"])


LOCK_HOLDER = """
import sys, time
from vcseg.io.outputs import OutputBusy, OutputLock
try:
    lock = OutputLock(sys.argv[1], "vcseg train").acquire()
except OutputBusy:
    print("busy", flush=True)
    sys.exit(0)
print("held", flush=True)
if sys.argv[2] == "hold":
    time.sleep(120)
"""


def try_lock_elsewhere(path: Path, hold: bool = False) -> subprocess.Popen:
    """Another process taking the `OutputLock` at `path` (locks are re-entrant within one process)."""
    return subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(path), "hold" if hold else "once"],
                            stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2])


@contextlib.contextmanager
def lock_held_elsewhere(path: Path) -> Iterator[int]:
    """Another process holds the lock at `path` for the duration; yields its pid."""
    holder = try_lock_elsewhere(path, hold=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder.pid
    finally:
        holder.kill()
        holder.wait()


def _dead_pid() -> int:
    """The pid of a process that has finished (and been reaped)."""
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    return finished.pid


def test_training_removes_orphan_temporaries_and_keeps_other_files(tiny_videos, tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    dead = _dead_pid()
    orphans = [run / "checkpoints" / f".last.pt.k2j4x9.{dead}.tmp", run / f".config.json.a8f0q1.{dead}.tmp"]
    for orphan in orphans:
        orphan.write_bytes(b"half a checkpoint")
    (run / "notes.txt").write_text("lr sweep: try 3e-4 next")
    (run / "checkpoints" / ".keep.tmp").write_text("not a vcseg temporary")  # no pid: not ours
    train(tiny_config(tiny_videos, "train.steps=1"), run)
    assert not any(orphan.exists() for orphan in orphans)
    assert (run / "notes.txt").read_text() == "lr sweep: try 3e-4 next"
    assert (run / "checkpoints" / ".keep.tmp").read_text() == "not a vcseg temporary"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [".keep.tmp", "last.pt"]


def test_training_holds_the_run_lock_while_it_runs(tiny_videos, tmp_path):
    from vcseg.io.outputs import OutputBusy

    run = tmp_path / "run"
    attempts: list[str] = []

    def try_lock(result, samples_per_s):
        if result.step == 1:
            attempts.append(try_lock_elsewhere(run / loop.LOCK_NAME).communicate()[0].strip())

    train(tiny_config(tiny_videos, "train.steps=2"), run, on_step=try_lock)
    assert attempts == ["busy"]  # another process is turned away during training
    assert try_lock_elsewhere(run / loop.LOCK_NAME).communicate()[0].strip() == "held"  # released after
    with lock_held_elsewhere(run / loop.LOCK_NAME) as pid:
        with pytest.raises(OutputBusy, match=f"in use by vcseg train \\(pid {pid} "):
            train(None, run, resume=True, resume_overrides=["train.steps=3"])
    assert load_checkpoint(run / "checkpoints" / "last.pt")["train"]["step"] == 2  # nothing trained


def test_resume_from_a_checkpoint_written_before_plain_rng_states(tiny_videos, tmp_path):
    """Checkpoints of earlier versions hold the numpy RNG state as a numpy array; they resume exactly."""
    config = tiny_config(tiny_videos, "train.steps=4", "train.checkpoint_every=1000", *EXACT)
    straight = [r.loss for r in train(config, tmp_path / "a").history]
    first = train(config, tmp_path / "b", stop_after=2)
    payload = torch.load(first.last_checkpoint, weights_only=False)  # our own file
    kind, key, position, has_gauss, cached = payload["train"]["rng"]["numpy"]
    payload["train"]["rng"]["numpy"] = (kind, key.numpy().astype(np.uint32), position, has_gauss, cached)
    torch.save(payload, first.last_checkpoint)  # as the earlier versions wrote it
    assert "numpy.ndarray" in torch.serialization.get_unsafe_globals_in_checkpoint(first.last_checkpoint)
    resumed = train(None, tmp_path / "b", resume=True)
    assert [r.step for r in resumed.history] == [3, 4]
    assert [r.loss for r in first.history + resumed.history] == straight


def test_parameter_groups_put_the_encoders_at_their_own_rate():
    from vcseg.model.proposals import ProposalConfig, ProposalNetwork

    model = ProposalNetwork(ProposalConfig(encoder="resnet18", decoder_channels=32, head_channels=16))
    single = loop.parameter_groups(model, 1e-3)
    assert len(single) == 1 and len(single[0]["params"]) == len(list(model.parameters()))
    rest, encoder = loop.parameter_groups(model, 1e-3, encoder_lr_scale=0.1)
    assert (rest["lr"], encoder["lr"]) == (1e-3, pytest.approx(1e-4))
    assert {id(p) for p in encoder["params"]} == {id(p) for p in model.encoder.parameters()}
    assert {id(p) for p in rest["params"]} | {id(p) for p in encoder["params"]} == {id(p) for p in model.parameters()}


def test_an_encoder_rate_of_zero_keeps_the_encoders_weights(tiny_videos, tmp_path):
    config = tiny_config(tiny_videos, "train.steps=3", "train.warmup_steps=0", "train.checkpoint_every=1000",
                         "train.encoder_lr_scale=0", *EXACT)
    first = train(config, tmp_path / "run", stop_after=1)
    before = load_checkpoint(first.last_checkpoint)["models"]["memory"]
    train(None, tmp_path / "run", resume=True)
    after = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["models"]["memory"]
    model = loop.make_task(config).build_model()
    parameters = {name for name, _ in model.named_parameters()}
    encoders = [n for n in parameters if n.split(".", 1)[0] in loop.ENCODER_MODULES]
    others = parameters - set(encoders)
    assert encoders and others
    assert all(torch.equal(before[n], after[n]) for n in encoders)
    assert any(not torch.equal(before[n], after[n]) for n in others)
