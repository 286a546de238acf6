"""Static-image clips for pretraining the memory network, as STM does: `StaticClipDataset`.

Every frame that has a mask is an image (the training videos' frames, or any dataset that
`find_dataset` reads, e.g. a folder of image "videos"). An item turns one image into a clip of
`clip_frames` frames, each a different random affine (rotation, zoom, shear, shift) and elastic
warp of it (`STATIC_AUGMENT`), sharing one flip, zoom, crop window and colour change; the network
then learns to follow the objects of frame 0 through the warps.

The item is the same dict as `VideoClipDataset`'s (see `vcseg.data.clips`): frames (T, 3, H, W)
in [0, 1], masks (T, K, H, W) one-hot, valid (K,), info with video, stems (the image's stem T
times), frame_indices (zeros), ids, objects, epoch, index, max_skip (carried, unused), pasted
(False), tries. Deterministic the same way: a pure function of (seed, epoch, index).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from vcseg.data.augment import STATIC_AUGMENT, Augment, augment_clip
from vcseg.data.cache import FrameCache
from vcseg.data.clips import ClipDatasetBase, ClipKey, pick_objects, select_videos
from vcseg.errors import VcsegError
from vcseg.io.layouts import DatasetFiles, VideoFiles


class StaticClipDataset(ClipDatasetBase):
    """Clips made of random warps of single images with masks.

    dataset: what `find_dataset` found; videos: names to draw images from (None: all);
    stride: take every stride-th annotated frame of a video (consecutive frames are near copies).
    One item per image per epoch. When frame 0 shows no object of `min_object_pixels` the clip is
    warped again, up to `max_tries` times (after half of them from other images); if all fail,
    the item has no valid slot.

    Example:
        data = StaticClipDataset(find_dataset("davis"), short_side=480, stride=5)
        loader = DataLoader(data, batch_size=8, sampler=ClipSampler(len(data), steps * 8), num_workers=4)
    """

    def __init__(self, dataset: DatasetFiles, videos: Sequence[str] | None = None, *, short_side: int = 480,
                 cache: FrameCache | None = None, clip_frames: int = 3, max_objects: int = 3,
                 crop: int | tuple[int, int] = 384, seed: int = 0, augment: Augment = STATIC_AUGMENT,
                 stride: int = 1, max_tries: int = 10, min_object_pixels: int = 100) -> None:
        super().__init__(short_side=short_side, cache=cache, clip_frames=clip_frames, max_objects=max_objects,
                         crop=crop, seed=seed, augment=augment, max_tries=max_tries,
                         min_object_pixels=min_object_pixels)
        if stride < 1:
            raise VcsegError(f"stride must be at least 1, got {stride}")
        self.images: list[tuple[VideoFiles, str]] = []  # (video, stem) of every image used
        for video in select_videos(dataset, sorted(set(videos)) if videos is not None else None):
            stems = [stem for stem in video.stems if stem in video.masks]
            self.images.extend((video, stem) for stem in stems[::stride])
        if not self.images:
            raise VcsegError(f"{dataset.root}: no frame with a mask; static clips need images with masks "
                             "(JPEGImages/<video>/*.jpg with Annotations/<video>/*.png)")

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key: int | ClipKey) -> dict[str, Any]:
        key = self.resolve(key)
        rng = self.item_rng(key)
        image = key.index
        for attempt in range(self.max_tries):
            if attempt >= max(1, self.max_tries // 2):  # nothing visible after several warps: another image
                image = int(rng.integers(len(self.images)))
            video, stem = self.images[image]
            frame, mask = self.load(video, [stem])  # (1, H, W, 3), (1, H, W)
            frames = np.repeat(frame, self.clip_frames, axis=0)
            masks = np.repeat(mask, self.clip_frames, axis=0)
            frames, masks = augment_clip(frames, masks, rng, self.augment, self.crop_hw, self.photometric)
            ids = pick_objects(masks[0], rng, self.max_objects, self.min_object_pixels)
            if ids:
                break
        info = {"video": video.name, "stems": [stem] * self.clip_frames,
                "frame_indices": torch.zeros(self.clip_frames, dtype=torch.int64), "epoch": key.epoch,
                "index": key.index, "max_skip": key.max_skip, "pasted": False, "tries": attempt + 1}
        return self.finish(frames, masks, ids, info)
