"""Writing synthetic datasets: layout, bytes-level determinism, meta vs masks, OUT handling, CLI."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from vcseg.cli import main
from vcseg.data.synth import META_NAME, SynthConfig, render_video, synthesize
from vcseg.errors import VcsegError
from vcseg.io.frames import image_size
from vcseg.io.layouts import find_dataset
from vcseg.io.masks import MaskKind, read_mask_with_kind

SMALL = SynthConfig(videos=2, frames=4, height=64, width=96, people_min=2, people_max=3, seed=5)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_config_same_bytes_and_other_seed_other_bytes(tmp_path):
    synthesize(tmp_path / "a", SMALL)
    synthesize(tmp_path / "b", SMALL)
    synthesize(tmp_path / "c", dataclasses.replace(SMALL, seed=6))
    a, b, c = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    assert len(a) == 2 * 4 * 2 + 1  # a JPG and a PNG per frame, plus the meta
    assert a == b
    assert a.keys() == c.keys()
    assert a["JPEGImages/synth0000/00000.jpg"] != c["JPEGImages/synth0000/00000.jpg"]


def test_written_masks_agree_with_meta_and_with_in_memory_render(tmp_path):
    meta = synthesize(tmp_path / "out", SMALL)
    assert json.loads((tmp_path / "out" / META_NAME).read_text()) == meta
    for index, (name, record) in enumerate(meta["videos"].items()):
        video = render_video(SMALL, index)
        assert record["height"] == 64 and record["width"] == 96 and record["frames"] == 4
        assert 70 <= record["jpeg_quality"] <= 95 and record["generator_version"]
        for frame in range(4):
            mask, kind = read_mask_with_kind(tmp_path / "out" / "Annotations" / name / f"{frame:05d}.png")
            assert kind is MaskKind.INDEXED
            np.testing.assert_array_equal(mask, video.masks[frame])
            visible = {p["id"] for p in record["people"] if p["visible"][frame]}
            assert set(np.unique(mask).tolist()) - {0} == visible
            for person in record["people"]:
                rows, cols = np.nonzero(mask == person["id"])
                if person["visible"][frame]:
                    assert person["bbox"][frame] == [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]
                    assert person["area"][frame] == rows.size
                else:
                    assert person["bbox"][frame] is None and rows.size == 0
            assert sorted(record["depth_order"][frame]) == [p["id"] for p in record["people"]]


def test_output_is_a_davis_layout_that_find_dataset_reads(tmp_path):
    synthesize(tmp_path / "out", SMALL)
    dataset = find_dataset(tmp_path / "out")
    assert dataset.layout == "davis"
    assert [v.name for v in dataset.videos] == ["synth0000", "synth0001"]
    for video in dataset.videos:
        assert video.stems == ["00000", "00001", "00002", "00003"]
        assert list(video.masks) == video.stems


def test_frames_only_writes_no_masks(tmp_path):
    meta = synthesize(tmp_path / "test", dataclasses.replace(SMALL, frames_only=True))
    assert not (tmp_path / "test" / "Annotations").exists()
    assert len(list((tmp_path / "test" / "JPEGImages" / "synth0001").glob("*.jpg"))) == 4
    assert not find_dataset(tmp_path / "test").has_masks
    assert meta["videos"]["synth0000"]["masks_written"] is False


def test_odd_size_is_written_at_that_size(tmp_path):
    config = SynthConfig(videos=1, frames=1, height=481, width=853, seed=1)
    synthesize(tmp_path / "odd", config)
    assert image_size(tmp_path / "odd" / "JPEGImages" / "synth0000" / "00000.jpg") == (481, 853)
    assert image_size(tmp_path / "odd" / "Annotations" / "synth0000" / "00000.png") == (481, 853)


def test_non_empty_out_is_refused_unless_overwrite_of_a_synth_output(tmp_path):
    out = tmp_path / "out"
    synthesize(out, SMALL)
    with pytest.raises(VcsegError, match="--overwrite"):
        synthesize(out, SMALL)
    synthesize(out, dataclasses.replace(SMALL, videos=1), overwrite=True)
    assert [p.name for p in (out / "JPEGImages").iterdir()] == ["synth0000"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left behind

    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(VcsegError, match="refusing"):
        synthesize(precious, SMALL, overwrite=True)
    assert (precious / "notes.txt").read_text() == "keep me"


def test_real_background_images(tmp_path):
    folder = tmp_path / "bg"
    folder.mkdir()
    for k, colour in enumerate(((200, 30, 30), (30, 30, 200))):
        Image.new("RGB", (50, 40), colour).save(folder / f"bg{k}.png")
    config = dataclasses.replace(SMALL, videos=1, backgrounds=folder, people_min=0, people_max=0)
    video = render_video(config, 0)
    scene = video.meta["scene"]
    expected = (200, 30, 30) if scene == "image:bg0.png" else (30, 30, 200)
    # No people: the frame is the (tinted) image, dominated by its colour.
    assert np.argmax(video.frames[0].reshape(-1, 3).mean(axis=0)) == np.argmax(expected)
    (folder / "bg0.png").unlink()
    (folder / "bg1.png").unlink()
    with pytest.raises(VcsegError, match="no images"):
        synthesize(tmp_path / "out", config)


def test_cli_synth_writes_and_reports_errors(tmp_path):
    runner = CliRunner()
    out = tmp_path / "cli"
    args = ["synth", str(out), "--videos", "2", "--frames", "3", "--size", "64x96", "--people", "1-2",
            "--seed", "3"]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert len(list((out / "Annotations" / "synth0001").glob("*.png"))) == 3
    again = runner.invoke(main, args)
    assert again.exit_code == 1 and "not empty" in again.output and "Traceback" not in again.output
    assert runner.invoke(main, args + ["--overwrite", "--preset", "crowd"]).exit_code == 0
    crowd = json.loads((out / META_NAME).read_text())["videos"]["synth0000"]
    assert len(crowd["people"]) >= 9
    bad = runner.invoke(main, ["synth", str(tmp_path / "x"), "--size", "480"])
    assert bad.exit_code == 1 and "HEIGHTxWIDTH" in bad.output


def _synth_files(root: Path) -> dict[str, bytes]:
    """The files of a synth output, without the user's."""
    return {rel: data for rel, data in _files(root).items() if "notes" not in rel}


