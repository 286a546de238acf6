"""One video through one or more engines: frames of any size in, id masks out.

Every (model, scale, flip) combination runs its own `InferenceEngine` with its own memory. Per
frame each engine predicts in its own input space; the probabilities are mapped back to the
frame's size (unpad, resize, unflip) and averaged with equal weights; objects from the object
source are imposed on the average; and the average, mapped into each engine's space again, is
what every engine commits. So each engine's next previous mask and memory value is the averaged
(better) prediction, not its own, and all engines stay on one set of objects. The id mask is the
argmax of the average at the frame's own size.

Objects come from an object source: a callable `(frame_index, frame H,W,3 uint8, probs 1+K,H,W at
the frame's size, live ids) -> H,W uint8 id map of masks to impose, an `ObjectUpdate` (masks to
impose and ids to stop tracking), or None`. `GivenMasks` is the semi-supervised one (DAVIS style:
an object starts at the first given mask holding its id); the unsupervised path plugs its
discovery step in the same place, and retires the tracks it no longer believes in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vcseg.errors import VcsegError
from vcseg.infer.engine import InferenceEngine
from vcseg.infer.geometry import Geometry, from_network, plan_geometry, to_network
from vcseg.infer.graphs import graphed_key_encoder
from vcseg.infer.models import ModelSource, inference_models
from vcseg.infer.objects import impose_masks
from vcseg.infer.options import PredictOptions
from vcseg.io.masks import read_mask
from vcseg.model.network import MemoryNetwork


@dataclass(frozen=True)
class ObjectUpdate:
    """What an object source decides at a frame: ids to stop tracking (from this frame on: their
    channels, memory values and previous masks go), then masks to impose (new or existing ids)."""

    masks: np.ndarray | None = None  # H, W uint8 id map
    retire: tuple[int, ...] = ()


ObjectSource = Callable[[int, np.ndarray, torch.Tensor, list[int]], "np.ndarray | ObjectUpdate | None"]


class GivenMasks:
    """Semi-supervised object source: masks given on some frames ({frame index: ids or PNG path}).

    An id starts at the first given mask that holds it; later masks only bring ids not seen yet
    (a full ground-truth folder as input therefore gives the first appearance of each object, not
    the answer of every frame).
    """

    def __init__(self, masks: Mapping[int, np.ndarray | str | Path]) -> None:
        self.masks = dict(masks)
        self.seen: set[int] = set()

    def __call__(self, frame_index: int, frame: np.ndarray, probs: torch.Tensor, ids: list[int]) -> np.ndarray | None:
        if frame_index not in self.masks:
            return None
        given = self.masks[frame_index]
        mask = read_mask(given) if isinstance(given, (str, Path)) else np.asarray(given, dtype=np.uint8)
        if mask.shape != frame.shape[:2]:
            where = f"{given}" if isinstance(given, (str, Path)) else f"the mask of frame {frame_index}"
            raise VcsegError(f"{where}: mask is {mask.shape[0]}x{mask.shape[1]} but its frame is "
                             f"{frame.shape[0]}x{frame.shape[1]}; give masks of the frames' size")
        new = sorted(set(np.unique(mask).tolist()) - {0} - self.seen)
        self.seen.update(new)
        return np.where(np.isin(mask, new), mask, 0).astype(np.uint8) if new else None


@dataclass
class VideoStats:
    """What one video's propagation cost: frames, and the peak bytes of all engines' memory banks."""

    frames: int = 0
    memory_bank_peak_bytes: int = 0
    short_side: int = 0  # what the frames were processed at, for scale 1.0 (see PredictOptions.upsample)


@dataclass
class _Member:
    """One engine with the augmentation it sees: the frame at `scale`, mirrored when `flipped`."""

    engine: InferenceEngine
    scale: float
    flipped: bool
    geometry: Geometry | None = None

    def to_network(self, maps: torch.Tensor) -> torch.Tensor:  # B, C, H, W -> B, C, H', W'
        return to_network(maps.flip(-1) if self.flipped else maps, self.geometry)

    def from_network(self, maps: torch.Tensor) -> torch.Tensor:  # B, C, H', W' -> B, C, H, W
        maps = from_network(maps, self.geometry)
        return maps.flip(-1) if self.flipped else maps


def propagate(models: Sequence[MemoryNetwork], frames: Iterable[np.ndarray], object_source: ObjectSource,
              options: PredictOptions, device: torch.device, dtype: torch.dtype | None = None,
              stats: VideoStats | None = None) -> Iterator[np.ndarray]:
    """Yield each frame's H, W uint8 id mask; frames are H, W, 3 uint8 RGB, all of one size.

    Call under `torch.inference_mode()` with models in eval mode on `device` (`inference_models`
    does both); dtype is the autocast dtype (None: fp32).
    """
    members = [_Member(InferenceEngine(model, options.mem_every, options.mem_size, options.top_k,
                                       options.max_objects, options.previous_in_memory,
                                       encode_key=graphed_key_encoder(model, options.cuda_graphs)), scale, flipped)
               for model in models for scale, flipped in options.augmentations]
    max_objects = min(member.engine.max_objects for member in members)
    for member in members:
        member.engine.max_objects = max_objects
    stats = stats if stats is not None else VideoStats()
    size: tuple[int, int] | None = None
    for index, frame in enumerate(frames):
        height, width = frame.shape[:2]
        if size is None:
            size = (height, width)
            for member in members:
                short_side = options.network_short_side(height, width)
                member.geometry = plan_geometry(height, width, max(16, round(short_side * member.scale)))
            stats.short_side = options.network_short_side(height, width)
        elif (height, width) != size:
            raise VcsegError(f"frame {index} is {height}x{width} but the video's first frame is "
                             f"{size[0]}x{size[1]}; all frames of a video must have one size")
        pixels = torch.from_numpy(np.array(frame, dtype=np.uint8))  # a copy: decoded frames are read-only
        image = pixels.to(device).permute(2, 0, 1)[None].float() / 255  # 1, 3, H, W
        with _autocast(device, dtype):
            probs = sum(member.from_network(member.engine.predict(member.to_network(image))[None].float())[0]
                        for member in members) / len(members)  # 1 + K, H, W
        ids = members[0].engine.ids
        update = object_source(index, frame, probs, ids)
        if not isinstance(update, ObjectUpdate):
            update = ObjectUpdate(masks=update)
        if update.retire:
            probs = _drop_objects(probs, ids, update.retire)
            for member in members:
                for object_id in update.retire:
                    member.engine.remove_object(object_id)
            ids = members[0].engine.ids
        new = update.masks
        if new is not None:
            new_ids = sorted(set(np.unique(new).tolist()) - {0})
            if new_ids:
                for member in members:
                    member.engine.add_objects(new_ids)
                ids = members[0].engine.ids
                given = torch.from_numpy(new).to(device)
                masks = torch.stack([(given == i).float() for i in new_ids])  # G, H, W
                probs = impose_masks(probs, masks, [ids.index(i) for i in new_ids], len(ids))
        with _autocast(device, dtype):
            for member in members:
                member.engine.commit(member.to_network(probs[None])[0])
        stats.frames += 1
        stats.memory_bank_peak_bytes = max(stats.memory_bank_peak_bytes,
                                           sum(member.engine.memory.nbytes for member in members))
        lookup = torch.from_numpy(np.array([0, *ids], dtype=np.uint8)).to(device)
        yield lookup[probs.max(dim=0).indices].cpu().numpy()  # max().indices: argmax(0) is 6x slower on CPU


def predict_video(models: Sequence[ModelSource], frames: Iterable[np.ndarray],
                  first_masks: Mapping[int, np.ndarray | str | Path] | None = None,
                  options: PredictOptions = PredictOptions(), object_source: ObjectSource | None = None,
                  stats: VideoStats | None = None) -> list[np.ndarray]:
    """One video in memory -> its id masks (one H, W uint8 array per frame).

    models: checkpoint paths or loaded `MemoryNetwork`s (several: an equal-weight ensemble);
    first_masks: {frame index: id mask or PNG path} (semi-supervised), or give `object_source`.
    """
    if object_source is None:
        if first_masks is None:
            raise VcsegError("first masks are needed to know whom to segment (semi-supervised); give the "
                             "first frame's mask (--first-masks MASKS_ROOT)")
        object_source = GivenMasks(first_masks)
    with inference_models(models, options) as (loaded, device, dtype):
        return list(propagate(loaded, frames, object_source, options, device, dtype, stats))


def _drop_objects(probs: torch.Tensor, ids: list[int], retired: Sequence[int]) -> torch.Tensor:
    """1 + K, H, W probabilities without the retired ids' channels; background takes their share."""
    gone = set(retired)
    keep = [slot for slot, object_id in enumerate(ids) if object_id not in gone]
    kept = probs[[1 + slot for slot in keep]]
    return torch.cat([(1 - kept.sum(dim=0, keepdim=True)).clamp(min=0), kept])


def _autocast(device: torch.device, dtype: torch.dtype | None) -> torch.autocast:
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)
