"""Video training clips: skip schedule, sampler keys, frame gaps, objects from frame 0, one-hot
masks, shared augmentation, crop sizes, determinism and DataLoader workers."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from vcseg.data.augment import NO_AUGMENT, VIDEO_AUGMENT
from vcseg.data.cache import FrameCache, build_cache
from vcseg.data.clips import (STCN_SKIP_SCHEDULE, ClipKey, ClipSampler,
                              VideoClipDataset, max_skip_at, sample_frame_indices)
from vcseg.errors import VcsegError
from vcseg.io.layouts import find_dataset
from vcseg.io.masks import write_mask

H, W = 64, 96


def textured_frame(seed: int) -> np.ndarray:
    """A (64, 96, 3) frame with blocks of colour (survives JPEG well enough to tell frames apart)."""
    blocks = np.random.default_rng(seed).integers(0, 256, (8, 12, 3), dtype=np.uint8)
    return np.repeat(np.repeat(blocks, 8, axis=0), 8, axis=1)


def write_video(root: Path, name: str, masks: list[np.ndarray], frames: list[np.ndarray] | None = None) -> None:
    """DAVIS layout: JPEGImages/<name>/<t>.jpg (textured, or `frames`) and Annotations/<name>/<t>.png."""
    for t, mask in enumerate(masks):
        frame = frames[t] if frames is not None else textured_frame(zlib.crc32(name.encode()) + t)
        path = root / "JPEGImages" / name / f"{t:05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(frame).save(path, quality=95)
        write_mask(root / "Annotations" / name / f"{t:05d}.png", mask)


def box(mask: np.ndarray, value: int, top: int, left: int, height: int, width: int) -> None:
    mask[top:top + height, left:left + width] = value


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three videos of 64x96:
    'walk' (30 frames): id 1 always; id 3 in frames 0-9 only; id 2 from frame 10 on;
    'late' (12 frames): empty masks in frames 0-7, id 1 from frame 8 on;
    'crowd' (6 frames): ids 1, 2, 4, 7 in every frame."""
    root = tmp_path_factory.mktemp("clips")
    walk = []
    for t in range(30):
        mask = np.zeros((H, W), np.uint8)
        box(mask, 1, 10, 5 + t, 30, 20)
        if t < 10:
            box(mask, 3, 45, 60, 15, 30)
        else:
            box(mask, 2, 5, 70, 20, 20)
        walk.append(mask)
    write_video(root, "walk", walk)
    late = [np.zeros((H, W), np.uint8) for _ in range(12)]
    for mask in late[8:]:
        box(mask, 1, 20, 30, 30, 30)
    write_video(root, "late", late)
    crowd = []
    for _ in range(6):
        mask = np.zeros((H, W), np.uint8)
        for k, value in enumerate((1, 2, 4, 7)):
            box(mask, value, 5 + 14 * k, 10 + 20 * k, 12, 15)
        crowd.append(mask)
    write_video(root, "crowd", crowd)
    return root


def raw_masks(root: Path, video: str, stems: list[str]) -> np.ndarray:
    return np.stack([np.asarray(Image.open(root / "Annotations" / video / f"{s}.png")) for s in stems])


def raw_frames(root: Path, video: str, stems: list[str]) -> np.ndarray:
    return np.stack([np.asarray(Image.open(root / "JPEGImages" / video / f"{s}.jpg").convert("RGB"))
                     for s in stems])


def denormalize(frames: torch.Tensor) -> np.ndarray:
    """(T, 3, H, W) in [0, 1] -> (T, H, W, 3) float 0..255."""
    return frames.numpy().transpose(0, 2, 3, 1) * 255.0


# ---- the schedule -----------------------------------------------------------------------------------

@pytest.mark.parametrize("progress, expected", [(0.0, 5), (0.05, 5), (0.1, 10), (0.15, 10), (0.2, 15),
                                                (0.35, 20), (0.4, 25), (0.89, 25), (0.9, 5), (1.0, 5)])
def test_stcn_schedule_values(progress: float, expected: int) -> None:
    assert max_skip_at(progress, STCN_SKIP_SCHEDULE) == expected


def test_before_first_pair_the_first_value_applies() -> None:
    schedule = [(0.1, 10), (0.5, 20), (0.9, 5)]
    assert [max_skip_at(p, schedule) for p in (0.0, 0.09, 0.1, 0.49, 0.5, 0.95)] == [10, 10, 10, 10, 20, 5]


@pytest.mark.parametrize("schedule", [[], [(0.5, 10), (0.2, 5)], [(0.1, 0)], [(1.5, 3)]])
def test_bad_schedule_is_a_user_error(schedule) -> None:
    with pytest.raises(VcsegError, match="schedule"):
        max_skip_at(0.5, schedule)


