from __future__ import annotations

import json
import zipfile

import pytest
from rich.console import Console

from vcseg.demo import DemoConfig, run_demo
from vcseg.errors import VcsegError


def test_demo_runs_every_stage(tmp_path):
    config = DemoConfig(videos=2, frames=5, height=64, width=96, people_min=1, people_max=2, seed=1)
    console = Console(record=True, width=120)
    figures = run_demo(tmp_path / "demo", console, config, workers=1)
    out = tmp_path / "demo"
    score = json.loads((out / "score.json").read_text())
    assert score["JF_mean"] == pytest.approx(figures["JF_mean"])
    assert 0.0 <= figures["JF_mean"] <= 1.0
    with zipfile.ZipFile(out / "submission.zip") as archive:
        names = archive.namelist()
    assert len(names) == 10 and {n.split("/")[0] for n in names} == {"synth0000", "synth0001"}
    text = console.export_text()
    for step in ("vcseg synth", "vcseg ingest", "copy-forward", "vcseg score", "vcseg pack"):
        assert step in text
    # a second run replaces the previous demo output
    run_demo(out, Console(file=open("/dev/null", "w")), config, workers=1)


def test_demo_refuses_a_foreign_folder(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(VcsegError, match="not a previous demo output"):
        run_demo(tmp_path, Console(), DemoConfig(videos=1, frames=2, height=64, width=96))
    assert (tmp_path / "mine.txt").read_text() == "keep me"
