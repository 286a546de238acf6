"""`vcseg viz` through click's CliRunner: exit codes, the summary lines, one-line errors."""

from __future__ import annotations

from click.testing import CliRunner

from tests.conftest import make_video, person_masks
from tests.viz.conftest import write_predictions
from vcseg.cli import main


def run(*args):
    return CliRunner().invoke(main, ["viz", *map(str, args)])


def lines(output: str) -> list[str]:
    """Output lines, without the blank line a transient progress bar leaves when not on a terminal."""
    return [line for line in output.splitlines() if line.strip()]


def dataset(tmp_path, names=("alpha", "beta")):
    for name in names:
        make_video(tmp_path / "data", name, person_masks(3))
        write_predictions(tmp_path / "preds", name, person_masks(3))
    return tmp_path / "preds", tmp_path / "data"


def test_viz_writes_a_video_and_a_sheet_per_video(tmp_path):
    preds, data = dataset(tmp_path)
    result = run(preds, "--frames", data, "--gt", data, "--out", tmp_path / "viz", "--fps", 8)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "viz").iterdir()) == ["alpha.mp4", "alpha.png", "beta.mp4",
                                                                    "beta.png"]
    out = lines(result.output)
    assert len(out) == 2 and out[0].startswith(f"alpha: 3 frames -> {tmp_path / 'viz' / 'alpha.mp4'} (64x38)")
    assert "GT->pred ids 1->1, 2->2; frames with missed 0, false 0, id switch 0" in out[0]


def test_videos_option_takes_names_repeated_or_comma_separated(tmp_path):
    preds, data = dataset(tmp_path, names=("alpha", "beta", "gamma"))
    result = run(preds, "--frames", data, "--out", tmp_path / "viz", "--videos", "alpha,gamma", "--shrink", "1")
    assert result.exit_code == 0, result.output
    assert sorted(p.stem for p in (tmp_path / "viz").glob("*.mp4")) == ["alpha", "gamma"]
    result = run(preds, "--frames", data, "--out", tmp_path / "viz2", "--videos", "beta", "--videos", "gamma")
    assert sorted(p.stem for p in (tmp_path / "viz2").glob("*.mp4")) == ["beta", "gamma"]


def test_bad_input_is_one_line_and_exit_1(tmp_path):
    preds, data = dataset(tmp_path)
    result = run(preds, "--frames", data, "--out", tmp_path / "viz", "--videos", "nosuch")
    assert result.exit_code == 1
    assert lines(result.output) == [f"Error: {preds / 'nosuch'}: no prediction folder for video nosuch; "
                                    "predict it, or leave it out of --videos"]
    (tmp_path / "file").write_text("")
    result = run(preds, "--frames", data, "--out", tmp_path / "file" / "viz")
    assert result.exit_code == 1 and len(lines(result.output)) == 1 and "--out" in result.output


def test_usage_errors_exit_2(tmp_path):
    preds, data = dataset(tmp_path, names=("alpha",))
    assert run(preds, "--out", tmp_path / "viz").exit_code == 2  # --frames missing
    assert run(preds, "--frames", data, "--out", tmp_path / "viz", "--fps", 0).exit_code == 2
    assert run(preds, "--frames", data, "--out", tmp_path / "viz", "--shrink", 3).exit_code == 2
    assert run(tmp_path / "nosuch", "--frames", data, "--out", tmp_path / "viz").exit_code == 2
