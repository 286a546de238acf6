"""Copy-paste compositing: where pasted persons land, occlusion order, ids, real DAVIS masks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from scipy.ndimage import binary_erosion, gaussian_filter

from vcseg.cli import main
from vcseg.data.compose import ComposeConfig, PasteParams, compose_clip, compose_dataset, feather, parse_people
from vcseg.errors import VcsegError
from vcseg.io.layouts import find_dataset
from vcseg.io.masks import read_mask

DAVIS = Path("/work/shared/data/davis2016-people")


def _noise_clip(seed: int, length: int, height: int, width: int) -> np.ndarray:
    """(T, H, W, 3) frames that differ everywhere, so a wrong source frame or shift shows."""
    return np.random.default_rng(seed).integers(0, 256, (length, height, width, 3), dtype=np.uint8)


def _box_masks(length: int, height: int, width: int, boxes) -> np.ndarray:
    """(T, H, W) ids: boxes[t] is a list of (id, y0, y1, x0, x1) drawn in order."""
    masks = np.zeros((length, height, width), dtype=np.uint8)
    for t in range(length):
        for person_id, y0, y1, x0, x1 in boxes[t]:
            masks[t, y0:y1, x0:x1] = person_id
    return masks


def _place(scaled: np.ndarray, offset, out_shape) -> tuple[np.ndarray, np.ndarray]:
    """Put a scaled source array at `offset` into an empty canvas; also return where it landed."""
    canvas = np.zeros(out_shape + scaled.shape[2:], dtype=scaled.dtype)
    covered = np.zeros(out_shape, dtype=bool)
    dy, dx = offset
    for y in range(scaled.shape[0]):
        for x in range(scaled.shape[1]):
            if 0 <= y + dy < out_shape[0] and 0 <= x + dx < out_shape[1]:
                canvas[y + dy, x + dx] = scaled[y, x]
                covered[y + dy, x + dx] = True
    return canvas, covered


def test_pasted_person_lands_where_the_plan_says():
    base_frames = _noise_clip(1, 6, 40, 60)
    base_masks = _box_masks(6, 40, 60, [[(1, 5, 15, 5, 15)]] * 6)
    source_frames = _noise_clip(2, 3, 50, 80)  # shorter than the base: the person leaves early
    # the person moves right by 4 pixels a frame in the source
    source_masks = _box_masks(3, 50, 80, [[(1, 10, 40, 20 + 4 * t, 50 + 4 * t)] for t in range(3)])
    sigma = 1.0
    result = compose_clip(base_frames, base_masks, [source_frames], [source_masks],
                          np.random.default_rng(5), params=PasteParams(scale_range=(0.6, 0.9),
                                                                       feather_sigma=sigma))
    (placement,) = result.plan.placements
    assert placement.new_id == 2 and result.plan.base_ids == {1: 1}
    assert placement.frames == (max(0, placement.time_shift), min(6, placement.time_shift + 3) - 1)
    reach = int(4 * sigma + 0.5)  # scipy's Gaussian kernel radius: alpha is exactly 1 deeper inside
    h, w = placement.size
    checked_interior = 0
    for t in range(6):
        expected_mask = base_masks[t].copy()
        s = t - placement.time_shift
        if placement.frames[0] <= t <= placement.frames[1]:
            scaled_mask = np.asarray(Image.fromarray((source_masks[s] == 1).astype(np.uint8))
                                     .resize((w, h), Image.NEAREST)).astype(bool)
            scaled_rgb = np.asarray(Image.fromarray(source_frames[s]).resize((w, h), Image.BILINEAR))
            placed_mask, _ = _place(scaled_mask, placement.offset, (40, 60))
            placed_rgb, _ = _place(scaled_rgb, placement.offset, (40, 60))
            expected_mask[placed_mask] = 2
            interior, _ = _place(binary_erosion(scaled_mask, np.ones((3, 3)), iterations=reach),
                                 placement.offset, (40, 60))
            assert np.array_equal(result.frames[t][interior], placed_rgb[interior])
            checked_interior += int(interior.sum())
            # far from any paste the base pixels are untouched
            far = ~_place(np.ones((h, w), bool), placement.offset, (40, 60))[1]
            assert np.array_equal(result.frames[t][far], base_frames[t][far])
        else:
            assert np.array_equal(result.frames[t], base_frames[t])
        assert np.array_equal(result.masks[t], expected_mask), t
    assert checked_interior > 100


def test_pasted_person_occludes_base_person_which_keeps_its_id_elsewhere():
    base_frames = _noise_clip(3, 2, 40, 60)
    base_masks = np.ones((2, 40, 60), dtype=np.uint8) * 4  # one person, id 4, over all but row 0
    base_masks[:, 0] = 0
    source_frames = _noise_clip(4, 2, 40, 60)
    # two sources, persons of 30x50 each: inside a 40x60 frame any two such boxes overlap
    source_masks = _box_masks(2, 40, 60, [[(1, 5, 35, 5, 55)]] * 2)
    result = compose_clip(base_frames, base_masks, [source_frames, source_frames],
                          [source_masks, source_masks], np.random.default_rng(0),
                          params=PasteParams(scale_range=(1.0, 1.0), min_overlap=1.0))
    first, second = result.plan.placements
    assert (first.depth, first.new_id, second.depth, second.new_id) == (1, 2, 2, 3)
    for t in range(2):
        boxes = []
        for placement in (first, second):
            (dy, dx) = placement.offset
            box = np.zeros((40, 60), bool)
            box[max(0, dy + 5):dy + 35, max(0, dx + 5):dx + 55] = True
            boxes.append(box)
        mask = result.masks[t]
        assert np.all(mask[boxes[1]] == 3)  # drawn last: wins everywhere it is
        assert np.all(mask[boxes[0] & ~boxes[1]] == 2)
        assert (boxes[0] & boxes[1]).any()
        elsewhere = ~boxes[0] & ~boxes[1]
        assert np.all(mask[elsewhere] == np.where(base_masks[t][elsewhere] == 4, 1, 0))
        assert (mask == 1).any()


def test_ids_are_renumbered_and_a_fully_covered_person_is_dropped():
    frames = _noise_clip(5, 2, 20, 30)
    base_masks = _box_masks(2, 20, 30, [[(3, 0, 5, 0, 5), (7, 10, 15, 10, 15)]] * 2)
    alone = compose_clip(frames, base_masks, [], [], np.random.default_rng(0))
    assert alone.plan.base_ids == {3: 1, 7: 2}
    assert np.array_equal(alone.masks, np.where(base_masks == 3, 1, np.where(base_masks == 7, 2, 0)))
    # a source person filling its whole frame, pasted at the base's size, covers everyone
    everywhere = np.ones((2, 20, 30), dtype=np.uint8)
    covered = compose_clip(frames, base_masks, [frames[::-1].copy()], [everywhere],
                           np.random.default_rng(0),
                           params=PasteParams(scale_range=(1.0, 1.0), min_overlap=1.0))
    assert covered.plan.base_ids == {}
    assert [p.new_id for p in covered.plan.placements] == [1]
    assert len(covered.plan.dropped) == 2
    assert np.all(covered.masks == 1)


def test_compose_clip_is_deterministic():
    base = _noise_clip(6, 4, 30, 40)
    base_masks = _box_masks(4, 30, 40, [[(1, 3, 20, 3, 12)]] * 4)
    source = _noise_clip(7, 5, 30, 40)
    source_masks = _box_masks(5, 30, 40, [[(1, 5, 25, 10, 30), (2, 0, 10, 0, 10)]] * 5)
    runs = [compose_clip(base, base_masks, [source, source], [source_masks, source_masks],
                         np.random.default_rng(seed)) for seed in (11, 11, 12)]
    assert np.array_equal(runs[0].frames, runs[1].frames)
    assert np.array_equal(runs[0].masks, runs[1].masks)
    assert runs[0].plan == runs[1].plan
    assert runs[0].plan != runs[2].plan


def test_feather_is_the_gaussian_blur_of_the_mask_and_one_inside():
    mask = np.zeros((30, 40), bool)
    mask[8:22, 10:25] = True
    alpha = feather(mask, 1.5)
    expected = gaussian_filter(mask.astype(np.float64), 1.5, mode="constant")
    assert np.allclose(alpha, expected, atol=1e-6)
    assert np.all(alpha[14:16, 16:19] > 1 - 1e-6)  # 6 px (the kernel radius) inside the edge
    assert alpha[0, 0] == 0.0
    assert 0.3 < alpha[8, 17] < 0.7  # on the edge: half transparent
    assert np.array_equal(feather(mask, 0.0), mask.astype(np.float32))


def test_parse_people():
    assert parse_people("2-3") == (2, 3)
    assert parse_people("4") == (4, 4)
    for bad in ("3-2", "0-2", "a-b", "1-2-3"):
        with pytest.raises(VcsegError, match="--people"):
            parse_people(bad)


@pytest.fixture(scope="module")
def davis_tiny(tmp_path_factory) -> Path:
    """One real DAVIS sequence (0/255 grayscale masks), four frames, in the DAVIS layout."""
    if not (DAVIS / "JPEGImages" / "tennis").is_dir():
        pytest.skip("DAVIS sample not present")
    root = tmp_path_factory.mktemp("davis")
    for tree, suffix in (("JPEGImages", ".jpg"), ("Annotations", ".png")):
        (root / tree / "tennis").mkdir(parents=True)
        for index in range(4):
            name = f"{index:05d}{suffix}"
            shutil.copy(DAVIS / tree / "tennis" / name, root / tree / "tennis" / name)
    return root


def test_compose_dataset_on_real_davis_masks(davis_tiny, tmp_path):
    out = tmp_path / "out"
    summary = compose_dataset([davis_tiny], out, ComposeConfig(videos=2, people=(2, 2), seed=3),
                              progress=False)
    assert summary.videos == ["cp000-tennis", "cp001-tennis"] and summary.persons == [2, 2]
    composed = find_dataset(out)
    assert composed.layout == "davis" and [v.name for v in composed.videos] == summary.videos
    meta = json.loads((out / "compose_meta.json").read_text())
    for video, entry in zip(composed.videos, meta["videos"]):
        assert video.stems == ["00000", "00001", "00002", "00003"]
        base, pasted = entry["persons"]
        assert (base["id"], base["source_id"], pasted["id"], pasted["source_video"]) == (1, 1, 2, "tennis")
        for t, stem in enumerate(video.stems):
            with Image.open(video.masks[stem]) as image:
                assert image.mode == "P" and image.size == (854, 480)
            ids = read_mask(video.masks[stem])
            source = read_mask(davis_tiny / "Annotations" / "tennis" / f"{stem}.png")  # 0/255 -> 0/1
            # the base person (255 in the file) keeps id 1 wherever the paste does not cover it
            assert np.all(ids[(source == 1) & (ids != 2)] == 1)
            assert np.all(ids[(source == 0) & (ids != 2)] == 0)
            shown = pasted["frames"][0] <= t <= pasted["frames"][1]
            assert set(np.unique(ids).tolist()) == ({0, 1, 2} if shown else {0, 1})
            with Image.open(video.frames[stem]) as image:
                assert image.size == (854, 480)


def test_cli_compose_is_deterministic_and_refuses_a_non_empty_out(davis_tiny, tmp_path):
    runner = CliRunner()
    args = [str(davis_tiny), "--videos", "1", "--people", "2-3", "--seed", "1"]
    first = runner.invoke(main, ["compose", *args, "--out", str(tmp_path / "a")])
    assert first.exit_code == 0, first.output
    second = runner.invoke(main, ["compose", *args, "--out", str(tmp_path / "b")])
    assert second.exit_code == 0, second.output
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert files_a == files_b and len(files_a) == 9  # 4 JPG + 4 PNG + compose_meta.json
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    refused = runner.invoke(main, ["compose", *args, "--out", str(tmp_path / "a")])
    assert refused.exit_code == 1 and "--overwrite" in refused.output
    again = runner.invoke(main, ["compose", *args, "--out", str(tmp_path / "a"), "--overwrite"])
    assert again.exit_code == 0, again.output
    assert (tmp_path / "a" / "compose_meta.json").read_bytes() == \
        (tmp_path / "b" / "compose_meta.json").read_bytes()


def test_exclude_keeps_a_held_out_video_out_of_every_composite(davis_tiny, tmp_path):
    two = tmp_path / "two"
    shutil.copytree(davis_tiny, two)
    for tree in ("JPEGImages", "Annotations"):
        shutil.copytree(two / tree / "tennis", two / tree / "held-out")
    summary = compose_dataset([two], tmp_path / "out", ComposeConfig(videos=3, people=(2, 2), seed=0,
                                                                     exclude=("held-out",)), progress=False)
    assert summary.videos == ["cp000-tennis", "cp001-tennis", "cp002-tennis"]
    meta = json.loads((tmp_path / "out" / "compose_meta.json").read_text())
    assert meta["config"]["exclude"] == ["held-out"]
    used = {person["source_video"] for video in meta["videos"] for person in video["persons"]}
    assert used == {"tennis"}
    with pytest.raises(VcsegError, match="--exclude tenis: no such video"):
        compose_dataset([two], tmp_path / "typo", ComposeConfig(exclude=("tenis",)), progress=False)


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_overwrite_replaces_only_what_compose_wrote(davis_tiny, tmp_path):
    out = tmp_path / "out"
    compose_dataset([davis_tiny], out, ComposeConfig(videos=2, people=(2, 2), seed=3), progress=False)
    user_files = {out / "notes.txt": "top", out / "JPEGImages" / "notes.txt": "beside the videos",
                  out / "JPEGImages" / "cp001-tennis" / "notes.txt": "inside a video",
                  out / "Annotations" / "cp001-tennis" / "00009.png": "not a compose mask"}
    for path, text in user_files.items():
        path.write_text(text)
    compose_dataset([davis_tiny], out, ComposeConfig(videos=1, people=(2, 2), seed=3, overwrite=True),
                    progress=False)
    assert sorted(p.name for p in (out / "JPEGImages" / "cp001-tennis").iterdir()) == ["notes.txt"]
    assert [v.name for v in find_dataset(out).videos][:1] == ["cp000-tennis"]
    compose_dataset([davis_tiny], out, ComposeConfig(videos=2, people=(2, 2), seed=3, overwrite=True),
                    progress=False)
    compose_dataset([davis_tiny], tmp_path / "fresh", ComposeConfig(videos=2, people=(2, 2), seed=3),
                    progress=False)
    ours = {rel: data for rel, data in _tree(out).items() if Path(rel) not in
            {p.relative_to(out) for p in user_files}}
    assert ours == _tree(tmp_path / "fresh")
    assert all(path.read_text() == text for path, text in user_files.items())
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left behind


def test_overwrite_refuses_a_foreign_folder_or_file(davis_tiny, tmp_path, unwritable_dir):
    runner = CliRunner()
    foreign = tmp_path / "foreign"
    (foreign / "JPEGImages").mkdir(parents=True)
    (foreign / "JPEGImages" / "mine.jpg").write_text("keep me")
    refused = runner.invoke(main, ["compose", str(davis_tiny), "--out", str(foreign), "--overwrite"])
    assert refused.exit_code == 1 and "no compose_meta.json" in refused.output
    assert (foreign / "JPEGImages" / "mine.jpg").read_text() == "keep me"

    out = tmp_path / "out"
    compose_dataset([davis_tiny], out, ComposeConfig(videos=1, people=(2, 2), seed=3), progress=False)
    mine = out / "JPEGImages" / "cp001-tennis" / "00000.jpg"  # where a 2-video compose would write
    mine.parent.mkdir()
    mine.write_text("keep me")
    before = _tree(out)
    refused = runner.invoke(main, ["compose", str(davis_tiny), "--out", str(out), "--videos", "2",
                                   "--overwrite"])
    assert refused.exit_code == 1 and "not written by an earlier run" in refused.output
    assert _tree(out) == before

    unwritable = runner.invoke(main, ["compose", str(davis_tiny), "--out", str(unwritable_dir / "c")])
    assert unwritable.exit_code == 1 and len(unwritable.output.strip().splitlines()) == 1
    assert str(unwritable_dir / "c") in unwritable.output and "Traceback" not in unwritable.output


def _scene_videos(root: Path, names: tuple[str, ...], size=(120, 200)) -> Path:
    """Frames-only DAVIS-layout videos of one flat colour each, 5 frames, plus a mask of an object
    that compose must ignore (a scene's own object is not a person)."""
    for index, name in enumerate(names):
        (root / "JPEGImages" / name).mkdir(parents=True)
        (root / "Annotations" / name).mkdir(parents=True)
        for t in range(5):
            Image.new("RGB", size[::-1], (20, 160 + 40 * index, 30)).save(root / "JPEGImages" / name / f"{t:05d}.jpg",
                                                                          quality=95)
            object_mask = np.zeros(size, np.uint8)
            object_mask[10:40, 10:60] = 255
            Image.fromarray(object_mask).save(root / "Annotations" / name / f"{t:05d}.png")
    return root


def test_backgrounds_are_scenes_with_only_the_pasted_people(davis_tiny, tmp_path):
    scenes = _scene_videos(tmp_path / "scenes", ("meadow",))
    summary = compose_dataset([davis_tiny], tmp_path / "out",
                              ComposeConfig(videos=2, people=(2, 2), seed=1, backgrounds=(str(scenes),)),
                              progress=False)
    assert summary.videos == ["cp000-meadow", "cp001-meadow"] and summary.persons == [2, 2]
    meta = json.loads((tmp_path / "out" / "compose_meta.json").read_text())
    assert meta["backgrounds"] == [str(scenes)]
    for entry in meta["videos"]:
        assert entry["base_video"] == "meadow" and entry["base_root"] == str(scenes)
        assert [(p["id"], p["pasted"], p["source_video"]) for p in entry["persons"]] == \
            [(1, True, "tennis"), (2, True, "tennis")]
    video = find_dataset(tmp_path / "out").videos[0]
    assert video.stems == ["00000", "00001", "00002", "00003", "00004"]
    ids = np.stack([read_mask(video.masks[stem]) for stem in video.stems])
    assert ids.shape == (5, 120, 200) and set(np.unique(ids).tolist()) <= {0, 1, 2}
    assert (ids > 0).any()
    # The scene's own object (its mask's box) is no person: where no one was pasted it stays id 0,
    # and away from the pasted people the frame is the scene's colour.
    frame = np.asarray(Image.open(video.frames["00000"])).astype(int)
    far = binary_erosion(ids[0] == 0, iterations=6)
    assert np.abs(frame[far] - (20, 160, 30)).max() <= 6


def test_exclude_applies_to_background_videos_too(davis_tiny, tmp_path):
    scenes = _scene_videos(tmp_path / "scenes", ("meadow", "rider-on-a-bike"))
    summary = compose_dataset([davis_tiny], tmp_path / "out",
                              ComposeConfig(videos=3, people=(1, 1), seed=0, backgrounds=(str(scenes),),
                                            exclude=("rider-on-a-bike",)), progress=False)
    assert summary.videos == ["cp000-meadow", "cp001-meadow", "cp002-meadow"]
    with pytest.raises(VcsegError, match="--exclude ridr: no such video"):
        compose_dataset([davis_tiny], tmp_path / "typo", ComposeConfig(backgrounds=(str(scenes),), exclude=("ridr",)),
                        progress=False)


def test_cli_backgrounds_option(davis_tiny, tmp_path):
    scenes = _scene_videos(tmp_path / "scenes", ("meadow",))
    result = CliRunner().invoke(main, ["compose", str(davis_tiny), "--backgrounds", str(scenes), "--out",
                                       str(tmp_path / "out"), "--videos", "1", "--people", "1-1"])
    assert result.exit_code == 0, result.output
    assert [v.name for v in find_dataset(tmp_path / "out").videos] == ["cp000-meadow"]
    missing = CliRunner().invoke(main, ["compose", str(davis_tiny), "--backgrounds", str(tmp_path / "nowhere"),
                                        "--out", str(tmp_path / "out2")])
    assert missing.exit_code == 2 and "does not exist" in missing.output


def test_repeat_pastes_copies_of_a_person_already_pasted(davis_tiny, tmp_path):
    three = tmp_path / "three"
    for name in ("a", "b", "c"):
        for tree in ("JPEGImages", "Annotations"):
            shutil.copytree(davis_tiny / tree / "tennis", three / tree / name)
    scenes = _scene_videos(tmp_path / "scenes", ("meadow",))

    def sources(repeat: float) -> list[list[str]]:
        out = tmp_path / f"out-{repeat}"
        compose_dataset([three], out, ComposeConfig(videos=4, people=(3, 3), seed=5, backgrounds=(str(scenes),),
                                                    repeat=repeat), progress=False)
        meta = json.loads((out / "compose_meta.json").read_text())
        assert meta["config"]["repeat"] == repeat
        return [[p["source_video"] for p in video["persons"]] for video in meta["videos"]]

    distinct, copies = sources(0.0), sources(1.0)
    # without repeats three persons come from the three sources; with repeat 1 every pasted person
    # after the first copies one before it, so all are the first one, which the seed still picks
    assert all(sorted(names) == ["a", "b", "c"] for names in distinct)
    assert all(names == [first[0]] * 3 for names, first in zip(copies, distinct))
    with pytest.raises(VcsegError, match="repeat 1.5"):
        ComposeConfig(repeat=1.5)
