from __future__ import annotations

import json

import pytest

from tests.conftest import make_video, person_masks, write_frame
from vcseg.errors import VcsegError
from vcseg.io.layouts import find_dataset, find_mask_videos
from vcseg.io.masks import write_mask


def test_davis_layout_real(davis_people):
    dataset = find_dataset(davis_people)
    assert dataset.layout == "davis"
    assert [v.name for v in dataset.videos] == ["dance-jump", "hockey", "rollerblade", "surf", "swing", "tennis"]
    assert len(dataset.video("rollerblade").frames) == 35
    assert list(dataset.video("tennis").masks)[:2] == ["00000", "00001"]


def test_davis_layout_with_resolution_folder(tmp_path):
    masks = person_masks(2)
    for i, mask in enumerate(masks):
        write_frame(tmp_path / "JPEGImages" / "480p" / "v" / f"{i:05d}.jpg", *mask.shape)
        write_mask(tmp_path / "Annotations" / "480p" / "v" / f"{i:05d}.png", mask)
    dataset = find_dataset(tmp_path)
    assert dataset.layout == "davis"
    assert dataset.frames_root.name == "480p" and dataset.masks_root.name == "480p"
    assert len(dataset.video("v").masks) == 2
    assert list(find_mask_videos(tmp_path)) == ["v"]


def test_flat_sibling_and_frames_only(tmp_path):
    make_video(tmp_path / "flat", "a", person_masks(3), layout="flat")
    dataset = find_dataset(tmp_path / "flat")
    assert dataset.layout == "flat" and len(dataset.video("a").masks) == 3

    make_video(tmp_path / "test", "a", person_masks(3), layout="frames-only")
    frames_only = find_dataset(tmp_path / "test")
    assert frames_only.layout == "davis" and not frames_only.has_masks

    masks_root = tmp_path / "masks"
    for i, mask in enumerate(person_masks(3)):
        write_frame(tmp_path / "frames" / "b" / f"{i:05d}.jpg", *mask.shape)
        write_mask(masks_root / "b" / f"{i:05d}.png", mask)
    sibling = find_dataset(tmp_path / "frames", masks_root=masks_root)
    assert sibling.layout == "sibling" and len(sibling.video("b").masks) == 3


def test_youtube_vos_detected_by_meta(tmp_path):
    make_video(tmp_path, "v", person_masks(2))
    (tmp_path / "meta.json").write_text(json.dumps({"videos": {}}))
    assert find_dataset(tmp_path).layout == "youtube-vos"
    assert find_dataset(tmp_path).sparse_masks


def test_no_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(VcsegError, match="no dataset found"):
        find_dataset(tmp_path)
    with pytest.raises(VcsegError, match="unknown layout"):
        make_video(tmp_path, "v", person_masks(1))
        find_dataset(tmp_path, layout="coco")


def test_which_entries_count_as_frames_and_masks(tmp_path):
    """Frames and masks are files by suffix, any case, a symbolic link to one included; a hidden
    file, a folder named like a frame, a dangling link and other suffixes are not; natural order."""
    frames, masks = tmp_path / "JPEGImages" / "v", tmp_path / "Annotations" / "v"
    mask = person_masks(1)[0]
    for stem in ("frame2", "frame10"):
        write_frame(frames / f"{stem}.jpg", *mask.shape)
    write_frame(tmp_path / "elsewhere.jpg", *mask.shape)
    (frames / "frame3.JPG").symlink_to(tmp_path / "elsewhere.jpg")
    write_frame(frames / ".frame1.jpg", *mask.shape)
    (frames / "frame4.jpg").mkdir()
    (frames / "frame5.jpg").symlink_to(tmp_path / "missing.jpg")
    (frames / "notes.txt").write_text("not a frame")
    write_mask(masks / "frame2.png", mask)
    (masks / "frame2.jpg").write_bytes(b"")  # a mask folder's JPEG is no mask
    video = find_dataset(tmp_path).video("v")
    assert list(video.frames) == ["frame2", "frame3", "frame10"]
    assert video.frames["frame3"] == frames / "frame3.JPG"
    assert list(video.masks) == ["frame2"]
    assert find_mask_videos(tmp_path) == {"v": {"frame2": masks / "frame2.png"}}