# ---- the sampler ------------------------------------------------------------------------------------

def test_sampler_covers_each_index_once_per_epoch_with_scheduled_skips() -> None:
    sampler = ClipSampler(5, total_items=20, schedule=[(0.0, 2), (0.5, 7)], seed=3)
    keys = list(sampler)
    assert len(keys) == len(sampler) == 20
    for epoch in range(4):
        chunk = keys[5 * epoch: 5 * epoch + 5]
        assert {k.epoch for k in chunk} == {epoch}
        assert sorted(k.index for k in chunk) == [0, 1, 2, 3, 4]
    # item n has progress n / 20: 2 below 0.5, 7 from item 10 on
    assert [k.max_skip for k in keys] == [2] * 10 + [7] * 10
    assert [k.index for k in keys[:5]] != [k.index for k in keys[5:10]]  # reshuffled (seed 3)


def test_sampler_resumes_exactly_and_splits_across_ranks() -> None:
    full = list(ClipSampler(7, total_items=30, schedule=STCN_SKIP_SCHEDULE, seed=1))
    assert list(ClipSampler(7, total_items=30, schedule=STCN_SKIP_SCHEDULE, seed=1, start_item=12)) == full[12:]
    ranks = [list(ClipSampler(7, total_items=30, schedule=STCN_SKIP_SCHEDULE, seed=1, rank=r, world_size=2))
             for r in (0, 1)]
    assert ranks[0] == full[0::2] and ranks[1] == full[1::2]


# ---- frame indices ----------------------------------------------------------------------------------

