"""`vcseg train` and `vcseg export` through the CLI: exit codes that say whether the run is done,
extending a finished run, and outputs checked before any work."""

from __future__ import annotations

import csv
import json
import os
import signal

import pytest
import torch
from click.testing import CliRunner

from tests.train.conftest import TINY_MODEL
from tests.train.test_loop import lock_held_elsewhere
from vcseg.cli import main
from vcseg.model.checkpoint import load_checkpoint
from vcseg.train import loop
from vcseg.train.schedule import lr_factor


@pytest.fixture
def tiny_toml(tiny_videos, tmp_path):
    """A TOML config for the tiny memory network (the settings of `tiny_config`)."""
    model = "\n".join(f"{key.split('.')[1]} = {_toml(value)}" for key, value in
                      (item.split("=") for item in TINY_MODEL))
    path = tmp_path / "tiny.toml"
    path.write_text(f"[model]\n{model}\n"
                    f'[data]\nroot = "{tiny_videos}"\nshort_side = 64\ncrop = [64, 96]\nmax_objects = 2\n'
                    "workers = 0\n"
                    "[train]\nbatch_size = 2\nwarmup_steps = 1\nlog_every = 1\nmax_skip = [2]\n"
                    "max_skip_at = [0.0]\ncheckpoint_every = 1000\nlr = 1e-3\n")
    return path


def _toml(value: str) -> str:
    return value if value.isdigit() else f'"{value}"'


def _train(*args: str):
    return CliRunner().invoke(main, ["train", *args])


def _one_line_error(result) -> bool:
    lines = [line for line in result.output.splitlines() if line.strip()]
    return result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("Error: ") \
        and "Traceback" not in result.output


def _log_steps(run) -> list[int]:
    return [int(row["step"]) for row in csv.DictReader((run / "log.csv").open())]


def test_ctrl_c_exits_130_and_keeps_the_checkpoint(tiny_toml, tmp_path, monkeypatch):
    real_train = loop.train

    def train_pressing_ctrl_c(*args, on_step, **kwargs):
        def pressing(result, samples_per_s):
            on_step(result, samples_per_s)
            if result.step == 2:
                os.kill(os.getpid(), signal.SIGINT)
        return real_train(*args, on_step=pressing, **kwargs)

    monkeypatch.setattr(loop, "train", train_pressing_ctrl_c)
    run = tmp_path / "run"
    result = _train("--config", str(tiny_toml), "--out", str(run), "--set", "train.steps=5")
    assert result.exit_code == 130, result.output
    assert "interrupted at step 2 of 5" in result.output
    assert f"continue with: vcseg train --out {run} --resume" in result.output
    assert load_checkpoint(run / "checkpoints" / "last.pt")["train"]["step"] == 2


def test_stop_after_exits_3_before_the_end_and_0_at_it(tiny_toml, tmp_path):
    run = tmp_path / "run"
    stopped = _train("--config", str(tiny_toml), "--out", str(run), "--set", "train.steps=3", "--stop-after", "1")
    assert stopped.exit_code == 3, stopped.output
    assert "stopped at step 1 of 3 (--stop-after)" in stopped.output and "not finished" in stopped.output
    assert load_checkpoint(run / "checkpoints" / "last.pt")["train"]["step"] == 1
    done = _train("--out", str(run), "--resume", "--stop-after", "3")  # the time box reaches the end
    assert done.exit_code == 0, done.output
    assert "finished at step 3 of 3" in done.output and "not finished" not in done.output
    assert _log_steps(run) == [1, 2, 3]


