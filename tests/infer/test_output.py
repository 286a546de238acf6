"""predict's output folder: it owns its files and nothing else, resumes by content, one run at a time."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tests.conftest import make_video, person_masks
from tests.infer.conftest import save_tiny_checkpoint
from vcseg.cli import main
from vcseg.errors import VcsegError
from vcseg.infer.dataset import predict_dataset
from vcseg.infer.models import resolve_checkpoints
from vcseg.infer.options import PredictOptions
from vcseg.infer.output import PredictOutput, check_not_inside_inputs
from vcseg.io.masks import read_mask, write_mask
from vcseg.io.outputs import OutputBusy, OutputLock

OPTIONS = PredictOptions(size=32, mem_every=2, mem_size=2)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def dataset(tmp_path):
    """Two DAVIS-layout videos of 3 frames, 24 x 32, with masks on every frame."""
    root = tmp_path / "data"
    for name in ("a", "b"):
        make_video(root, name, person_masks(3))
    return root


def listing(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


# ---- 1. predict never deletes input frames or user files -----------------------------------------

def test_out_may_not_be_or_overlap_an_input(tmp_path):
    frames, masks = tmp_path / "flat", tmp_path / "masks"
    for root in (frames, masks):
        (root / "v").mkdir(parents=True)
    for out, relation in ((frames, "is"), (frames / "pred", "lies inside"), (tmp_path, "contains")):
        with pytest.raises(VcsegError, match=f"--out {out} {relation} the --video-dir folder"):
            check_not_inside_inputs(out, {"--video-dir": frames, "--first-masks": None})
    with pytest.raises(VcsegError, match="the --first-masks folder"):
        check_not_inside_inputs(masks / "v", {"--video-dir": frames, "--first-masks": masks})
    check_not_inside_inputs(tmp_path / "pred", {"--video-dir": frames, "--first-masks": masks})


def test_predict_into_its_own_frames_folder_is_refused_and_deletes_nothing(tmp_path, checkpoint):
    flat = tmp_path / "flat"
    make_video(flat, "v", person_masks(3), layout="flat")  # frames and masks side by side
    before = listing(flat)
    result = CliRunner().invoke(main, ["predict", "--video-dir", str(flat), "--out", str(flat),
                                       "--first-masks", str(flat), "--checkpoint", str(checkpoint), "--size", "32"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip().splitlines() == [f"Error: --out {flat} is the --video-dir folder {flat}; "
                                                  "predictions need a folder of their own, e.g. --out pred/"]
    assert listing(flat) == before


def test_user_files_in_the_output_survive_every_rerun(dataset, tmp_path, checkpoint):
    out = tmp_path / "pred"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    predict_dataset(dataset, out, [checkpoint], dataset, OPTIONS)
    (out / "a" / "notes.txt").write_text("mine too")
    (out / "a" / "extra.png").write_bytes(b"not a mask predict wrote")
    predict_dataset(dataset, out, [checkpoint], dataset, PredictOptions(size=48, mem_every=2, mem_size=2))
    predict_dataset(dataset, out, [checkpoint], dataset, OPTIONS, resume="never")
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "a" / "notes.txt").read_text() == "mine too"
    assert (out / "a" / "extra.png").read_bytes() == b"not a mask predict wrote"


def test_a_png_predict_did_not_write_stops_the_run_unless_overwrite(dataset, tmp_path, checkpoint):
    out = tmp_path / "pred"
    theirs = np.full((24, 32), 5, np.uint8)
    write_mask(out / "b" / "00001.png", theirs)  # another tool's mask where predict would write
    (out / "b" / "readme.txt").parent.mkdir(exist_ok=True)
    (out / "b" / "readme.txt").write_text("theirs")
    with pytest.raises(VcsegError, match=r"pred/b/00001.png: not written by vcseg predict into this output; "
                                         "choose another --out, or pass --overwrite"):
        predict_dataset(dataset, out, [checkpoint], dataset, OPTIONS)
    assert not (out / "a").exists()  # refused before any video was predicted
    np.testing.assert_array_equal(read_mask(out / "b" / "00001.png"), theirs)
    summary = predict_dataset(dataset, out, [checkpoint], dataset, OPTIONS, overwrite=True)
    assert summary.predicted == ["a", "b"]
    assert read_mask(out / "b" / "00001.png").max() <= 2  # predict's mask now
    assert (out / "b" / "readme.txt").read_text() == "theirs"


def test_a_frame_that_left_the_video_takes_its_old_mask_along(tmp_path, checkpoint):
    data = tmp_path / "data"
    make_video(data, "a", person_masks(4))
    out = tmp_path / "pred"
    predict_dataset(data, out, [checkpoint], data, OPTIONS)
    (data / "JPEGImages" / "a" / "00003.jpg").unlink()
    (data / "Annotations" / "a" / "00003.png").unlink()
    summary = predict_dataset(data, out, [checkpoint], data, OPTIONS)
    assert summary.redone == {"a": "frames changed; first_masks changed"}
    assert sorted(p.name for p in (out / "a").iterdir()) == ["00000.png", "00001.png", "00002.png"]


# ---- 3. resume by content ------------------------------------------------------------------------

def test_resume_redoes_what_another_setting_would_make_otherwise(dataset, tmp_path, checkpoint):
    out = tmp_path / "pred"
    predict_dataset(dataset, out, [checkpoint], dataset, OPTIONS)
    again = predict_dataset(dataset, out, [checkpoint], dataset, OPTIONS)
    assert again.skipped == ["a", "b"] and again.predicted == []

    size = predict_dataset(dataset, out, [checkpoint], dataset, PredictOptions(size=48, mem_every=2, mem_size=2))
    assert size.redone == {"a": "run.options.size 32 -> 48", "b": "run.options.size 32 -> 48"}

    other = save_tiny_checkpoint(tmp_path / "other.pt", seed=1)
    model = predict_dataset(dataset, out, [other], dataset, PredictOptions(size=48, mem_every=2, mem_size=2))
    assert model.redone["a"] == "run.checkpoints changed"

    masks = tmp_path / "masks"
    shutil.copytree(dataset / "Annotations", masks)
    write_mask(masks / "b" / "00000.png", np.zeros((24, 32), np.uint8) + (person_masks(1)[0] == 1))
    first = predict_dataset(dataset, out, [other], masks, PredictOptions(size=48, mem_every=2, mem_size=2))
    assert first.redone == {"b": "first_masks changed"} and first.skipped == ["a"]

    # the same frames in another folder are the same input; a re-encoded frame is not
    moved = tmp_path / "moved"
    shutil.copytree(dataset, moved)
    same = predict_dataset(moved, out, [other], masks, PredictOptions(size=48, mem_every=2, mem_size=2))
    assert same.skipped == ["a", "b"]
    from PIL import Image
    Image.open(moved / "JPEGImages" / "a" / "00001.jpg").save(moved / "JPEGImages" / "a" / "00001.jpg", quality=20)
    frames = predict_dataset(moved, out, [other], masks, PredictOptions(size=48, mem_every=2, mem_size=2))
    assert frames.redone == {"a": "frames changed"}

    never = predict_dataset(moved, out, [other], masks, PredictOptions(size=48, mem_every=2, mem_size=2),
                            resume="never")
    assert never.redone == {"a": "--resume never", "b": "--resume never"}


def test_a_damaged_png_is_not_complete(dataset, tmp_path, checkpoint):
    out = tmp_path / "pred"
    predict_dataset(dataset, out, [checkpoint], dataset, OPTIONS)
    damaged = out / "b" / "00002.png"
    damaged.write_bytes(damaged.read_bytes()[:40])  # truncated: the name is there, the mask is not
    summary = predict_dataset(dataset, out, [checkpoint], dataset, OPTIONS)
    assert summary.skipped == ["a"]
    assert summary.redone == {"b": f"{damaged} is not the file predict wrote (damaged or edited)"}
    assert read_mask(damaged).shape == (24, 32)


def test_a_record_left_while_writing_means_redo(dataset, tmp_path, checkpoint):
    out = tmp_path / "pred"
    predict_dataset(dataset, out, [checkpoint], dataset, OPTIONS)
    record_path = out / ".vcseg-predict" / "videos" / "a.json"
    record = json.loads(record_path.read_text())
    record_path.write_text(json.dumps({**record, "state": "writing"}))  # killed among the moves
    summary = predict_dataset(dataset, out, [checkpoint], dataset, OPTIONS)
    assert summary.redone == {"a": "an earlier run stopped while writing it"}


def test_orphan_temporaries_of_killed_writes_are_cleaned(dataset, tmp_path, checkpoint):
    out = tmp_path / "pred"
    predict_dataset(dataset, out, [checkpoint], dataset, OPTIONS)
    orphan = out / f".predict_log.json.x1y2z3.{dead_pid()}.tmp"
    orphan.write_text("{")
    live = out / f".predict_log.json.a1b2c3.{os.getppid()}.tmp"  # a live process's: left alone
    live.write_text("{")
    mine = out / ".notes.tmp"
    mine.write_text("a user's")
    predict_dataset(dataset, out, [checkpoint], dataset, OPTIONS)
    assert not orphan.exists() and live.exists() and mine.read_text() == "a user's"


# ---- 2. one run at a time ------------------------------------------------------------------------

def test_a_second_run_on_a_locked_output_is_refused(dataset, tmp_path, checkpoint):
    out = tmp_path / "pred"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from vcseg.io.outputs import OutputLock\n"
        f"lock = OutputLock({str(out / '.vcseg-predict' / 'lock')!r}, 'vcseg predict').acquire()\n"
        "print('held', flush=True); time.sleep(60)")], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(OutputBusy, match=rf"pred: in use by vcseg predict \(pid {holder.pid} on "):
            predict_dataset(dataset, out, [checkpoint], dataset, OPTIONS)
        # a shard of a sharded run is turned away too, while an unsharded run holds OUT
        with pytest.raises(OutputBusy):
            predict_dataset(dataset, out, [checkpoint], dataset, OPTIONS, shard=(0, 2))
    finally:
        holder.kill()
        holder.wait()
    assert predict_dataset(dataset, out, [checkpoint], dataset, OPTIONS).predicted == ["a", "b"]


def test_shards_of_one_run_share_the_output_but_not_a_shard():
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        first = PredictOutput(folder, (0, 2)).locked()
        second = PredictOutput(folder, (1, 2)).locked()
        # the same process takes a lock again freely (re-entrant); a fresh descriptor is what another
        # process would hold, so try the locks through a child
        with first, second:
            code = ("from vcseg.infer.output import PredictOutput\nimport sys\n"
                    f"try:\n    PredictOutput({folder!r}, (int(sys.argv[1]), int(sys.argv[2]))).locked().__enter__()\n"
                    "except Exception as e:\n    print(type(e).__name__)\nelse:\n    print('ok')")
            answers = [subprocess.run([sys.executable, "-c", code, *shard], capture_output=True, text=True,
                                      cwd=REPO).stdout.strip() for shard in (("1", "2"), ("0", "1"))]
        assert answers == ["OutputBusy", "OutputBusy"]  # shard 1/2 is taken; a whole run waits for the shards
    with tempfile.TemporaryDirectory() as folder, OutputLock(Path(folder) / "lock", "x", shared=True):
        code = ("from vcseg.infer.output import PredictOutput\n"
                f"PredictOutput({folder!r}, (1, 2)).locked().__enter__(); print('ok')")
        assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              cwd=REPO).stdout.strip() == "ok"


@pytest.mark.slow
def test_two_concurrent_predicts_one_finishes_the_other_exits_at_once(tmp_path, checkpoint):
    data = tmp_path / "data"
    for name in ("a", "b", "c", "d"):
        make_video(data, name, person_masks(6, height=48, width=64))
    command = [sys.executable, "-m", "vcseg.cli", "predict", "--video-dir", str(data), "--first-masks", str(data),
               "--checkpoint", str(checkpoint), "--size", "48"]
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}
    out = tmp_path / "pred"
    first = subprocess.Popen([*command, "--out", str(out)], cwd=tmp_path, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lock = out / ".vcseg-predict" / "lock"
    deadline = time.monotonic() + 60
    while not (lock.is_file() and f"pid {first.pid} " in lock.read_text()):
        assert time.monotonic() < deadline and first.poll() is None, "the first run never took the lock"
        time.sleep(0.02)
    started = time.perf_counter()
    second = subprocess.run([*command, "--out", str(out)], cwd=tmp_path, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    first_running = first.poll() is None
    first_output = first.communicate(timeout=300)[0]
    assert first.returncode == 0, first_output
    assert second.returncode == 1
    lines = (second.stdout + second.stderr).strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {out}: in use by vcseg predict (pid "
                                                   f"{first.pid} on ")
    assert first_running, "the second run waited for the first instead of leaving at once"
    print(f"second run refused in {seconds:.2f} s")
    # the finished output is what a run alone makes, byte for byte
    alone = tmp_path / "alone"
    subprocess.run([*command, "--out", str(alone)], cwd=tmp_path, env=env, check=True, capture_output=True)
    for name in ("a", "b", "c", "d"):
        assert listing(out / name) == listing(alone / name)


# ---- 4, 7. outputs checked first; empty videos said; default weights from anywhere ----------------

def test_unwritable_out_is_one_line(dataset, tmp_path, checkpoint, unwritable_dir):
    for out in (unwritable_dir / "pred", dataset / "JPEGImages" / "a" / "00000.jpg" / "pred"):
        result = CliRunner().invoke(main, ["predict", "--video-dir", str(dataset), "--first-masks", str(dataset),
                                           "--out", str(out),
                                           "--checkpoint", str(checkpoint), "--size", "32"])
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1 and str(out) in result.output


def test_an_empty_video_folder_is_named(dataset, tmp_path, checkpoint):
    (dataset / "JPEGImages" / "empty").mkdir()
    result = CliRunner().invoke(main, ["predict", "--video-dir", str(dataset), "--first-masks", str(dataset),
                                       "--out", str(tmp_path / "pred"), "--checkpoint", str(checkpoint),
                                       "--size", "32"])
    assert result.exit_code == 0, result.output
    assert f"warning: {dataset / 'JPEGImages' / 'empty'}: no frames; no masks written for it" in result.output
    assert "predicted 2 video(s)" in result.output


def test_default_weights_are_found_from_any_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VCSEG_WEIGHTS", raising=False)
    if not (REPO / "weights" / "default.pt").is_file():
        pytest.skip("no weights/default.pt in this checkout")
    assert resolve_checkpoints([]) == [REPO / "weights" / "default.pt"]
    monkeypatch.setenv("VCSEG_WEIGHTS", str(tmp_path / "mine.pt"))
    with pytest.raises(VcsegError, match="mine.pt: no such checkpoint"):
        resolve_checkpoints([])
    (tmp_path / "mine.pt").write_bytes(b"")
    assert resolve_checkpoints([]) == [tmp_path / "mine.pt"]
