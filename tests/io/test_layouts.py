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