def test_overwrite_replaces_only_what_synth_wrote(tmp_path):
    out = tmp_path / "out"
    synthesize(out, SMALL)
    user_files = {out / "notes.txt": "top", out / "JPEGImages" / "synth0001" / "notes.txt": "inside a video",
                  out / "Annotations" / "notes.txt": "beside the videos"}
    for path, text in user_files.items():
        path.write_text(text)
    synthesize(out, dataclasses.replace(SMALL, videos=1, frames=2), overwrite=True)
    # the previous synth0001 frames are gone, the folder stays for the user's file
    assert sorted(p.name for p in (out / "JPEGImages" / "synth0001").iterdir()) == ["notes.txt"]
    assert not (out / "Annotations" / "synth0001").exists()
    assert sorted(p.name for p in (out / "JPEGImages" / "synth0000").iterdir()) == ["00000.jpg", "00001.jpg"]
    synthesize(out, SMALL, overwrite=True)
    synthesize(tmp_path / "fresh", SMALL)
    assert _synth_files(out) == _files(tmp_path / "fresh")
    assert all(path.read_text() == text for path, text in user_files.items())
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left behind


def test_overwrite_refuses_a_file_synth_did_not_write_where_it_would_write(tmp_path):
    out = tmp_path / "out"
    synthesize(out, dataclasses.replace(SMALL, videos=1))
    mine = out / "JPEGImages" / "synth0001" / "00000.jpg"
    mine.parent.mkdir()
    mine.write_bytes(b"my own frame")
    before = _files(out)
    with pytest.raises(VcsegError, match="not written by an earlier run"):
        synthesize(out, SMALL, overwrite=True)
    assert _files(out) == before


def test_orphan_staging_of_a_killed_run_is_removed_and_a_live_one_kept(tmp_path):
    import subprocess

    child = subprocess.Popen(["true"])
    child.wait()
    orphan = tmp_path / f".out.abcd1234.{child.pid}.partial"
    live = tmp_path / f".out.efgh5678.{os.getppid()}.partial"
    foreign = tmp_path / ".out.notes.partial"
    for folder in (orphan, live, foreign):
        (folder / "JPEGImages").mkdir(parents=True)
    synthesize(tmp_path / "out", dataclasses.replace(SMALL, videos=1, frames=1))
    assert not orphan.exists() and live.is_dir() and foreign.is_dir()


def test_cli_synth_into_an_unwritable_folder_is_one_line(unwritable_dir):
    result = CliRunner().invoke(main, ["synth", str(unwritable_dir / "synth"), "--videos", "1", "--frames", "1",
                                       "--size", "64x96"])
    assert result.exit_code == 1
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert str(unwritable_dir / "synth") in result.output and "choose another OUT" in result.output
