"""What the training loop trains: a task builds the model and the dataset and computes the loss.

`memory`: the space-time memory network on video clips (or static-image clips);
`proposals`: the per-frame person proposal network on single annotated frames.
Both share the loop, the checkpoints (the model lands under `models[task.name]`), resume and
torchrun support.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from vcseg.config import TASKS, Config
from vcseg.data.cache import FrameCache
from vcseg.data.clips import VideoClipDataset, select_videos
from vcseg.data.frames import FRAME_AUGMENT, FrameDataset
from vcseg.data.static import StaticClipDataset
from vcseg.errors import VcsegError
from vcseg.io.layouts import DatasetFiles, find_dataset
from vcseg.model.network import build_model
from vcseg.model.proposal_targets import TargetSpec
from vcseg.model.proposals import build_proposal_model, loss_from_config
from vcseg.train.losses import bootstrapped_cross_entropy, dice_loss, hard_pixel_fraction, masks_to_target


def train_videos(config: Config) -> list[str] | None:
    """The index's train split when `data.index` is given, else None (every video)."""
    if config.data.index is None:
        return None
    index_path = Path(config.data.index)
    if not index_path.is_file():
        raise VcsegError(f"{index_path}: index not found; write it with "
                         f"`vcseg ingest {config.data.root} --index {index_path}`")
    return json.loads(index_path.read_text())["split"]["train"]


def training_files(config: Config, root: str | None = None) -> tuple[DatasetFiles, list[str] | None]:
    """The files trained on and the videos to use (None: all): `root` (default `data.root`) with the
    index's train split, plus every video of `data.extra_roots`, less `data.exclude`."""
    files, videos = _all_training_files(config, root)
    excluded = set(config.data.exclude)
    if not excluded:
        return files, videos
    found = {video.name for video in files.videos}
    unknown = sorted(excluded - found)
    if unknown:
        roots = ", ".join([root or config.data.root, *config.data.extra_roots])
        raise VcsegError(f"data.exclude names {', '.join(unknown)}, which no training root holds ({roots}); "
                         "correct the names so the held-out videos stay out")
    kept = [video for video in files.videos if video.name not in excluded]
    if videos is not None:
        videos = [name for name in videos if name not in excluded]
    return dataclasses.replace(files, videos=kept), videos


def _all_training_files(config: Config, root: str | None) -> tuple[DatasetFiles, list[str] | None]:
    data = config.data
    files = find_dataset(root or data.root, layout=data.layout, masks_root=data.masks)
    videos = train_videos(config)
    if not data.extra_roots:
        return files, videos
    merged = select_videos(files, videos)  # refuses index names the dataset lacks, as the datasets do
    names = {video.name: files.root for video in files.videos}
    for extra in data.extra_roots:
        extra_files = find_dataset(extra)
        for video in extra_files.videos:
            if video.name in names:
                raise VcsegError(f"{extra_files.root}: video {video.name!r} is also in {names[video.name]}; "
                                 "rename one, or compose / synth into folders with distinct names")
            names[video.name] = extra_files.root
        merged += extra_files.videos
    return dataclasses.replace(files, videos=merged), None


def _frame_cache(config: Config) -> FrameCache | None:
    return FrameCache(config.data.cache, config.data.short_side) if config.data.cache else None


