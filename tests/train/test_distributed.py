from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.train.conftest import TINY_MODEL
from vcseg.model.checkpoint import load_checkpoint


def _config_file(path: Path, root: Path) -> Path:
    lines = []
    sections: dict[str, list[str]] = {}
    for override in [*TINY_MODEL, f'data.root="{root}"', "data.short_side=64", "data.crop=[64, 96]",
                     "data.max_objects=2", "data.workers=0", "train.batch_size=2", "train.steps=2",
                     "train.warmup_steps=1", "train.log_every=1", "train.max_skip=[2]", "train.max_skip_at=[0.0]"]:
        key, value = override.split("=", 1)
        section, name = key.split(".")
        if section == "model" and not value.lstrip("-").isdigit():
            value = f'"{value}"'
        sections.setdefault(section, []).append(f"{name} = {value}")
    for section, entries in sections.items():
        lines += [f"[{section}]", *entries, ""]
    path.write_text("\n".join(lines))
    return path


@pytest.mark.slow
def test_two_process_gloo_run(tiny_videos, tmp_path):
    """The same `vcseg train` under torchrun with 2 CPU processes (gloo): rank 0 alone writes."""
    config = _config_file(tmp_path / "ddp.toml", tiny_videos)
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NO_ALBUMENTATIONS_UPDATE": "1"}
    done = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "vcseg.cli", "train",
                           "--config", str(config), "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "finished at step 2" in done.stdout
    assert done.stdout.count("finished at step") == 1  # only rank 0 reports
    state = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert state["train"]["step"] == 2
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["last.pt"]
    rows = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["1", "2"]
