"""Video training clips for the memory network: `VideoClipDataset`, its sampler and skip schedule.

An item is a short clip (`clip_frames`, default 3) of one training video, frames in temporal order
with random gaps of at most `max_skip` annotated frames, augmented (`augment.py`) and cropped to
`crop`, with up to `max_objects` objects chosen among those visible in the clip's FIRST frame
(the memory network is given frame 0's mask and must find the same objects later).

Item (a dict; `torch.utils.data.default_collate` stacks it into a batch):

    frames  float32 (T, 3, H, W)  RGB in [0, 1] (the model applies the ImageNet normalisation)
    masks   float32 (T, K, H, W)  one-hot: masks[t, k] is 1 where slot k's object is (0 for
                                  padded slots); at most one slot is 1 at a pixel
    valid   bool    (K,)          slots in use: the first `objects` slots
    info    dict: video (str), stems (list of T str), frame_indices (int64 (T,): positions in the
            video's annotated frames, what max_skip bounds; for DAVIS every frame is annotated),
            ids (int64 (K,): the mask id behind each slot after any copy-paste, 0 when padded),
            objects (int), epoch, index, max_skip (int), pasted (bool), tries (int)

with T = clip_frames, K = max_objects, (H, W) = crop. After default_collate a batch has frames
(B, T, 3, H, W), masks (B, T, K, H, W), valid (B, K); info["video"] a list of B names,
info["stems"] T lists of B stems, the other info entries stacked tensors.

Objects are renumbered slot 1..k in increasing id order; a random subset when frame 0 shows more
than K. The crop window is drawn among those holding a random object pixel of frame 0 (after its
warp), so it shows part of an object whenever frame 0 has one. When frame 0 shows no object
big enough (`min_object_pixels`, counted in the crop) the clip is drawn again, up to `max_tries`
times (after half of them from other videos); if all fail, the last clip comes back with no valid
slot (objects 0), which the trainer should skip or mask out of the loss.

Determinism and workers: an item is a pure function of (seed, epoch, index, max_skip), drawn from
`np.random.default_rng([seed, epoch, index])`. There are two ways to say which (epoch, max_skip):

- the sampler passes them in (exact resume; recommended): `ClipSampler` yields `ClipKey(epoch,
  index, max_skip)` with max_skip from the schedule at that item's place in the whole run, and
  `dataset[key]` uses them. Resuming at step s with batch size b: `ClipSampler(..., start_item=s*b)`
  yields exactly the keys the interrupted run would have;
- plain integer indices use the dataset's `epoch` and `max_skip`, set with `set_epoch(e)` /
  `set_max_skip(n)`. These live in shared memory (`multiprocessing.Value`), so DataLoader workers,
  persistent ones included, see a change at once; but items already prefetched were made with the
  old value, so which items see the change depends on timing: fine for quick runs, not for exact
  resume.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from vcseg.data.augment import VIDEO_AUGMENT, Augment, Photometric, augment_clip
from vcseg.data.cache import FrameCache, load_clip
from vcseg.data.compose import PasteParams, compose_clip
from vcseg.errors import VcsegError
from vcseg.io.layouts import DatasetFiles, VideoFiles


# STCN's curriculum (Cheng et al. 2021): 5 at first, growing to 25, back to 5 for the last tenth
# so that the final training matches frame-by-frame testing.
STCN_SKIP_SCHEDULE: tuple[tuple[float, int], ...] = ((0.0, 5), (0.1, 10), (0.2, 15), (0.3, 20), (0.4, 25),
                                                     (0.9, 5))


# ---- the schedule ---------------------------------------------------------------------------------

def check_schedule(schedule: Sequence[tuple[float, int]]) -> list[tuple[float, int]]:
    """The schedule as a list of (fraction, max_skip); VcsegError when it is not one."""
    pairs = [(float(f), int(s)) for f, s in schedule]
    fractions = [f for f, _ in pairs]
    if not pairs or fractions != sorted(fractions) or not all(0.0 <= f <= 1.0 for f in fractions) \
            or any(s < 1 for _, s in pairs):
        raise VcsegError(f"skip schedule {list(schedule)}: give (fraction, max_skip) pairs with fractions "
                         "increasing within [0, 1] and max_skip >= 1, e.g. [(0.1, 10), (0.9, 5)]")
    return pairs


def max_skip_at(progress: float, schedule: Sequence[tuple[float, int]]) -> int:
    """The maximum frame skip at `progress` (fraction of training done, 0..1) under `schedule`.

    schedule: (fraction, max_skip) pairs, fractions increasing. The value is that of the last pair
    whose fraction <= progress; before the first pair, the first pair's value. E.g. under
    [(0.1, 10), (0.9, 5)]: 10 until 0.9, then 5.
    """
    pairs = check_schedule(schedule)
    value = pairs[0][1]
    for fraction, skip in pairs:
        if fraction <= progress:
            value = skip
    return value


# ---- keys and the sampler -------------------------------------------------------------------------

class ClipKey(NamedTuple):
    """What defines one item: its epoch, its index in the dataset and the max skip to draw with."""

    epoch: int
    index: int
    max_skip: int


class ClipSampler(Sampler):
    """The items of a whole training run, as `ClipKey`s, each epoch a fresh permutation.

    Global item n (0-based, counting across epochs) is ClipKey(epoch=n // length,
    index=permutation(seed, epoch)[n % length], max_skip=max_skip_at(n / total_items, schedule)).
    Iteration yields items start_item, start_item + 1, ..., total_items - 1 (with DDP, rank r of w
    takes every w-th of them, starting at start_item + r; start_item then counts the items of all
    ranks: steps * batch_size * world_size). `schedule=None` gives max_skip `fixed_skip` throughout.
    """

    def __init__(self, length: int, total_items: int, *, schedule: Sequence[tuple[float, int]] | None = None,
                 fixed_skip: int = 1, seed: int = 0, start_item: int = 0, shuffle: bool = True,
                 rank: int = 0, world_size: int = 1) -> None:
        if length < 1:
            raise VcsegError("no training items: the dataset is empty")
        self.length, self.total_items = length, total_items
        self.schedule = check_schedule(schedule) if schedule is not None else None
        self.fixed_skip, self.seed, self.start_item, self.shuffle = fixed_skip, seed, start_item, shuffle
        self.rank, self.world_size = rank, world_size
        self._cached: tuple[int, np.ndarray] = (-1, np.arange(length))

    def _permutation(self, epoch: int) -> np.ndarray:
        if self._cached[0] != epoch:  # one permutation per epoch, not per item
            self._cached = (epoch, np.random.default_rng([self.seed, epoch]).permutation(self.length))
        return self._cached[1]

    def key(self, n: int) -> ClipKey:
        """The key of global item n."""
        epoch, position = divmod(n, self.length)
        index = int(self._permutation(epoch)[position]) if self.shuffle else position
        skip = self.fixed_skip if self.schedule is None else max_skip_at(n / self.total_items, self.schedule)
        return ClipKey(epoch, index, skip)

    def __iter__(self) -> Iterator[ClipKey]:
        for n in range(self.start_item + self.rank, self.total_items, self.world_size):
            yield self.key(n)

    def __len__(self) -> int:
        return len(range(self.start_item + self.rank, self.total_items, self.world_size))


# ---- pure helpers: frames, objects, tensors -------------------------------------------------------

def sample_frame_indices(rng: np.random.Generator, length: int, clip_frames: int, max_skip: int) -> list[int]:
    """`clip_frames` increasing positions in 0..length-1 with gaps in 1..max_skip, uniform.

    A video too short for gaps up to max_skip gets gaps up to (length - 1) // (clip_frames - 1).
    """
    if length < clip_frames:
        raise ValueError(f"a video of {length} frames cannot give a clip of {clip_frames}")
    if clip_frames == 1:
        return [int(rng.integers(length))]
    largest = max(1, min(max_skip, (length - 1) // (clip_frames - 1)))
    gaps = rng.integers(1, largest + 1, size=clip_frames - 1)
    start = int(rng.integers(0, length - int(gaps.sum())))
    return [start, *(start + np.cumsum(gaps)).tolist()]


def pick_objects(first_mask: np.ndarray, rng: np.random.Generator, max_objects: int,
                 min_pixels: int) -> list[int]:
    """Up to `max_objects` ids covering at least `min_pixels` of the (H, W) mask, increasing;
    a random subset when there are more."""
    counts = np.bincount(first_mask.ravel(), minlength=256)
    ids = [int(i) for i in np.flatnonzero(counts[1:] >= max(1, min_pixels)) + 1]
    if len(ids) > max_objects:
        ids = sorted(int(i) for i in rng.choice(ids, size=max_objects, replace=False))
    return ids


def clip_tensors(frames: np.ndarray, masks: np.ndarray, ids: Sequence[int],
                 max_objects: int) -> dict[str, torch.Tensor]:
    """frames (T, H, W, 3) uint8, masks (T, H, W) ids -> the item's frames, masks, valid tensors."""
    normalized = np.ascontiguousarray(frames.transpose(0, 3, 1, 2)).astype(np.float32)  # T, 3, H, W
    normalized *= np.float32(1.0 / 255.0)
    one_hot = np.zeros((masks.shape[0], max_objects, *masks.shape[1:]), dtype=np.float32)  # T, K, H, W
    for slot, object_id in enumerate(ids):
        one_hot[:, slot] = masks == object_id
    valid = np.zeros(max_objects, dtype=bool)
    valid[:len(ids)] = True
    return {"frames": torch.from_numpy(normalized), "masks": torch.from_numpy(one_hot),
            "valid": torch.from_numpy(valid)}