def clip_loss(logits: torch.Tensor, masks: torch.Tensor, valid: torch.Tensor, hard_fraction: float,
              dice_weight: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Bootstrapped CE + dice over the predicted frames of a batch of clips.

    logits: B, T-1, K+1, H, W; masks: B, T, K, H, W one-hot (frame 0 is the given one); valid: B, K.
    """
    predicted = masks[:, 1:].flatten(0, 1)  # B*(T-1), K, H, W
    flat_logits = logits.flatten(0, 1).float()  # B*(T-1), K+1, H, W
    cross_entropy = bootstrapped_cross_entropy(flat_logits, masks_to_target(predicted), hard_fraction)
    probabilities = torch.softmax(flat_logits, dim=1)[:, 1:]
    frames_per_clip = logits.shape[1]
    dice = dice_loss(probabilities, predicted, valid.repeat_interleave(frames_per_clip, dim=0))
    return cross_entropy + dice_weight * dice, cross_entropy, dice


class MemoryTask:
    """The memory network: clips of `data.clip_frames` frames, frame 0's masks given."""

    name = "memory"
    section = "model"  # the config section that describes the network
    parts = ("cross_entropy", "dice", "hard_fraction")

    def __init__(self, config: Config) -> None:
        self.config = config

    @property
    def uses_skip_schedule(self) -> bool:
        return self.config.train.stage == "video"

    def build_model(self) -> nn.Module:
        return build_model(self.config.model)

    def build_dataset(self) -> Dataset:
        data = self.config.data
        static = self.config.train.stage == "static"
        files, videos = training_files(self.config, data.static_root if static and data.static_root else None)
        common: dict[str, Any] = dict(short_side=data.short_side, cache=_frame_cache(self.config),
                                      clip_frames=data.clip_frames, max_objects=data.max_objects,
                                      crop=tuple(data.crop), seed=self.config.train.seed)
        if static:
            return StaticClipDataset(files, videos, **common)
        return VideoClipDataset(files, videos, paste_probability=data.compose_probability,
                                **common)

    def loss(self, network: nn.Module, batch: dict[str, Any], step: int, device: torch.device,
             autocast: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        settings = self.config.train
        frames = batch["frames"].to(device, non_blocking=True)  # B, T, 3, H, W
        masks = batch["masks"].to(device, non_blocking=True)  # B, T, K, H, W
        valid = batch["valid"].to(device, non_blocking=True)  # B, K
        hard_fraction = hard_pixel_fraction(step, int(settings.bootstrap_start * settings.steps),
                                            int(settings.bootstrap_end * settings.steps), settings.bootstrap_top)
        with torch.autocast(**autocast):
            logits = network(frames, masks[:, 0], valid)  # B, T-1, K+1, H, W
        loss, cross_entropy, dice = clip_loss(logits, masks, valid, hard_fraction, settings.dice_weight)
        return loss, {"cross_entropy": cross_entropy.detach(), "dice": dice.detach(),
                      "hard_fraction": torch.tensor(hard_fraction)}


class ProposalTask:
    """The proposal network: single annotated frames with every person, Panoptic-DeepLab targets."""

    name = "proposals"
    section = "proposals"  # the config section that describes the network
    parts = ("foreground", "centre", "offset")
    uses_skip_schedule = False

    def __init__(self, config: Config) -> None:
        self.config = config

    def build_model(self) -> nn.Module:
        return build_proposal_model(self.config.proposals)

    def build_dataset(self) -> Dataset:
        data = self.config.data
        files, videos = training_files(self.config)
        augment = dataclasses.replace(FRAME_AUGMENT, instance_recolour=data.instance_recolour,
                                      background_recolour=data.background_recolour)
        return FrameDataset(files, videos, short_side=data.short_side,
                            cache=_frame_cache(self.config), crop=tuple(data.crop), seed=self.config.train.seed,
                            augment=augment, targets=TargetSpec.from_config(self.config.proposals))

    def loss(self, network: nn.Module, batch: dict[str, Any], step: int, device: torch.device,
             autocast: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        images = batch["image"].to(device, non_blocking=True)  # B, 3, H, W
        targets = {key: value.to(device, non_blocking=True) for key, value in batch["targets"].items()}
        with torch.autocast(**autocast):
            outputs = network(images)
        loss, parts = loss_from_config(outputs, targets, self.config.proposals)
        return loss, parts


def make_task(config: Config) -> MemoryTask | ProposalTask:
    if config.train.task == "memory":
        return MemoryTask(config)
    if config.train.task == "proposals":
        return ProposalTask(config)
    raise VcsegError(f"train.task {config.train.task!r} is unknown; choose one of {', '.join(TASKS)}")
