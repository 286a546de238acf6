"""Static-image clips: every frame a different warp of one image, ids kept, objects kept,
the shared part shared, deterministic, sizes right."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vcseg.data.augment import STATIC_AUGMENT
from vcseg.data.clips import ClipKey, ClipSampler
from vcseg.data.static import StaticClipDataset
from vcseg.errors import VcsegError
from vcseg.io.layouts import find_dataset
from tests.data.test_clips import H, W, box, textured_frame, write_video


@pytest.fixture(scope="module")
def image_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """'pair': 4 images 64x96 with two central objects (ids 1 and 5); 'bare': 2 images without
    objects; 'unlabelled': frames with no mask file (not images for static clips)."""
    root = tmp_path_factory.mktemp("static")
    masks = []
    for t in range(4):
        mask = np.zeros((H, W), np.uint8)
        box(mask, 1, 12, 20 + t, 36, 26)
        box(mask, 5, 20, 52, 30, 22)
        masks.append(mask)
    write_video(root, "pair", masks, [textured_frame(100 + t) for t in range(4)])
    write_video(root, "bare", [np.zeros((H, W), np.uint8)] * 2)
    path = root / "JPEGImages" / "unlabelled" / "00000.jpg"
    path.parent.mkdir(parents=True)
    Image.fromarray(textured_frame(1)).save(path)
    return root


def test_images_are_the_frames_with_masks(image_root: Path) -> None:
    files = find_dataset(image_root)
    data = StaticClipDataset(files, short_side=H, crop=(48, 64))
    assert [(video.name, stem) for video, stem in data.images] == \
        [("bare", "00000"), ("bare", "00001")] + [("pair", f"{t:05d}") for t in range(4)]
    strided = StaticClipDataset(files, ["pair"], short_side=H, crop=(48, 64), stride=3)
    assert [stem for _, stem in strided.images] == ["00000", "00003"]
    with pytest.raises(VcsegError, match="no frame with a mask"):
        StaticClipDataset(files, ["unlabelled"], short_side=H)


def test_frames_are_different_warps_that_keep_the_objects(image_root: Path) -> None:
    data = StaticClipDataset(find_dataset(image_root), ["pair"], short_side=H, crop=(48, 64), max_objects=3,
                             min_object_pixels=20)
    for epoch in range(6):
        for index in range(len(data)):
            item = data[ClipKey(epoch, index, 1)]
            assert item["frames"].shape == (3, 3, 48, 64) and item["masks"].shape == (3, 3, 48, 64)
            ids = item["info"]["ids"].tolist()
            chosen = [i for i in ids if i]
            assert chosen and set(chosen) <= {1, 5} and chosen == sorted(chosen)
            assert item["info"]["stems"] == [f"{index:05d}"] * 3
            masks = item["masks"]
            assert set(torch.unique(masks).tolist()) <= {0.0, 1.0} and masks.sum(dim=1).max() <= 1
            # each chosen object is in frame 0 (by choice) and, warped, still in frames 1 and 2
            areas = masks[:, : len(chosen)].flatten(2).sum(dim=2)  # T, k
            assert (areas[0] >= 20).all() and (areas > 0).all()
            for t in (1, 2):  # every frame a different warp
                assert not torch.equal(item["frames"][0], item["frames"][t])
                assert not torch.equal(masks[0], masks[t])


def test_without_per_frame_warps_the_frames_are_identical(image_root: Path) -> None:
    data = StaticClipDataset(find_dataset(image_root), ["pair"], short_side=H, crop=(48, 64),
                             augment=STATIC_AUGMENT.without_frame_jitter(), min_object_pixels=1)
    item = data[ClipKey(0, 2, 1)]
    assert torch.equal(item["frames"][0], item["frames"][1]) and torch.equal(item["frames"][1], item["frames"][2])
    assert torch.equal(item["masks"][0], item["masks"][2])


def test_static_items_are_deterministic(image_root: Path) -> None:
    files = find_dataset(image_root)
    first = StaticClipDataset(files, short_side=H, crop=(48, 64), seed=3, min_object_pixels=1)
    second = StaticClipDataset(files, short_side=H, crop=(48, 64), seed=3, min_object_pixels=1)
    key = ClipKey(2, 4, 1)
    a, b = first[key], second[key]
    assert torch.equal(a["frames"], b["frames"]) and torch.equal(a["masks"], b["masks"])
    assert not torch.equal(a["frames"], first[ClipKey(2, 5, 1)]["frames"])
    assert not torch.equal(a["frames"], first[ClipKey(3, 4, 1)]["frames"])


def test_images_without_objects_fall_back_to_other_images(image_root: Path) -> None:
    data = StaticClipDataset(find_dataset(image_root), short_side=H, crop=(48, 64), min_object_pixels=1, max_tries=40)
    for epoch in range(3):
        item = data[ClipKey(epoch, 0, 1)]  # ('bare', '00000'): nothing to follow there
        assert item["info"]["video"] == "pair" and item["info"]["tries"] > 20 and item["valid"][0]


def test_collates_through_a_sampler(image_root: Path) -> None:
    data = StaticClipDataset(find_dataset(image_root), ["pair"], short_side=H, crop=(32, 48), min_object_pixels=1)
    loader = torch.utils.data.DataLoader(data, batch_size=4, sampler=ClipSampler(len(data), 8, seed=0))
    batches = list(loader)
    assert len(batches) == 2 and batches[0]["frames"].shape == (4, 3, 3, 32, 48)
    assert batches[0]["masks"].shape == (4, 3, 3, 32, 48) and batches[0]["valid"].shape == (4, 3)
    assert sorted(batches[1]["info"]["index"].tolist()) == [0, 1, 2, 3]
