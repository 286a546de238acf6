"""Single annotated frames for training the person proposal network: `FrameDataset`.

Every frame with a mask of the training videos is one item (every `stride`-th of each video:
neighbouring frames are near copies). All persons of the frame are kept, with whatever the
labels give them (hand-held objects carry their person's id). A frame is warped (flip, rotation,
zoom over a wider range than video clips, since people appear at every size), cropped to `crop`
with the window drawn to hold a person pixel when there is one, and recoloured, by the same
machinery as training clips (`augment_clip` on a clip of one frame). A crop without any person is
a valid item: the network must also learn to find nobody.

Item (a dict; `torch.utils.data.default_collate` stacks it into a batch):

    image    float32 (3, H, W)  RGB in [0, 1] (the network applies the ImageNet normalisation)
    mask     uint8   (H, W)     the crop's instance ids as the labels number them (0 background)
    targets  dict of float32 tensors from the `targets` callable, e.g.
             `vcseg.model.proposal_targets.TargetSpec` (maps at the network's output stride);
             absent when `targets` is None
    info     dict: video (str), stem (str), epoch, index (int), persons (int: ids 1..254 with a
             pixel in the crop; 255 is void)

with (H, W) = crop. Determinism: an item is a pure function of (seed, epoch, index), drawn from
`np.random.default_rng([seed, epoch, index])`; drive it with `ClipSampler(len(data), total,
schedule=None)` and `data[ClipKey(...)]` exactly as the clip datasets (the key's max_skip is
unused), or with plain indices and `set_epoch`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from vcseg.data.augment import Augment, augment_clip
from vcseg.data.cache import FrameCache
from vcseg.data.clips import ClipDatasetBase, ClipKey, select_videos
from vcseg.data.warps import AffineRange
from vcseg.errors import VcsegError
from vcseg.io.layouts import DatasetFiles, VideoFiles

FRAME_AUGMENT = Augment(
    clip_affine=AffineRange(rotate=10.0, scale=(0.5, 1.5), shear=5.0, translate=0.1, flip=0.5),
    colour=(0.3, 0.2, 0.2, 0.03), grayscale=0.05,
)

TargetMaker = Callable[[np.ndarray], dict[str, torch.Tensor]]


class FrameDataset(ClipDatasetBase):
    """Augmented single frames with all their persons (see the module docstring).

    dataset: what `find_dataset` found; videos: names to use (e.g. the index's split["train"]),
    None for all; stride: every stride-th annotated frame of a video; targets: turns the crop's
    (H, W) ids into the item's `targets` (None: no targets). One item per frame per epoch.

    Example:
        data = FrameDataset(find_dataset("davis"), short_side=480, crop=384,
                            targets=TargetSpec(stride=4, sigma=8.0, min_area=100))
        sampler = ClipSampler(len(data), total_items=steps * 16, seed=1)
        loader = DataLoader(data, batch_size=16, sampler=sampler, num_workers=4)
    """

    def __init__(self, dataset: DatasetFiles, videos: Sequence[str] | None = None, *, short_side: int = 480,
                 cache: FrameCache | None = None, crop: int | tuple[int, int] = 384, seed: int = 0,
                 augment: Augment = FRAME_AUGMENT, stride: int = 1, targets: TargetMaker | None = None) -> None:
        # One frame, no object slots: the clip machinery's slot and retry settings are unused.
        super().__init__(short_side=short_side, cache=cache, clip_frames=1, max_objects=1, crop=crop, seed=seed,
                         augment=augment.without_frame_jitter(), max_tries=1, min_object_pixels=1)
        if stride < 1:
            raise VcsegError(f"stride must be at least 1, got {stride}")
        self.frames: list[tuple[VideoFiles, str]] = []  # (video, stem) of every item
        for video in select_videos(dataset, videos):
            stems = [stem for stem in video.stems if stem in video.masks]
            self.frames.extend((video, stem) for stem in stems[::stride])
        if not self.frames:
            raise VcsegError(f"{dataset.root}: no frame with a mask; the proposal network trains on "
                             "annotated frames (JPEGImages/<video>/*.jpg with Annotations/<video>/*.png)")
        self.targets = targets

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, key: int | ClipKey) -> dict[str, Any]:
        key = self.resolve(key)
        rng = self.item_rng(key)
        video, stem = self.frames[key.index]
        frames, masks = self.load(video, [stem])  # (1, h, w, 3), (1, h, w)
        frames, masks = augment_clip(frames, masks, rng, self.augment, self.crop_hw, self.photometric)
        image = np.ascontiguousarray(frames[0].transpose(2, 0, 1)).astype(np.float32)  # 3, H, W
        image *= np.float32(1.0 / 255.0)
        mask = np.ascontiguousarray(masks[0])
        item: dict[str, Any] = {"image": torch.from_numpy(image), "mask": torch.from_numpy(mask)}
        if self.targets is not None:
            item["targets"] = self.targets(mask)
        persons = int(np.count_nonzero(np.bincount(mask.ravel(), minlength=256)[1:255]))
        item["info"] = {"video": video.name, "stem": stem, "epoch": key.epoch, "index": key.index,
                        "persons": persons}
        return item
