from __future__ import annotations

import json
import os

import numpy as np
import pytest

from tests.conftest import make_video, person_masks
from vcseg.errors import VcsegError
from vcseg.infer.dataset import predict_dataset
from vcseg.infer.options import PredictOptions
from vcseg.io.masks import read_mask

OPTIONS = PredictOptions(size=32, mem_every=2, mem_size=2)
STEMS = ["00000.png", "00001.png", "00002.png"]


@pytest.fixture
def dataset(tmp_path):
    """Three DAVIS-layout videos of 3 frames, 24 x 32, with masks on every frame."""
    root = tmp_path / "data"
    for name in ("a", "b", "c"):
        make_video(root, name, person_masks(3))
    return root


def test_layout_first_frame_and_log(dataset, tmp_path, checkpoint):
    out = tmp_path / "pred"
    summary = predict_dataset(dataset, out, [checkpoint], dataset, OPTIONS)
    assert summary.predicted == ["a", "b", "c"] and summary.skipped == [] and summary.frames == 9
    assert sorted(p.name for p in out.iterdir()) == [".predict_log.json", ".vcseg-predict", "a", "b", "c"]
    for name in ("a", "b", "c"):
        assert sorted(p.name for p in (out / name).iterdir()) == STEMS
        np.testing.assert_array_equal(read_mask(out / name / "00000.png"), person_masks(3)[0])
        assert read_mask(out / name / "00002.png").shape == (24, 32)
    log = json.loads((out / ".predict_log.json").read_text())
    record = log["videos"]["b"]
    assert record["frames"] == 3 and record["fps"] == pytest.approx(3 / record["seconds"], rel=0.01)
    assert record["short_side"] == 24  # --size 32 on 24 x 32 frames: never upsampled
    assert 0 < record["memory_bank_peak_bytes"] <= record["peak_memory_bytes"]
    assert record["peak_memory_bytes"] == max(record["memory_bank_peak_bytes"], record["rss_peak_bytes"])
    assert log["total"]["videos"] == 3 and log["total"]["frames"] == 9


def test_resume_skips_complete_videos_and_redoes_half_written_ones(dataset, tmp_path, checkpoint):
    out = tmp_path / "pred"
    predict_dataset(dataset, out, [checkpoint], dataset, OPTIONS)
    old = 1_000_000_000
    for name in ("a", "c"):
        for path in (out / name).iterdir():
            os.utime(path, (old, old))
    # b was killed in the middle: its temporary folder holds two frames, no record, no final folder;
    # c lost a frame under its final name (not something predict leaves, but a rerun must mend it).
    state = out / ".vcseg-predict"
    (state / "partial").mkdir(exist_ok=True)
    os.replace(out / "b", state / "partial" / "b")
    (state / "partial" / "b" / "00002.png").unlink()
    (state / "videos" / "b.json").unlink()
    (out / "c" / "00001.png").unlink()
    notices = []
    summary = predict_dataset(dataset, out, [checkpoint], dataset, OPTIONS, notify=notices.append)
    assert summary.skipped == ["a"] and summary.predicted == ["b", "c"]
    assert summary.redone == {"c": f"{out / 'c' / '00001.png'} is missing"}
    assert notices == [f"c: predicting again ({out / 'c' / '00001.png'} is missing)"]
    assert all(path.stat().st_mtime == old for path in (out / "a").iterdir())
    assert all(path.stat().st_mtime > old for path in (out / "c").iterdir())
    for name in ("a", "b", "c"):
        assert sorted(p.name for p in (out / name).iterdir()) == STEMS
    assert not (state / "partial" / "b").exists()
    log = json.loads((out / ".predict_log.json").read_text())
    assert sorted(log["videos"]) == ["a", "b", "c"]  # merged with the first run's


def test_shards_split_the_videos(dataset, tmp_path, checkpoint, monkeypatch):
    out = tmp_path / "pred"
    first = predict_dataset(dataset, out, [checkpoint], dataset, OPTIONS, shard=(0, 2))
    assert first.predicted == ["a", "c"] and first.log_path.name == ".predict_log.shard-0-of-2.json"
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    second = predict_dataset(dataset, out, [checkpoint], dataset, OPTIONS)  # torchrun's rank 1 of 2
    assert second.predicted == ["b"] and second.shard == (1, 2)
    assert json.loads(second.log_path.read_text())["videos"].keys() == {"b"}
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["a", "b", "c"]


def test_errors_name_the_fix(dataset, tmp_path, checkpoint):
    with pytest.raises(VcsegError, match="no mask given and no proposal network"):
        predict_dataset(dataset, tmp_path / "pred", [checkpoint])
    masks = tmp_path / "masks"
    (masks / "a").mkdir(parents=True)
    with pytest.raises(VcsegError, match=r"masks/a: no mask for any frame of video 'a'"):
        predict_dataset(dataset, tmp_path / "pred", [checkpoint], masks)
    with pytest.raises(VcsegError, match="checkpoint not found"):
        predict_dataset(dataset, tmp_path / "pred", [tmp_path / "missing.pt"], dataset)
    assert not (tmp_path / "pred").exists()  # nothing written before the inputs are known good
