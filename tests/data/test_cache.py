"""The frame cache: exact round trip, rebuild on change, atomic writes, fallback equals cache."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vcseg.data.cache as cache_module
from vcseg.data.cache import FrameCache, build_cache, cache_root, load_clip, scaled_size
from vcseg.errors import VcsegError
from vcseg.io.layouts import find_dataset
from vcseg.io.masks import write_mask

SHORT = 30


def _write_frame(path: Path, seed: int, height: int, width: int) -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path, quality=90)


def _make_dataset(root: Path) -> Path:
    """DAVIS layout, three videos of 60x90 frames (short side 60):
    'binary' with 0/255 grayscale masks, 'indexed' with mode-P masks on frames 0 and 2 only,
    'bare' without masks. Frames 90 wide and 60 high shrink to 30x45 at short side 30."""
    for video, seed in (("binary", 0), ("indexed", 10), ("bare", 20)):
        for t in range(3):
            _write_frame(root / "JPEGImages" / video / f"{t:05d}.jpg", seed + t, 60, 90)
            ids = np.zeros((60, 90), dtype=np.uint8)
            ids[10 + 5 * t:40, 20:70 - 7 * t] = 1
            ids[45:58, 3:30] = 2
            if video == "binary":
                (root / "Annotations" / video).mkdir(parents=True, exist_ok=True)
                Image.fromarray((ids > 0).astype(np.uint8) * 255, mode="L").save(
                    root / "Annotations" / video / f"{t:05d}.png")
            elif video == "indexed" and t != 1:
                write_mask(root / "Annotations" / video / f"{t:05d}.png", ids)
    return root


def _expected(root: Path, video: str, stem: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Decode and resize with PIL directly (not through vcseg) to (30, 45)."""
    with Image.open(root / "JPEGImages" / video / f"{stem}.jpg") as image:
        frame = np.asarray(image.convert("RGB").resize((45, 30), Image.BILINEAR))
    mask_path = root / "Annotations" / video / f"{stem}.png"
    if not mask_path.exists():
        return frame, None
    with Image.open(mask_path) as image:
        ids = np.asarray(image)
    if video == "binary":
        ids = (ids == 255).astype(np.uint8)
    return frame, np.asarray(Image.fromarray(ids).resize((45, 30), Image.NEAREST))


@pytest.fixture
def dataset(tmp_path):
    return find_dataset(_make_dataset(tmp_path / "data"))


def test_scaled_size_keeps_the_aspect_and_sets_the_short_side():
    assert scaled_size(480, 854, 240) == (240, 427)
    assert scaled_size(854, 480, 240) == (427, 240)
    assert scaled_size(60, 90, 30) == (30, 45)


def test_round_trip_equals_the_decoded_and_resized_files(dataset, tmp_path):
    summary = build_cache(dataset, tmp_path / "cache", SHORT, progress=False)
    assert sorted(summary.built) == ["bare", "binary", "indexed"] and summary.frames_written == 9
    cache = FrameCache(tmp_path / "cache", SHORT)
    assert cache.videos() == ["bare", "binary", "indexed"]
    for name in cache.videos():
        video = cache.video(name)
        assert video.stems == ["00000", "00001", "00002"]
        assert isinstance(video.frames, np.memmap) and video.frames.shape == (3, 30, 45, 3)
        for t, stem in enumerate(video.stems):
            frame, mask = _expected(dataset.root, name, stem)
            assert np.array_equal(video.frames[t], frame)
            if mask is None:
                assert not video.has_mask[t]
                assert video.masks is None or not video.masks[t].any()
            else:
                assert video.has_mask[t] and np.array_equal(video.masks[t], mask)
    assert cache.video("bare").masks is None
    assert cache.video("indexed").has_mask.tolist() == [True, False, True]
    assert set(np.unique(cache.video("binary").masks).tolist()) == {0, 1}  # 255 became id 1


