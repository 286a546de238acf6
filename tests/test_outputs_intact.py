"""No command deletes or overwrites a file it did not create in its output (issue: never lose a result).

A user's files are planted in every kind of output folder a command writes (at the top and, where
the command writes sub-folders, inside them); each command runs twice the way a user reruns it
(with --overwrite / another setting where it has one), and every planted file is found intact.
"""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from tests.infer.conftest import save_tiny_checkpoint
from tests.train.conftest import TINY_MODEL
from vcseg.cli import main

PLANTED = b"a user's file: never to be touched\n"


def plant(*folders: Path) -> list[Path]:
    paths = []
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("notes.txt", ".hidden-notes"):
            (folder / name).write_bytes(PLANTED)
            paths.append(folder / name)
    return paths


def run(*args: str | Path) -> str:
    result = CliRunner().invoke(main, [str(arg) for arg in args])
    assert result.exit_code == 0, result.output
    return result.output


def test_every_output_folder_keeps_the_users_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # ingest's default index lands here, next to the planted files
    planted = plant(tmp_path)

    # synth, then again with --overwrite: its own earlier files go, the user's stay
    data, test = tmp_path / "data", tmp_path / "test"
    for round in range(2):
        run("synth", data, "--videos", 2, "--frames", 4, "--size", "48x64", "--people", "1-2", "--seed", 1,
            "--overwrite")
        run("synth", test, "--videos", 1, "--frames", 4, "--size", "48x64", "--people", "1-2", "--seed", 2,
            "--frames-only", "--overwrite")
        if round == 0:
            video = next((data / "JPEGImages").iterdir()).name
            planted += plant(data, data / "JPEGImages" / video, test)

    # compose, then again with --overwrite
    composed = tmp_path / "composed"
    for round in range(2):
        run("compose", data, "--out", composed, "--videos", 1, "--people", "2-2", "--seed", 0, "--overwrite")
        if round == 0:
            planted += plant(composed, composed / "Annotations")

    # ingest: the index (default: the working folder) and the frame cache, twice
    cache = tmp_path / "cache"
    planted += plant(cache)
    for _ in range(2):
        run("ingest", data, "--cache", cache, "--short-side", 32, "--workers", 1)
        run("ingest", data, "--index", tmp_path / "indexes" / "data.json", "--workers", 1)
    planted += plant(tmp_path / "indexes")
    run("ingest", data, "--index", tmp_path / "indexes" / "data.json", "--workers", 1)

    # predict, twice with another setting (every video redone), then never resumed
    checkpoint = save_tiny_checkpoint(tmp_path / "models" / "tiny.pt")
    pred = tmp_path / "pred"
    planted += plant(pred, pred / video)
    for size in ("32", "40"):
        run("predict", "--video-dir", data, "--first-masks", data, "--out", pred, "--checkpoint", checkpoint,
            "--size", size)
    run("predict", "--video-dir", data, "--first-masks", data, "--out", pred, "--checkpoint", checkpoint,
        "--size", "32", "--resume", "never")

    # score's JSON and CSV, pack's zip: into folders holding the user's files, twice (pack packs a
    # prediction of its own: it refuses a folder with extra files, rightly)
    clean = tmp_path / "pred-clean"
    run("predict", "--video-dir", data, "--first-masks", data, "--out", clean, "--checkpoint", checkpoint,
        "--size", "32")
    scores, submissions = tmp_path / "scores", tmp_path / "submissions"
    planted += plant(scores, submissions)
    for _ in range(2):
        run("score", "--pred", pred, "--gt", data, "--json", scores / "score.json", "--csv", scores / "score.csv",
            "--workers", 1)
        run("pack", clean, "--frames", data, "--out", submissions / "pred.zip")

    # viz and report: into folders holding the user's files, twice
    viz, reports = tmp_path / "viz", tmp_path / "reports"
    planted += plant(viz, reports)
    for _ in range(2):
        run("viz", clean, "--frames", data, "--gt", data, "--out", viz, "--workers", 1)
        run("report", clean, "--gt", data, "--frames", data, "--out", reports / "report.html", "--workers", 1)

    # train into a run folder (and its checkpoints/), resumed; export beside the user's files
    run_dir = tmp_path / "run"
    planted += plant(run_dir, run_dir / "checkpoints")
    tiny = [f"--set={item}" for item in TINY_MODEL] + [
        f"--set=data.root={data}", "--set=data.short_side=48", "--set=data.crop=[48, 64]",
        "--set=data.max_objects=2", "--set=data.workers=0", "--set=train.batch_size=1",
        "--set=train.warmup_steps=1", "--set=train.steps=1", "--set=train.max_skip=[1]",
        "--set=train.max_skip_at=[0.0]", "--set=train.precision=fp32"]
    run("train", "--config", Path(__file__).parents[1] / "configs" / "demo.toml", "--out", run_dir, *tiny)
    run("train", "--out", run_dir, "--resume", "--set", "train.steps=2")
    weights = tmp_path / "weights"
    planted += plant(weights)
    for _ in range(2):
        run("export", "--memory", run_dir / "checkpoints" / "last.pt", "--out", weights / "mine.pt")

    for path in planted:
        assert path.read_bytes() == PLANTED, f"{path} was changed or deleted"