def test_resume_extends_a_finished_run(tiny_toml, tmp_path):
    run = tmp_path / "run"
    assert _train("--config", str(tiny_toml), "--out", str(run), "--set", "train.steps=2").exit_code == 0
    extended = _train("--out", str(run), "--resume", "--set", "train.steps=4")
    assert extended.exit_code == 0, extended.output
    assert "finished at step 4 of 4" in extended.output
    assert load_checkpoint(run / "checkpoints" / "last.pt")["train"]["step"] == 4
    assert load_checkpoint(run / "checkpoints" / "last.pt")["config"]["train"]["steps"] == 4
    assert json.loads((run / "config.json").read_text())["train"]["steps"] == 4
    rows = list(csv.DictReader((run / "log.csv").open()))
    assert [int(row["step"]) for row in rows] == [1, 2, 3, 4]  # steps 1-2 kept, 3-4 added, none repeated
    # step 3 (0-based 2) follows the schedule of the new length: 1e-3 x cosine at (2 - 1) / (4 - 1)
    assert float(rows[2]["lr"]) == pytest.approx(1e-3 * lr_factor(2, 4, 1), rel=1e-3)


def test_resume_refuses_settings_that_change_the_run(tiny_toml, tmp_path):
    run = tmp_path / "run"
    assert _train("--config", str(tiny_toml), "--out", str(run), "--set", "train.steps=2").exit_code == 0
    before = (run / "checkpoints" / "last.pt").read_bytes()
    changed = _train("--out", str(run), "--resume", "--set", "train.steps=4", "--set", "train.lr=0.1")
    assert _one_line_error(changed), changed.output
    assert "train.lr cannot change a resumed run" in changed.output and "train.steps" in changed.output
    shorter = _train("--out", str(run), "--resume", "--set", "train.steps=2")
    assert _one_line_error(shorter), shorter.output
    assert "already done 2 steps; give more than 2" in shorter.output
    assert (run / "checkpoints" / "last.pt").read_bytes() == before
    assert json.loads((run / "config.json").read_text())["train"]["steps"] == 2


def test_library_resume_goes_on_from_the_last_step(tiny_videos, tmp_path):
    from tests.train.conftest import tiny_config

    loop.train(tiny_config(tiny_videos, "train.steps=2"), tmp_path / "run")
    summary = loop.train(None, tmp_path / "run", resume=True, resume_overrides=["train.steps=4"])
    assert [r.step for r in summary.history] == [3, 4] and not summary.interrupted
    assert summary.total_steps == 4


def test_a_second_training_into_the_same_run_is_refused(tiny_toml, tmp_path):
    run = tmp_path / "run"
    with lock_held_elsewhere(run / loop.LOCK_NAME) as pid:
        result = _train("--config", str(tiny_toml), "--out", str(run), "--set", "train.steps=1")
    assert _one_line_error(result), result.output
    assert f"{run}: in use by vcseg train (pid {pid} " in result.output
    assert not (run / "checkpoints").exists() and not (run / "log.csv").exists()


@pytest.mark.parametrize("where", ["unwritable", "under_a_file"])
def test_train_and_export_check_their_output_first(tiny_toml, tmp_path, request, where):
    if where == "unwritable":
        parent = request.getfixturevalue("unwritable_dir")
        expected = "cannot write there"
    else:
        parent = tmp_path / "notes.txt"
        parent.write_text("mine")
        expected = "which is a file; choose another --out"
    run = parent / "run"
    result = _train("--config", str(tiny_toml), "--out", str(run), "--set", "train.steps=1")
    assert _one_line_error(result), result.output
    assert f"{run}: " in result.output and expected in result.output
    assert not run.exists()

    from tests.train.test_checkpoint import _tiny_memory_checkpoint

    _tiny_memory_checkpoint(tmp_path / "last.pt")
    out = parent / "default.pt"
    result = CliRunner().invoke(main, ["export", "--memory", str(tmp_path / "last.pt"), "--out", str(out)])
    assert _one_line_error(result), result.output
    assert f"{out}: " in result.output and expected in result.output
    assert not out.exists()
    if where == "under_a_file":
        assert parent.read_text() == "mine"


def test_export_into_a_new_folder_still_works(tmp_path):
    from tests.train.test_checkpoint import _tiny_memory_checkpoint

    _tiny_memory_checkpoint(tmp_path / "last.pt")
    out = tmp_path / "new" / "weights.pt"
    result = CliRunner().invoke(main, ["export", "--memory", str(tmp_path / "last.pt"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert all(value.dtype == torch.float16 for value in load_checkpoint(out)["models"]["memory"].values()
               if value.is_floating_point())
