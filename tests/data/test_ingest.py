from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner
from PIL import Image

from tests.conftest import make_video, person_masks, write_frame
from vcseg.cli import main
from vcseg.data.ingest import ingest, split_videos


def test_real_davis_index(davis_people):
    result = ingest(davis_people, workers=1)
    assert result.errors == []
    # one binary-mask notice per video, nothing else
    assert len(result.warnings) == 6 and all("0/255" in w.message for w in result.warnings)
    rollerblade = result.index["videos"]["rollerblade"]
    assert (rollerblade["height"], rollerblade["width"]) == (480, 854)
    assert rollerblade["ids"] == [1]
    # the mean area, worked out independently from the raw PNGs
    areas = [int((np.asarray(Image.open(p)) == 255).sum())
             for p in sorted((davis_people / "Annotations" / "rollerblade").glob("*.png"))]
    present = [a for a in areas if a > 0]
    assert rollerblade["persons"]["1"]["mean_area"] == round(sum(present) / len(present), 3)
    assert len(rollerblade["persons"]["1"]["frames"]) == len(present)


def test_every_problem_reported_with_its_file(tmp_path):
    make_video(tmp_path, "good", person_masks(3))
    make_video(tmp_path, "broken", person_masks(5))
    frames, masks = tmp_path / "JPEGImages" / "broken", tmp_path / "Annotations" / "broken"
    data = (frames / "00000.jpg").read_bytes()
    (frames / "00000.jpg").write_bytes(data[: len(data) // 3])  # truncated JPG
    (masks / "00001.png").unlink()  # frame without mask
    Image.fromarray(np.zeros((10, 10), np.uint8), mode="P").save(masks / "00002.png")  # size mismatch
    Image.new("RGB", (32, 24), (128, 0, 0)).save(masks / "00003.png")  # RGB mask
    Image.fromarray(np.zeros((24, 32), np.uint8), mode="P").save(masks / "00009.png")  # mask without frame
    (tmp_path / "JPEGImages" / "empty").mkdir()
    (tmp_path / "Annotations" / "empty").mkdir()

    result = ingest(tmp_path, workers=2)
    messages = {(p.severity, p.path.name if p.path else None, p.message.split(" (")[0].split(";")[0])
                for p in result.problems}
    assert ("error", "00000.jpg", "cannot decode frame") in messages
    assert ("error", "00001.jpg", "frame has no mask") in messages
    assert ("error", "00002.png", "mask is 10x10 but its frame is 32x24") in messages
    assert ("error", "00003.png", "RGB mask") in messages
    assert ("error", "00009.png", "mask has no frame") in messages
    assert any(p.path.name == "empty" and "video 'empty' has no frames" in p.message for p in result.errors)
    assert len(result.errors) == 6
    assert not any(p.path and "good" in str(p.path) for p in result.problems)


def test_gaps_and_mixed_sizes(tmp_path):
    make_video(tmp_path, "v", person_masks(3), stems=["00001", "00002", "00005"])
    result = ingest(tmp_path, workers=1)
    assert [p.message for p in result.warnings] == ["frame numbering jumps from 00002 to 00005 (frames missing in between)"]
    assert result.errors == []
    write_frame(tmp_path / "JPEGImages" / "v" / "00002.jpg", 30, 40)
    result = ingest(tmp_path, workers=1)
    assert any(p.path.name == "00002.jpg" and "frame is 40x30 but the video's other frames are 32x24" in p.message
               for p in result.errors)


def test_frames_only_test_set_is_valid(tmp_path):
    make_video(tmp_path, "t1", person_masks(4), layout="frames-only")
    result = ingest(tmp_path, workers=1)
    assert result.problems == []
    assert result.index["has_masks"] is False
    assert result.index["videos"]["t1"]["ids"] == []


def test_split_is_deterministic_and_by_video():
    names = [f"v{i:02d}" for i in range(20)]
    train, val = split_videos(names, 0.25, seed=3)
    assert len(val) == 5 and sorted(train + val) == names and not set(train) & set(val)
    assert split_videos(list(reversed(names)), 0.25, seed=3) == (train, val)
    assert split_videos(names, 0.25, seed=4) != (train, val)


def test_ids_and_frames_per_person(tmp_path):
    masks = person_masks(4, ids=(1, 3))
    masks[2][masks[2] == 3] = 0  # person 3 absent in frame 2
    make_video(tmp_path, "v", masks)
    entry = ingest(tmp_path, workers=1).index["videos"]["v"]
    assert entry["ids"] == [1, 3]
    assert entry["persons"]["3"] == {"frames": ["00000", "00001", "00003"], "mean_area": 25.0}


def _listing(root) -> dict[str, tuple[int, int]]:
    """Every path under `root` with its size and mtime: what "unchanged" means for a dataset."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


def test_cli_exit_codes_and_index(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_video(tmp_path / "ok", "v", person_masks(3), stems=["00001", "00002", "00004"])
    runner = CliRunner()
    out = runner.invoke(main, ["ingest", str(tmp_path / "ok"), "--val-fraction", "0", "--workers", "1"])
    assert out.exit_code == 0, out.output
    index = json.loads((tmp_path / "ok.vcseg_index.json").read_text())
    assert index["layout"] == "davis" and index["videos"]["v"]["frames"] == ["00001", "00002", "00004"]

    make_video(tmp_path / "bad", "v", person_masks(2))
    (tmp_path / "bad" / "Annotations" / "v" / "00000.png").unlink()
    bad = runner.invoke(main, ["ingest", str(tmp_path / "bad"), "--workers", "1"])
    assert bad.exit_code == 1
    assert "00000.jpg: frame has no mask" in bad.output and "no index written" in bad.output
    assert not (tmp_path / "bad.vcseg_index.json").exists()
    assert "Traceback" not in bad.output


def test_cli_writes_nothing_into_the_dataset(tmp_path, monkeypatch):
    data = tmp_path / "shared" / "people"
    make_video(data, "v", person_masks(3))
    before = _listing(tmp_path / "shared")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    result = CliRunner().invoke(main, ["ingest", str(data), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert _listing(tmp_path / "shared") == before
    assert [p.name for p in work.iterdir()] == ["people.vcseg_index.json"]
    assert "index written to people.vcseg_index.json" in result.output
    assert json.loads((work / "people.vcseg_index.json").read_text())["videos"]["v"]["ids"] == [1, 2]
    # --index still goes where it is told, into the dataset too if asked
    asked = CliRunner().invoke(main, ["ingest", str(data), "--workers", "1", "--index", str(data / "i.json")])
    assert asked.exit_code == 0, asked.output
    assert (data / "i.json").is_file()


def test_cli_strict_with_warnings_writes_neither_index_nor_cache(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_video(tmp_path / "gaps", "v", person_masks(3), stems=["00001", "00002", "00004"])  # a numbering gap
    result = CliRunner().invoke(main, ["ingest", str(tmp_path / "gaps"), "--strict", "--workers", "1",
                                       "--cache", str(tmp_path / "cache"), "--short-side", "12"])
    assert result.exit_code == 1 and "--strict (no index written)" in result.output
    assert "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gaps"]


def test_cli_unwritable_index_or_cache_is_one_line(tmp_path, monkeypatch, unwritable_dir):
    monkeypatch.chdir(tmp_path)
    make_video(tmp_path / "ok", "v", person_masks(2))
    runner = CliRunner()
    for option, path in (("--index", unwritable_dir / "index.json"), ("--cache", unwritable_dir / "cache")):
        result = runner.invoke(main, ["ingest", str(tmp_path / "ok"), "--workers", "1", option, str(path)])
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1 and str(path) in result.output
        assert option in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok"]


def test_cli_builds_the_frame_cache(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_video(tmp_path / "data", "v", person_masks(3, height=48, width=64))
    runner = CliRunner()
    args = ["ingest", str(tmp_path / "data"), "--workers", "1", "--cache", str(tmp_path / "cache"),
            "--short-side", "24"]
    first = runner.invoke(main, args)
    assert first.exit_code == 0, first.output
    assert "1 video(s) built, 0 up to date" in first.output
    from vcseg.data.cache import FrameCache

    cached = FrameCache(tmp_path / "cache", 24).video("v")
    assert cached.frames.shape == (3, 24, 32, 3) and cached.masks.shape == (3, 24, 32)
    second = runner.invoke(main, args)
    assert "0 video(s) built, 1 up to date" in second.output
