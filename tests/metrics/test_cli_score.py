"""`vcseg score` through click's CliRunner: exit codes, JSON shape, CSV, errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tests.metrics.reference_jf import reference_f, reference_j
from vcseg.cli import main
from vcseg.io.masks import write_mask
from vcseg.metrics import render_table, score_dataset

OBJECT_KEYS = {"gt_id", "pred_id", "J_mean", "F_mean", "J_recall", "F_recall", "J_decay", "F_decay"}
TOP_KEYS = {"protocol", "J_mean", "F_mean", "JF_mean", "J_recall", "F_recall", "J_decay", "F_decay", "videos"}


def _square(shape, top, left, size, object_id):
    ids = np.zeros(shape, np.uint8)
    ids[top:top + size, left:left + size] = object_id
    return ids


@pytest.fixture
def dataset(tmp_path: Path) -> tuple[Path, Path]:
    """GT in DAVIS layout (two videos), predictions with swapped ids and a shifted square."""
    gt_root, pred_root = tmp_path / "gt", tmp_path / "pred"
    shape = (24, 32)
    for t in range(3):
        stem = f"{t:05d}"
        gt_a = _square(shape, 2, 2, 8, 1) + _square(shape, 14, 20, 6, 2)
        write_mask(gt_root / "Annotations" / "alpha" / f"{stem}.png", gt_a)
        write_mask(pred_root / "alpha" / f"{stem}.png",
                   _square(shape, 2, 2, 8, 2) + _square(shape, 14, 20, 6, 1))  # swapped ids
        write_mask(gt_root / "Annotations" / "beta" / f"{stem}.png", _square(shape, 5, 5, 10, 1))
        write_mask(pred_root / "beta" / f"{stem}.png", _square(shape, 5, 7, 10, 1))  # 2 px right
    return pred_root, gt_root


def test_score_writes_json_and_csv(dataset, tmp_path):
    pred_root, gt_root = dataset
    out_json, out_csv = tmp_path / "out" / "scores.json", tmp_path / "out" / "scores.csv"
    result = CliRunner().invoke(main, ["score", "--pred", str(pred_root), "--gt", str(gt_root),
                                       "--json", str(out_json), "--csv", str(out_csv), "--per-frame",
                                       "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert "alpha" in result.output and "J&F" in result.output

    doc = json.loads(out_json.read_text())
    assert set(doc) == TOP_KEYS and doc["protocol"] == "tianchi"
    assert set(doc["videos"]) == {"alpha", "beta"}
    alpha = doc["videos"]["alpha"]
    assert alpha["valid"] is True
    assert [(o["gt_id"], o["pred_id"]) for o in alpha["objects"]] == [(1, 2), (2, 1)]
    for obj in alpha["objects"]:
        assert set(obj) == OBJECT_KEYS | {"J_per_frame", "F_per_frame"}
        assert obj["J_mean"] == 1.0 and obj["F_mean"] == 1.0 and len(obj["J_per_frame"]) == 3

    gt = _square((24, 32), 5, 5, 10, 1) == 1
    pred = _square((24, 32), 5, 7, 10, 1) == 1
    beta = doc["videos"]["beta"]["objects"][0]
    assert beta["J_mean"] == pytest.approx(reference_j(pred, gt))  # 80 / 120
    assert beta["J_mean"] == pytest.approx(80 / 120)
    assert beta["F_mean"] == pytest.approx(reference_f(pred, gt))
    # global figures average over all three objects
    assert doc["J_mean"] == pytest.approx((1 + 1 + 80 / 120) / 3)
    assert doc["JF_mean"] == pytest.approx((doc["J_mean"] + doc["F_mean"]) / 2)

    rows = list(csv.DictReader(out_csv.open()))
    assert [(r["video"], r["gt_id"], r["pred_id"]) for r in rows] == [("alpha", "1", "2"), ("alpha", "2", "1"),
                                                                     ("beta", "1", "1")]
    assert float(rows[2]["J_mean"]) == pytest.approx(80 / 120)


def test_json_without_per_frame_has_exactly_the_object_keys(dataset, tmp_path):
    pred_root, gt_root = dataset
    out_json = tmp_path / "s.json"
    result = CliRunner().invoke(main, ["score", "--pred", str(pred_root), "--gt", str(gt_root / "Annotations"),
                                       "--json", str(out_json), "--protocol", "davis-unsup", "--workers", "1"])
    assert result.exit_code == 0, result.output
    doc = json.loads(out_json.read_text())
    assert doc["protocol"] == "davis-unsup"
    assert all(set(o) == OBJECT_KEYS for v in doc["videos"].values() for o in v["objects"])


def test_missing_prediction_file_is_an_error_naming_it(dataset, tmp_path):
    pred_root, gt_root = dataset
    (pred_root / "beta" / "00001.png").unlink()
    result = CliRunner().invoke(main, ["score", "--pred", str(pred_root), "--gt", str(gt_root), "--workers", "1"])
    assert result.exit_code == 1
    assert "beta/00001.png" in result.output and "--missing-as-empty" in result.output
    out_json = tmp_path / "s.json"
    result = CliRunner().invoke(main, ["score", "--pred", str(pred_root), "--gt", str(gt_root), "--workers", "1",
                                       "--missing-as-empty", "--json", str(out_json)])
    assert result.exit_code == 0, result.output
    beta = json.loads(out_json.read_text())["videos"]["beta"]["objects"][0]
    assert beta["J_mean"] == pytest.approx((80 / 120 + 0 + 80 / 120) / 3)


def test_missing_prediction_video_and_extra_prediction_video(dataset):
    pred_root, gt_root = dataset
    (pred_root / "beta").rename(pred_root / "gamma")  # GT beta has no prediction; gamma has no GT
    result = CliRunner().invoke(main, ["score", "--pred", str(pred_root), "--gt", str(gt_root), "--workers", "1"])
    assert result.exit_code == 1 and "beta" in result.output
    result = CliRunner().invoke(main, ["score", "--pred", str(pred_root), "--gt", str(gt_root), "--workers", "1",
                                       "--missing-as-empty"])
    assert result.exit_code == 0, result.output
    assert "warning" in result.output and "gamma" in result.output


def test_size_mismatch_is_an_error_naming_the_file(dataset):
    pred_root, gt_root = dataset
    write_mask(pred_root / "alpha" / "00002.png", np.zeros((20, 32), np.uint8))
    result = CliRunner().invoke(main, ["score", "--pred", str(pred_root), "--gt", str(gt_root), "--workers", "1"])
    assert result.exit_code == 1
    assert "alpha/00002.png" in result.output and "32x20" in result.output


def test_too_many_ids(dataset, tmp_path):
    pred_root, gt_root = dataset
    crowded = np.zeros((24, 32), np.uint8)
    crowded[2:10, 2:10] = 1
    crowded[20, 1:10] = np.arange(2, 11)  # ids 2..10: ten ids in all
    write_mask(pred_root / "alpha" / "00000.png", crowded)
    out_json = tmp_path / "s.json"
    result = CliRunner().invoke(main, ["score", "--pred", str(pred_root), "--gt", str(gt_root), "--workers", "1",
                                       "--json", str(out_json)])
    assert result.exit_code == 0, result.output  # tianchi: the video is invalid, scored 0
    alpha = json.loads(out_json.read_text())["videos"]["alpha"]
    assert alpha["valid"] is False and all(o["J_mean"] == 0 and o["pred_id"] is None for o in alpha["objects"])
    crowded[21, 1:20] = np.arange(11, 30)  # ids up to 29: more than DAVIS' 20 proposals
    write_mask(pred_root / "alpha" / "00000.png", crowded)
    result = CliRunner().invoke(main, ["score", "--pred", str(pred_root), "--gt", str(gt_root / "Annotations"),
                                       "--protocol", "davis-unsup", "--workers", "1"])
    assert result.exit_code == 1 and "at most 20" in result.output and "Traceback" not in result.output


def test_library_api_and_table(dataset):
    from rich.console import Console

    pred_root, gt_root = dataset
    serial = score_dataset(pred_root, gt_root, workers=1)
    parallel = score_dataset(pred_root, gt_root, workers=2)
    assert serial.summary() == parallel.summary()
    console = Console(record=True, width=120)
    render_table(serial, console)
    text = console.export_text()
    assert "alpha" in text and "beta" in text and f"{serial.summary()['JF_mean']:.3f}" in text


def test_per_frame_needs_json(dataset):
    pred_root, gt_root = dataset
    result = CliRunner().invoke(main, ["score", "--pred", str(pred_root), "--gt", str(gt_root), "--per-frame"])
    assert result.exit_code == 2 and "--json" in result.output


def test_compare_prints_the_paired_difference(dataset, tmp_path):
    pred_root, gt_root = dataset
    perfect = tmp_path / "perfect"
    for video in ("alpha", "beta"):
        for path in sorted((gt_root / "Annotations" / video).iterdir()):
            (perfect / video).mkdir(parents=True, exist_ok=True)
            (perfect / video / path.name).write_bytes(path.read_bytes())
    result = CliRunner().invoke(main, ["score", "--pred", str(pred_root), "--gt", str(gt_root),
                                       "--compare", str(perfect), "--workers", "1"])
    assert result.exit_code == 0, result.output
    # the GT itself scores 1 on every object, so the difference is PRED's J&F minus 1
    expected = score_dataset(pred_root, gt_root, workers=1).summary()["JF_mean"] - 1.0
    assert expected < 0
    line = " ".join(result.output.split())  # rich may wrap the long line
    assert f"{expected:+.4f} J&F" in line and "over 2 videos" in line
    # resampling the 2 videos: alpha twice gives 0 (it is perfect), beta twice gives beta's own
    # difference (all of it): the interval reaches 0, so this is no proof PRED is worse
    beta = 3 * expected  # alpha's two objects add 0, beta's one object carries the whole sum
    assert f"interval {beta:+.4f} .. +0.0000" in line and "not significant" in line


# ---- never lose or fake a result ----------------------------------------------------------------

def _score(*args: str):
    return CliRunner().invoke(main, ["score", *map(str, args), "--workers", "1"])


def test_void_beside_person_ids_is_not_a_person_end_to_end(tmp_path):
    # DAVIS-style GT files: persons 1 and 2 and void (255) around person 1; a perfect prediction
    # (void left as background) used to score below 1, 255 counted as an unmatched third person
    gt_root, pred_root = tmp_path / "gt", tmp_path / "pred"
    for t in range(2):
        gt = _square((24, 32), 4, 4, 8, 1) + _square((24, 32), 14, 20, 6, 2)
        gt[3, 3:13] = gt[12, 3:13] = 255
        write_mask(gt_root / "v" / f"{t:05d}.png", gt)
        write_mask(pred_root / "v" / f"{t:05d}.png", np.where(gt == 255, 0, gt).astype(np.uint8))
    out_json = tmp_path / "s.json"
    result = _score("--pred", pred_root, "--gt", gt_root, "--json", out_json)
    assert result.exit_code == 0, result.output
    doc = json.loads(out_json.read_text())
    assert [o["gt_id"] for o in doc["videos"]["v"]["objects"]] == [1, 2]
    assert doc["J_mean"] == 1.0 and doc["F_mean"] == 1.0 and doc["JF_mean"] == 1.0


def test_binary_0_255_ground_truth_files_score_as_person_1(tmp_path):
    from PIL import Image

    gt_root, pred_root = tmp_path / "gt", tmp_path / "pred"
    square = _square((24, 32), 5, 5, 10, 1)
    (gt_root / "v").mkdir(parents=True)
    Image.fromarray(square * 255, mode="L").save(gt_root / "v" / "00000.png")  # only 0 and 255
    write_mask(pred_root / "v" / "00000.png", square)
    out_json = tmp_path / "s.json"
    result = _score("--pred", pred_root, "--gt", gt_root, "--json", out_json)
    assert result.exit_code == 0, result.output
    [obj] = json.loads(out_json.read_text())["videos"]["v"]["objects"]
    assert (obj["gt_id"], obj["pred_id"], obj["J_mean"], obj["F_mean"]) == (1, 1, 1.0, 1.0)


@pytest.mark.parametrize("option", ["--json", "--csv"])
@pytest.mark.parametrize("where", ["unwritable", "under_a_file"])
def test_unwritable_output_fails_before_scoring(dataset, tmp_path, unwritable_dir, monkeypatch, option, where):
    import vcseg.metrics

    calls = []
    monkeypatch.setattr(vcseg.metrics, "score_dataset", lambda *a, **k: calls.append(a) or 1 / 0)
    pred_root, gt_root = dataset
    if where == "unwritable":
        target = unwritable_dir / "scores.out"
    else:
        (tmp_path / "notes.txt").write_text("a file, not a folder")
        target = tmp_path / "notes.txt" / "scores.out"
    result = _score("--pred", pred_root, "--gt", gt_root, option, target)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output and calls == []  # nothing was scored
    [line] = [line for line in result.output.splitlines() if line.strip()]
    assert line.startswith(f"Error: {target}: ") and line.endswith(f"choose another {option}")
    assert not target.exists()


@pytest.mark.parametrize("which", ["pred", "gt"])
def test_rgb_mask_error_names_no_option_score_lacks(dataset, which):
    from PIL import Image

    pred_root, gt_root = dataset
    path = (pred_root / "beta" if which == "pred" else gt_root / "Annotations" / "beta") / "00001.png"
    Image.new("RGB", (32, 24), (128, 0, 0)).save(path)
    result = _score("--pred", pred_root, "--gt", gt_root)
    assert result.exit_code == 1 and "Traceback" not in result.output
    message = " ".join(result.output.split())
    assert f"{path}: RGB mask; save it as an indexed PNG (mode P, pixel = person id)" in message
    assert "--rgb-masks" not in message
