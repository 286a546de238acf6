"""Single-frame proposal training items: one per annotated frame, all persons kept, image and
targets consistent with the mask, deterministic per (seed, epoch, index), DataLoader-ready."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from vcseg.data.augment import NO_AUGMENT
from vcseg.data.cache import FrameCache, build_cache
from vcseg.data.clips import ClipKey, ClipSampler
from vcseg.data.frames import FrameDataset
from vcseg.errors import VcsegError
from vcseg.io.layouts import find_dataset
from vcseg.model.proposal_targets import TargetSpec, instance_centres
from tests.data.test_clips import H, W, box, textured_frame, write_video


@pytest.fixture(scope="module")
def frames_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """'duo' (5 frames, 64x96): ids 1 and 4 (a person holding an object labelled with its id,
    two separate boxes); 'empty' (2 frames): no person."""
    root = tmp_path_factory.mktemp("frames")
    masks = []
    for t in range(5):
        mask = np.zeros((H, W), np.uint8)
        box(mask, 1, 8, 10 + t, 40, 16)
        box(mask, 1, 30, 26 + t, 6, 6)  # the object person 1 holds
        box(mask, 4, 12, 60, 36, 20)
        masks.append(mask)
    write_video(root, "duo", masks, [textured_frame(200 + t) for t in range(5)])
    write_video(root, "empty", [np.zeros((H, W), np.uint8)] * 2)
    return root


def test_items_are_the_annotated_frames(frames_root: Path) -> None:
    files = find_dataset(frames_root)
    data = FrameDataset(files, short_side=H, crop=(64, 96))
    assert [(video.name, stem) for video, stem in data.frames] == \
        [("duo", f"{t:05d}") for t in range(5)] + [("empty", "00000"), ("empty", "00001")]
    assert [stem for _, stem in FrameDataset(files, ["duo"], short_side=H, stride=2).frames] == \
        ["00000", "00002", "00004"]
    with pytest.raises(VcsegError, match="no videos named"):
        FrameDataset(files, ["nope"], short_side=H)
    with pytest.raises(VcsegError, match="stride"):
        FrameDataset(files, short_side=H, stride=0)
    with pytest.raises(VcsegError, match="multiple of 16"):
        FrameDataset(files, short_side=H, crop=50)


def test_unaugmented_item_is_the_frame_with_its_targets(frames_root: Path) -> None:
    spec = TargetSpec(stride=4, sigma=8.0, min_area=20)
    data = FrameDataset(find_dataset(frames_root), ["duo"], short_side=H, crop=(64, 96), augment=NO_AUGMENT,
                        targets=spec)
    item = data[ClipKey(0, 2, 1)]
    assert item["image"].shape == (3, 64, 96) and item["image"].dtype == torch.float32
    assert 0.0 <= item["image"].min() and item["image"].max() <= 1.0
    mask = item["mask"].numpy()
    expected = np.zeros((H, W), np.uint8)
    box(expected, 1, 8, 12, 40, 16)
    box(expected, 1, 30, 28, 6, 6)
    box(expected, 4, 12, 60, 36, 20)
    assert np.array_equal(mask, expected)  # the crop is the whole frame: nothing moved, ids kept
    assert item["info"] == {"video": "duo", "stem": "00002", "epoch": 0, "index": 2, "persons": 2}
    targets = item["targets"]
    assert targets["foreground"].shape == (1, 16, 24) and targets["offsets"].shape == (2, 16, 24)
    assert np.array_equal(targets["foreground"][0].numpy(), (mask[2::4, 2::4] > 0).astype(np.float32))
    heat = targets["centre"][0].numpy()
    for y, x, _ in instance_centres(mask).values():
        peak = (round((y - 1.5) / 4), round((x - 1.5) / 4))
        assert heat[peak] == 1.0
    assert np.count_nonzero(heat == 1.0) == 2


def test_items_are_deterministic_and_targets_follow_the_augmented_mask(frames_root: Path) -> None:
    spec = TargetSpec(stride=4, sigma=8.0, min_area=20)
    data = FrameDataset(find_dataset(frames_root), short_side=H, crop=(48, 64), seed=3, targets=spec)
    first, again = data[ClipKey(1, 0, 1)], data[ClipKey(1, 0, 1)]
    assert torch.equal(first["image"], again["image"]) and torch.equal(first["mask"], again["mask"])
    other_epoch = data[ClipKey(2, 0, 1)]
    assert not torch.equal(first["image"], other_epoch["image"])
    other_seed = FrameDataset(find_dataset(frames_root), short_side=H, crop=(48, 64), seed=4)[ClipKey(1, 0, 1)]
    assert not torch.equal(first["image"], other_seed["image"])
    for epoch in range(4):
        for index in range(len(data)):
            item = data[ClipKey(epoch, index, 1)]
            mask = item["mask"].numpy()
            assert item["image"].shape == (3, 48, 64) and mask.shape == (48, 64)
            assert set(np.unique(mask).tolist()) <= {0, 1, 4}
            expected = {key: value.numpy() for key, value in spec(mask).items()}
            for key, value in item["targets"].items():
                assert np.array_equal(value.numpy(), expected[key]), key
            assert item["info"]["persons"] == len(set(np.unique(mask).tolist()) - {0})
            if data.frames[index][0].name == "duo":  # the crop is drawn to hold a person pixel
                assert item["info"]["persons"] >= 1
    # plain indices take the shared epoch
    data.set_epoch(1)
    assert torch.equal(data[0]["image"], first["image"])


def test_sampler_loader_and_cache_agree(frames_root: Path, tmp_path: Path) -> None:
    files = find_dataset(frames_root)
    build_cache(files, tmp_path / "cache", H, progress=False)
    spec = TargetSpec(stride=4, min_area=20)
    cached = FrameDataset(files, short_side=H, crop=(48, 64), cache=FrameCache(tmp_path / "cache", H), targets=spec)
    plain = FrameDataset(files, short_side=H, crop=(48, 64), targets=spec)
    sampler = ClipSampler(len(cached), total_items=6, seed=5)
    batches = list(DataLoader(cached, batch_size=3, sampler=sampler, num_workers=2))
    assert len(batches) == 2
    batch = batches[1]
    assert batch["image"].shape == (3, 3, 48, 64) and batch["targets"]["centre"].shape == (3, 1, 12, 16)
    keys = [sampler.key(n) for n in range(3, 6)]
    assert batch["info"]["index"].tolist() == [key.index for key in keys]
    for position, key in enumerate(keys):  # workers, cache and files give the same item
        assert torch.equal(batch["image"][position], plain[key]["image"])
        assert torch.equal(batch["mask"][position], plain[key]["mask"])