def crop_size(crop: int | tuple[int, int]) -> tuple[int, int]:
    """(height, width) of the crop; VcsegError unless both are positive multiples of 16."""
    size = (crop, crop) if isinstance(crop, int) else tuple(int(c) for c in crop)
    if len(size) != 2 or any(c < 16 or c % 16 for c in size):
        raise VcsegError(f"crop {crop}: give a size that is a positive multiple of 16 (the network "
                         "downsamples by 16), e.g. 384 or (384, 640)")
    return size


def select_videos(dataset: DatasetFiles, videos: Sequence[str] | None) -> list[VideoFiles]:
    """The named videos of `dataset` (e.g. an index's train split), or all of them by name."""
    by_name = {video.name: video for video in dataset.videos}
    if videos is not None:
        unknown = [name for name in videos if name not in by_name]
        if unknown:
            raise VcsegError(f"{dataset.root}: no videos named {unknown[:3]}; the index and the "
                             "dataset disagree: re-run vcseg ingest")
    return [by_name[name] for name in (videos if videos is not None else sorted(by_name))]


# ---- the datasets' shared machinery --------------------------------------------------------------

class ClipDatasetBase(Dataset):
    """What video and static clip datasets share: keys, shared epoch / max_skip, crop, tensors."""

    def __init__(self, *, short_side: int, cache: FrameCache | None, clip_frames: int, max_objects: int,
                 crop: int | tuple[int, int], seed: int, augment: Augment, max_tries: int,
                 min_object_pixels: int, max_skip: int = 1) -> None:
        if clip_frames < 1 or max_objects < 1 or max_tries < 1:
            raise VcsegError("clip_frames, max_objects and max_tries must be at least 1")
        if cache is not None and cache.short_side != short_side:
            raise VcsegError(f"{cache.root}: the frame cache is at short side {cache.short_side}, "
                             f"the clips at {short_side}; use a cache built at {short_side}")
        self.short_side, self.cache = short_side, cache
        self.clip_frames, self.max_objects = clip_frames, max_objects
        self.crop_hw = crop_size(crop)
        self.seed, self.augment, self.max_tries = seed, augment, max_tries
        self.min_object_pixels = min_object_pixels
        self.photometric = Photometric(augment)
        # shared with DataLoader workers (they inherit the memory): see the module docstring
        self._epoch = multiprocessing.Value("q", 0, lock=False)  # one writer (the trainer): no lock
        self._max_skip = multiprocessing.Value("i", max_skip, lock=False)

    def set_epoch(self, epoch: int) -> None:
        """Epoch used for plain integer indices (workers see it at once)."""
        self._epoch.value = int(epoch)

    def set_max_skip(self, max_skip: int) -> None:
        """Max skip used for plain integer indices (workers see it at once)."""
        if max_skip < 1:
            raise VcsegError(f"max_skip must be at least 1, got {max_skip}")
        self._max_skip.value = int(max_skip)

    @property
    def epoch(self) -> int:
        return int(self._epoch.value)

    @property
    def max_skip(self) -> int:
        return int(self._max_skip.value)

    def resolve(self, key: int | ClipKey | Sequence[int]) -> ClipKey:
        """A ClipKey for `key`: an int takes the shared epoch and max skip."""
        if isinstance(key, (int, np.integer)):
            key = ClipKey(self.epoch, int(key), self.max_skip)
        else:
            key = ClipKey(*(int(k) for k in key))
        if not 0 <= key.index < len(self):
            raise IndexError(f"index {key.index} out of range for {len(self)} items")
        return key

    def item_rng(self, key: ClipKey) -> np.random.Generator:
        return np.random.default_rng([self.seed, key.epoch, key.index])

    def load(self, video: VideoFiles, stems: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(T, H, W, 3) frames and (T, H, W) masks at the short side, from the cache when fresh."""
        clip = load_clip(video, stems, self.short_side, self.cache)
        return clip.frames, clip.masks

    def finish(self, frames: np.ndarray, masks: np.ndarray, ids: Sequence[int],
               info: dict[str, Any]) -> dict[str, Any]:
        item = clip_tensors(frames, masks, ids, self.max_objects)
        slot_ids = np.zeros(self.max_objects, dtype=np.int64)
        slot_ids[:len(ids)] = ids
        item["info"] = {**info, "ids": torch.from_numpy(slot_ids), "objects": len(ids)}
        return item

    def __getstate__(self) -> dict[str, Any]:
        # a FrameCache holds open memory maps: a worker reopens its own rather than copying pixels
        state = dict(self.__dict__)
        if self.cache is not None:
            state["cache"] = (str(self.cache.cache_dir), self.cache.short_side)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if isinstance(state.get("cache"), tuple):
            state["cache"] = FrameCache(*state["cache"])
        self.__dict__.update(state)


# ---- the video dataset ----------------------------------------------------------------------------

class VideoClipDataset(ClipDatasetBase):
    """Clips of `clip_frames` annotated frames of training videos (see the module docstring).

    dataset: what `find_dataset` found; videos: names to use (e.g. the index's split["train"]),
    None for every video with at least `clip_frames` annotated frames. One item per video per
    epoch (`len` = number of videos). paste_probability: chance of copy-pasting a person of
    another training video into the clip (`compose_clip`, with `paste` parameters) before the
    augmentation.

    Example:
        data = VideoClipDataset(find_dataset("davis"), short_side=480, cache=FrameCache("cache", 480))
        sampler = ClipSampler(len(data), total_items=steps * 8, schedule=STCN_SKIP_SCHEDULE, seed=1)
        loader = DataLoader(data, batch_size=8, sampler=sampler, num_workers=4)
    """

    def __init__(self, dataset: DatasetFiles, videos: Sequence[str] | None = None, *, short_side: int = 480,
                 cache: FrameCache | None = None, clip_frames: int = 3, max_objects: int = 3,
                 crop: int | tuple[int, int] = 384, max_skip: int = 5, seed: int = 0,
                 augment: Augment = VIDEO_AUGMENT, paste_probability: float = 0.0,
                 paste: PasteParams = PasteParams(), max_tries: int = 10, min_object_pixels: int = 100) -> None:
        super().__init__(short_side=short_side, cache=cache, clip_frames=clip_frames, max_objects=max_objects,
                         crop=crop, seed=seed, augment=augment, max_tries=max_tries,
                         min_object_pixels=min_object_pixels, max_skip=max_skip)
        if max_skip < 1:
            raise VcsegError(f"max_skip must be at least 1, got {max_skip}")
        chosen = select_videos(dataset, videos)
        self.videos: list[VideoFiles] = []
        self.annotated: list[list[str]] = []  # per video, the stems with a mask, in frame order
        for video in chosen:
            stems = [stem for stem in video.stems if stem in video.masks]
            if len(stems) >= clip_frames:
                self.videos.append(video)
                self.annotated.append(stems)
        if not self.videos:
            raise VcsegError(f"{dataset.root}: no video has {clip_frames} frames with masks; training "
                             "needs annotated videos (JPEGImages/<video>/*.jpg with Annotations/<video>/*.png)")
        self.paste_probability, self.paste = paste_probability, paste

    def __len__(self) -> int:
        return len(self.videos)

    def _draw_clip(self, rng: np.random.Generator, video: int,
                   max_skip: int) -> tuple[list[int], np.ndarray, np.ndarray]:
        """Annotated-frame positions, (T, H, W, 3) frames and (T, H, W) masks of a random clip."""
        positions = sample_frame_indices(rng, len(self.annotated[video]), self.clip_frames, max_skip)
        frames, masks = self.load(self.videos[video], [self.annotated[video][p] for p in positions])
        return positions, frames, masks

    def __getitem__(self, key: int | ClipKey) -> dict[str, Any]:
        key = self.resolve(key)
        rng = self.item_rng(key)
        video = key.index
        for attempt in range(self.max_tries):
            if attempt >= max(1, self.max_tries // 2):  # this video may have nothing in view: try others
                video = int(rng.integers(len(self.videos)))
            positions, frames, masks = self._draw_clip(rng, video, key.max_skip)
            pasted = bool(rng.random() < self.paste_probability)
            if pasted:
                frames, masks = self._paste(rng, video, key.max_skip, frames, masks)
            frames, masks = augment_clip(frames, masks, rng, self.augment, self.crop_hw, self.photometric)
            ids = pick_objects(masks[0], rng, self.max_objects, self.min_object_pixels)
            if ids:
                break
        name = self.videos[video].name
        info = {"video": name, "stems": [self.annotated[video][p] for p in positions],
                "frame_indices": torch.tensor(positions, dtype=torch.int64), "epoch": key.epoch,
                "index": key.index, "max_skip": key.max_skip, "pasted": pasted, "tries": attempt + 1}
        return self.finish(frames, masks, ids, info)

    def _paste(self, rng: np.random.Generator, video: int, max_skip: int, frames: np.ndarray,
               masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Paste one person of another video's clip (same length, same max skip) into this clip."""
        others = [v for v in range(len(self.videos)) if v != video] or [video]
        source = others[int(rng.integers(len(others)))]
        _, source_frames, source_masks = self._draw_clip(rng, source, max_skip)
        composed = compose_clip(frames, masks, [source_frames], [source_masks], rng, params=self.paste)
        return composed.frames, composed.masks

