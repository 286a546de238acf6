"""`vcseg pack` through click's CliRunner: exit codes, messages, the zip written or not."""

from __future__ import annotations

import zipfile

from click.testing import CliRunner
from PIL import Image

from tests.pack.conftest import person_mask
from vcseg.cli import main
from vcseg.io.masks import write_mask


def run(*args: str):
    return CliRunner().invoke(main, ["pack", *map(str, args)])


def lines(output: str) -> list[str]:
    """Output lines, without the blank line a transient progress bar leaves when not on a terminal."""
    return [line for line in output.splitlines() if line.strip()]


def test_pack_writes_the_zip_and_prints_a_summary(test_set, tmp_path):
    preds, frames = test_set
    out = tmp_path / "submissions" / "run.zip"
    result = run(preds, "--frames", frames, "--out", out)
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(out) as archive:
        assert len(archive.namelist()) == 5
    assert f"written: {out}" in result.output
    assert "videos: 2, frames: 5, ids per video: max 2 (alpha)" in result.output


def test_pack_lists_every_problem_then_a_summary_and_writes_nothing(test_set, tmp_path):
    preds, frames = test_set
    Image.new("RGB", (30, 20)).save(preds / "alpha" / "00002.png")
    (preds / "beta" / "00006.png").unlink()
    out = tmp_path / "run.zip"
    result = run(preds, "--frames", frames, "--out", out)
    assert result.exit_code == 1
    printed = lines(result.output)  # problems sorted by file
    assert printed[0].startswith(f"error: {preds / 'alpha' / '00002.png'}: RGB mask (3 channels)")
    assert printed[1].startswith(f"error: {preds / 'beta' / '00006.png'}: missing frame")
    assert printed[2] == f"Error: 2 problems in {preds}; {out} not written"
    assert len(printed) == 3
    assert not out.exists()


def test_pack_fix_flag_accepts_binary_masks(test_set, tmp_path):
    preds, frames = test_set
    Image.fromarray(person_mask(20, 30, [1]) * 255, mode="L").save(preds / "alpha" / "00000.png")
    out = tmp_path / "run.zip"
    assert run(preds, "--frames", frames, "--out", out).exit_code == 1
    result = run(preds, "--frames", frames, "--out", out, "--fix")
    assert result.exit_code == 0, result.output
    assert "re-encoded by --fix: 1" in result.output and out.is_file()


def test_check_good_and_bad_zip(test_set, tmp_path):
    preds, frames = test_set
    out = tmp_path / "run.zip"
    assert run(preds, "--frames", frames, "--out", out).exit_code == 0
    result = run("--check", out, "--frames", frames)
    assert result.exit_code == 0, result.output
    assert f"valid submission: {out}" in result.output

    write_mask(preds / "extra" / "00000.png", person_mask(20, 30, [1]))
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(out) as good, zipfile.ZipFile(bad, "w") as archive:
        for name in good.namelist():
            archive.writestr(name, good.read(name))
        archive.writestr("extra/00000.png", (preds / "extra" / "00000.png").read_bytes())
    result = run("--check", bad, "--frames", frames)
    assert result.exit_code == 1
    assert lines(result.output) == [
        f"error: {bad / 'extra'}: extra video: 'extra' is not a test video (1 file(s)); remove it "
        "(the test set has 2 videos)",
        f"Error: 1 problem in {bad}; not a valid submission"]


def test_usage_errors(test_set, tmp_path):
    preds, frames = test_set
    assert run(preds, "--frames", frames).exit_code == 2  # no --out
    zip_path = tmp_path / "x.zip"
    zip_path.write_bytes(b"")
    assert run(preds, "--check", zip_path, "--frames", frames).exit_code == 2
    result = run("--check", zip_path, "--frames", frames)
    assert result.exit_code == 1 and "not a readable zip" in result.output
    result = run(preds, "--frames", frames, "--out", tmp_path)
    assert result.exit_code == 1 and "is a directory" in result.output


def test_pack_prints_the_empty_test_video_warning(test_set, tmp_path):
    preds, frames = test_set
    (frames / "gamma").mkdir()
    (preds / ".predict_log.json").write_text("{}")  # predict's own: no line for it
    out = tmp_path / "run.zip"
    result = run(preds, "--frames", frames, "--out", out)
    assert result.exit_code == 0, result.output
    printed = lines(result.output)
    assert printed[0] == (f"warning: {frames / 'gamma'}: no frames; no masks expected, the zip has no "
                          "folder for it")
    assert printed[1] == f"written: {out} ({out.stat().st_size / 1e3:.1f} kB)"
    assert len(printed) == 3  # the warning, written, the counts


def test_pack_to_an_unwritable_out_is_one_line_and_exit_1(test_set, tmp_path, unwritable_dir):
    preds, frames = test_set
    (tmp_path / "notes.txt").write_text("a file")
    for out in (unwritable_dir / "run.zip", tmp_path / "notes.txt" / "run.zip"):
        result = run(preds, "--frames", frames, "--out", out)
        assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
        assert "Traceback" not in result.output
        [line] = lines(result.output)
        assert line.startswith(f"Error: {out}: ") and line.endswith("choose another --out")