def test_only_the_changed_video_is_rebuilt(dataset, tmp_path):
    build_cache(dataset, tmp_path / "cache", SHORT, progress=False)
    root = cache_root(tmp_path / "cache", SHORT)
    untouched = {name: (root / name / "frames.npy").stat().st_mtime_ns for name in ("bare", "indexed")}
    again = build_cache(dataset, tmp_path / "cache", SHORT, progress=False)
    assert again.built == () and sorted(again.reused) == ["bare", "binary", "indexed"]

    frame_path = dataset.video("binary").frames["00001"]
    _write_frame(frame_path, 99, 60, 90)  # new content (and a new mtime)
    stat = frame_path.stat()
    os.utime(frame_path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # whatever the clock says
    changed = build_cache(find_dataset(dataset.root), tmp_path / "cache", SHORT, progress=False)
    assert changed.built == ("binary",) and sorted(changed.reused) == ["bare", "indexed"]
    assert {name: (root / name / "frames.npy").stat().st_mtime_ns for name in untouched} == untouched
    frame, _ = _expected(dataset.root, "binary", "00001")
    assert np.array_equal(FrameCache(tmp_path / "cache", SHORT).video("binary").frames[1], frame)

    # a touch alone (same bytes, new mtime) also counts as a change
    mask_path = dataset.video("indexed").masks["00002"]
    stat = mask_path.stat()
    os.utime(mask_path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    touched = build_cache(dataset, tmp_path / "cache", SHORT, progress=False)
    assert touched.built == ("indexed",)
    # another short side is a separate cache
    assert sorted(build_cache(dataset, tmp_path / "cache", 20, progress=False).built) == \
        ["bare", "binary", "indexed"]


def test_an_interrupted_write_keeps_the_previous_cache(dataset, tmp_path, monkeypatch):
    build_cache(dataset, tmp_path / "cache", SHORT, progress=False)
    before = np.array(FrameCache(tmp_path / "cache", SHORT).video("binary").frames)
    frame_path = dataset.video("binary").frames["00000"]
    _write_frame(frame_path, 123, 60, 90)
    stat = frame_path.stat()
    os.utime(frame_path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))

    real_read_frame, calls = cache_module.read_frame, []

    def failing_read_frame(path):
        calls.append(path)
        if len(calls) == 2:  # the first frame is already in the temporary arrays
            raise KeyboardInterrupt
        return real_read_frame(path)

    monkeypatch.setattr(cache_module, "read_frame", failing_read_frame)
    # and pretend the process died before cleaning up: the temporary folder stays
    monkeypatch.setattr(cache_module.shutil, "rmtree", lambda *args, **kwargs: None)
    with pytest.raises(KeyboardInterrupt):
        build_cache(dataset, tmp_path / "cache", SHORT, progress=False)
    monkeypatch.undo()

    root = cache_root(tmp_path / "cache", SHORT)
    leftovers = [p for p in root.iterdir() if p.name.startswith(".")]
    assert len(leftovers) == 1 and (leftovers[0] / "frames.npy").exists()  # the half-written video
    reader = FrameCache(tmp_path / "cache", SHORT)
    assert reader.videos() == ["bare", "binary", "indexed"]  # the temporary folder is no video
    assert np.array_equal(reader.video("binary").frames, before)
    # the old cache no longer matches the files: the loader decodes them instead
    clip = load_clip(dataset.video("binary"), ["00000"], SHORT, reader)
    assert not clip.from_cache
    assert np.array_equal(clip.frames[0], _expected(dataset.root, "binary", "00000")[0])

    # a stale folder of a process that no longer exists is removed too
    dead = root / f".binary.abc.{2**22 + 7}.tmp"
    dead.mkdir()
    rebuilt = build_cache(dataset, tmp_path / "cache", SHORT, progress=False)
    assert rebuilt.built == ("binary",)
    assert [p for p in root.iterdir() if p.name.startswith(".")] == []
    after = FrameCache(tmp_path / "cache", SHORT).video("binary")
    assert np.array_equal(after.frames[0], _expected(dataset.root, "binary", "00000")[0])


def test_the_fallback_equals_the_cache(dataset, tmp_path):
    build_cache(dataset, tmp_path / "cache", SHORT, progress=False)
    cache = FrameCache(tmp_path / "cache", SHORT)
    for name, stems in (("binary", ["00002", "00000", "00001"]), ("indexed", ["00000", "00001"]),
                        ("bare", ["00001"])):
        video = dataset.video(name)
        cached = load_clip(video, stems, SHORT, cache)
        decoded = load_clip(video, stems, SHORT)
        assert cached.from_cache and not decoded.from_cache
        assert np.array_equal(cached.frames, decoded.frames)
        assert np.array_equal(cached.masks, decoded.masks)
        assert np.array_equal(cached.has_mask, decoded.has_mask)
        expected = [_expected(dataset.root, name, stem) for stem in stems]
        assert np.array_equal(decoded.frames, np.stack([frame for frame, _ in expected]))
        assert decoded.frames.shape == (len(stems), 30, 45, 3) and decoded.masks.shape == (len(stems), 30, 45)
    sparse = load_clip(dataset.video("indexed"), ["00000", "00001"], SHORT, cache)
    assert sparse.has_mask.tolist() == [True, False] and not sparse.masks[1].any()
    # a cache of another short side is not used
    assert not load_clip(dataset.video("bare"), ["00000"], 20, cache).from_cache


def test_errors_name_the_file(dataset, tmp_path):
    with pytest.raises(VcsegError, match="not in the frame cache"):
        FrameCache(tmp_path / "nothing", SHORT).video("binary")
    bad = dataset.video("binary").masks["00001"]
    Image.fromarray(np.zeros((10, 10), dtype=np.uint8), mode="L").save(bad)
    with pytest.raises(VcsegError, match="00001.png"):
        build_cache(dataset, tmp_path / "cache", SHORT, progress=False)
    assert "binary" not in FrameCache(tmp_path / "cache", SHORT)


def test_a_rebuild_refuses_a_video_folder_holding_files_the_cache_did_not_write(dataset, tmp_path):
    build_cache(dataset, tmp_path / "cache", SHORT, progress=False)
    root = cache_root(tmp_path / "cache", SHORT)
    mine = root / "binary" / "notes.txt"
    mine.write_text("keep me")
    not_a_build = root / ".notes.tmp"  # hidden, ends like a build's temporary folder, names no pid
    not_a_build.mkdir()
    assert build_cache(dataset, tmp_path / "cache", SHORT, progress=False).built == ()  # nothing to swap

    frame_path = dataset.video("binary").frames["00001"]
    stat = frame_path.stat()
    os.utime(frame_path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    frames_before = (root / "binary" / "frames.npy").read_bytes()
    with pytest.raises(VcsegError, match="notes.txt, which the frame cache did not write") as refused:
        build_cache(find_dataset(dataset.root), tmp_path / "cache", SHORT, progress=False)
    assert str(root / "binary") in str(refused.value) and "\n" not in str(refused.value)
    assert mine.read_text() == "keep me" and not_a_build.is_dir()
    assert (root / "binary" / "frames.npy").read_bytes() == frames_before
    mine.unlink()
    assert build_cache(find_dataset(dataset.root), tmp_path / "cache", SHORT, progress=False).built == ("binary",)