@pytest.mark.parametrize("length, frames, skip", [(30, 3, 4), (30, 5, 1), (10, 3, 25), (3, 3, 9)])
def test_frame_indices_increase_with_gaps_within_the_skip(length: int, frames: int, skip: int) -> None:
    rng = np.random.default_rng(0)
    largest = min(skip, (length - 1) // (frames - 1))  # a short video caps the gap
    seen = set()
    for _ in range(300):
        indices = sample_frame_indices(rng, length, frames, skip)
        gaps = np.diff(indices)
        assert len(indices) == frames and indices[0] >= 0 and indices[-1] < length
        assert gaps.min() >= 1 and gaps.max() <= largest
        seen.update(gaps.tolist())
    assert seen == set(range(1, largest + 1))  # every allowed gap occurs


# ---- items ------------------------------------------------------------------------------------------

def test_identity_items_match_the_files(dataset_root: Path) -> None:
    """Without augmentation and with the crop the frame's size, an item is the files themselves."""
    data = VideoClipDataset(find_dataset(dataset_root), short_side=H, crop=(H, W), augment=NO_AUGMENT,
                            max_objects=3, min_object_pixels=1, seed=5)
    for index in range(len(data)):
        for epoch in range(4):
            item = data[ClipKey(epoch, index, 3)]
            info = item["info"]
            video = info["video"]
            stems = info["stems"]
            positions = info["frame_indices"].tolist()
            assert stems == [f"{p:05d}" for p in positions]  # every frame annotated here
            assert all(1 <= g <= 3 for g in np.diff(positions))
            masks = raw_masks(dataset_root, video, stems)
            present = sorted(set(np.unique(masks[0]).tolist()) - {0})
            chosen = [i for i in info["ids"].tolist() if i]
            assert info["objects"] == len(chosen) == min(3, len(present))
            assert set(chosen) <= set(present)
            assert item["valid"].tolist() == [True] * len(chosen) + [False] * (3 - len(chosen))
            for slot, object_id in enumerate(chosen):
                assert torch.equal(item["masks"][:, slot], torch.from_numpy((masks == object_id).astype(np.float32)))
            assert item["masks"][:, len(chosen):].sum() == 0
            assert item["masks"].sum(dim=1).max() <= 1
            assert np.abs(denormalize(item["frames"]) - raw_frames(dataset_root, video, stems)).max() < 1e-3


def test_objects_come_from_the_first_frame_only(dataset_root: Path) -> None:
    data = VideoClipDataset(find_dataset(dataset_root), ["walk"], short_side=H, crop=(H, W),
                            augment=NO_AUGMENT, min_object_pixels=1)
    seen_late_id2, seen_first_has_3 = False, False
    for epoch in range(40):
        item = data[ClipKey(epoch, 0, 6)]
        first = int(item["info"]["stems"][0])
        ids = [i for i in item["info"]["ids"].tolist() if i]
        assert ids == ([1, 3] if first < 10 else [1, 2])
        if first < 10 and int(item["info"]["stems"][-1]) >= 10:
            seen_late_id2 = True  # id 2 appears later in the clip but is not a target
        seen_first_has_3 |= first < 10
    assert seen_late_id2 and seen_first_has_3


def test_more_objects_than_slots_gives_a_subset(dataset_root: Path) -> None:
    data = VideoClipDataset(find_dataset(dataset_root), ["crowd"], short_side=H, crop=(H, W),
                            augment=NO_AUGMENT, max_objects=2, min_object_pixels=1)
    subsets = set()
    for epoch in range(30):
        item = data[ClipKey(epoch, 0, 2)]
        ids = item["info"]["ids"].tolist()
        assert len(ids) == 2 and set(ids) <= {1, 2, 4, 7} and ids == sorted(ids)
        assert item["valid"].all()
        subsets.add(tuple(ids))
    assert len(subsets) > 2


def test_empty_first_frames_are_resampled(dataset_root: Path) -> None:
    data = VideoClipDataset(find_dataset(dataset_root), ["late"], short_side=H, crop=(H, W),
                            augment=NO_AUGMENT, min_object_pixels=1, max_tries=30)
    tries = []
    for epoch in range(15):
        item = data[ClipKey(epoch, 0, 2)]
        assert int(item["info"]["stems"][0]) >= 8  # only frames 8.. show the object
        assert item["valid"].tolist() == [True, False, False]
        assert item["masks"][0, 0].sum() == 30 * 30
        tries.append(item["info"]["tries"])
    assert max(tries) > 1


def test_no_object_anywhere_gives_an_item_without_valid_slots(tmp_path: Path) -> None:
    write_video(tmp_path, "empty", [np.zeros((H, W), np.uint8)] * 4)
    data = VideoClipDataset(find_dataset(tmp_path), short_side=H, crop=(H, W), augment=NO_AUGMENT, max_tries=3)
    item = data[0]
    assert item["info"]["objects"] == 0 and not item["valid"].any() and item["info"]["tries"] == 3
    assert item["masks"].sum() == 0


def test_crop_size_padding_and_multiple_of_16(dataset_root: Path) -> None:
    files = find_dataset(dataset_root)
    data = VideoClipDataset(files, short_side=H, crop=(96, 128), augment=NO_AUGMENT, min_object_pixels=1)
    item = data[ClipKey(0, 2, 3)]  # 'walk' (videos sorted: crowd, late, walk)
    assert item["frames"].shape == (3, 3, 96, 128) and item["masks"].shape == (3, 3, 96, 128)
    # the 64x96 frame lies inside the 96x128 window; the rest is background with the mean colour
    masks = raw_masks(dataset_root, "walk", item["info"]["stems"])
    slot = item["info"]["ids"].tolist().index(1)
    assert item["masks"][:, slot].sum() == (masks == 1).sum()
    corner_frames = denormalize(item["frames"])
    padding = np.all(np.abs(corner_frames - np.array([124, 116, 104])) < 1e-3, axis=-1)  # T, 96, 128
    assert padding.sum(axis=(1, 2)).tolist() == [96 * 128 - H * W] * 3
    for crop in (100, (64, 90), 8):
        with pytest.raises(VcsegError, match="multiple of 16"):
            VideoClipDataset(files, short_side=H, crop=crop)


def test_same_augmentation_for_every_frame(tmp_path: Path) -> None:
    """A video of one repeated frame stays identical frame to frame under the clip-wide
    augmentation, but not with the per-frame jitter on; and the augmentation does change it."""
    frame = textured_frame(7)
    mask = np.zeros((H, W), np.uint8)
    box(mask, 1, 10, 20, 40, 40)
    write_video(tmp_path, "still", [mask] * 8, [frame] * 8)
    files = find_dataset(tmp_path)
    shared = VideoClipDataset(files, short_side=H, crop=(48, 64), augment=VIDEO_AUGMENT.without_frame_jitter(),
                              min_object_pixels=1)
    jittered = VideoClipDataset(files, short_side=H, crop=(48, 64), augment=VIDEO_AUGMENT, min_object_pixels=1)
    plain = VideoClipDataset(files, short_side=H, crop=(48, 64), augment=NO_AUGMENT, min_object_pixels=1)
    for epoch in range(5):
        key = ClipKey(epoch, 0, 3)
        item = shared[key]
        assert torch.equal(item["frames"][0], item["frames"][1]) and torch.equal(item["frames"][0], item["frames"][2])
        assert torch.equal(item["masks"][0], item["masks"][2])
        assert item["masks"][0, 0].sum() > 0
        other = jittered[key]
        assert not torch.equal(other["frames"][0], other["frames"][1])
        assert not torch.equal(item["frames"][0], plain[key]["frames"][0])


def test_items_are_deterministic(dataset_root: Path) -> None:
    files = find_dataset(dataset_root)
    first = VideoClipDataset(files, short_side=H, crop=(48, 64), paste_probability=0.5, min_object_pixels=1, seed=11)
    second = VideoClipDataset(files, short_side=H, crop=(48, 64), paste_probability=0.5, min_object_pixels=1, seed=11)
    reseeded = VideoClipDataset(files, short_side=H, crop=(48, 64), paste_probability=0.5, min_object_pixels=1, seed=12)
    key = ClipKey(3, 2, 4)
    a, b = first[key], second[key]
    for name in ("frames", "masks", "valid"):
        assert torch.equal(a[name], b[name])
    assert a["info"]["stems"] == b["info"]["stems"]
    assert not torch.equal(a["frames"], first[ClipKey(3, 1, 4)]["frames"])  # another index
    assert not torch.equal(a["frames"], first[ClipKey(4, 2, 4)]["frames"])  # another epoch
    assert not torch.equal(a["frames"], reseeded[key]["frames"])  # another seed
    pasted = [first[ClipKey(e, 2, 4)]["info"]["pasted"] for e in range(12)]
    assert any(pasted) and not all(pasted)


def test_copy_paste_adds_a_person(dataset_root: Path) -> None:
    """'late' frames 8..11 hold one person; a paste from another video can add a second (ids 1..2),
    and every pasted id that is a target is visible in frame 0."""
    data = VideoClipDataset(find_dataset(dataset_root), short_side=H, crop=(H, W), augment=NO_AUGMENT,
                            paste_probability=1.0, min_object_pixels=1, max_objects=4)
    objects = []
    for epoch in range(25):
        item = data[ClipKey(epoch, 1, 2)]
        assert item["info"]["pasted"]
        valid = item["valid"]
        assert (item["masks"][0][valid].flatten(1).sum(dim=1) > 0).all()
        assert item["masks"].sum(dim=1).max() <= 1
        objects.append(item["info"]["objects"])
    assert max(objects) >= 2


def test_cache_and_files_give_equal_items(dataset_root: Path, tmp_path: Path) -> None:
    files = find_dataset(dataset_root)
    build_cache(files, tmp_path / "cache", 48, progress=False)
    cache = FrameCache(tmp_path / "cache", 48)
    cached = VideoClipDataset(files, short_side=48, cache=cache, crop=(48, 64), min_object_pixels=1)
    decoded = VideoClipDataset(files, short_side=48, crop=(48, 64), min_object_pixels=1)
    for key in (ClipKey(0, 0, 3), ClipKey(1, 2, 5)):
        assert torch.equal(cached[key]["frames"], decoded[key]["frames"])
        assert torch.equal(cached[key]["masks"], decoded[key]["masks"])
    with pytest.raises(VcsegError, match="short side"):
        VideoClipDataset(files, short_side=64, cache=cache)


def test_unknown_video_names_are_a_user_error(dataset_root: Path) -> None:
    with pytest.raises(VcsegError, match="nosuch"):
        VideoClipDataset(find_dataset(dataset_root), ["walk", "nosuch"])


def test_dataloader_workers_see_set_max_skip_and_match_direct_items(dataset_root: Path) -> None:
    files = find_dataset(dataset_root)
    data = VideoClipDataset(files, ["walk"], short_side=H, crop=(48, 64), min_object_pixels=1, max_skip=1)
    loader = DataLoader(data, batch_size=2, sampler=[0, 0], num_workers=1, persistent_workers=True)
    first = next(iter(loader))
    assert first["info"]["max_skip"].tolist() == [1, 1]
    assert first["frames"].shape == (2, 3, 3, 48, 64)
    assert all(g == 1 for g in np.diff(first["info"]["frame_indices"].numpy(), axis=1).ravel())
    data.set_max_skip(9)
    data.set_epoch(2)
    second = next(iter(loader))  # the same persistent worker
    assert second["info"]["max_skip"].tolist() == [9, 9] and second["info"]["epoch"].tolist() == [2, 2]
    assert torch.equal(second["frames"][0], data[ClipKey(2, 0, 9)]["frames"])
    keyed = DataLoader(data, batch_size=3, sampler=ClipSampler(1, 3, fixed_skip=4, seed=0), num_workers=1)
    batch = next(iter(keyed))
    assert batch["info"]["epoch"].tolist() == [0, 1, 2] and batch["info"]["max_skip"].tolist() == [4, 4, 4]
    assert torch.equal(batch["masks"][1], data[ClipKey(1, 0, 4)]["masks"])
