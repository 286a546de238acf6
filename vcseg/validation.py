"""Semi-supervised validation of a memory network on held-out videos, for training runs.

Each validation video is predicted by the propagation engine from its first frame's ground-truth
mask, and scored with the same scorer as `vcseg score` (tianchi protocol). The training loop
receives `Validator` as a plain callable, so training never imports inference or metrics.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn

from vcseg.config import Config
from vcseg.errors import VcsegError
from vcseg.infer.options import PredictOptions
from vcseg.infer.propagate import predict_video
from vcseg.io.frames import read_frame
from vcseg.io.layouts import find_dataset
from vcseg.io.masks import read_mask
from vcseg.metrics.protocols import score_video


@dataclass(frozen=True)
class ValidationVideo:
    name: str
    frames: list[np.ndarray]  # (H, W, 3) uint8, every `frame_step`-th annotated frame
    masks: list[np.ndarray]  # (H, W) uint8 ids, the ground truth of those frames


class Validator:
    """`validator(model) -> {"J_mean", "F_mean", "JF_mean"}` over the validation videos.

    Videos are decoded once (at construction) and kept in memory; keep `max_videos` and
    `max_frames` small on a CPU.
    """

    def __init__(self, videos: list[ValidationVideo], options: PredictOptions) -> None:
        if not videos:
            raise VcsegError("no validation videos: give data.index with a val split (vcseg ingest --val-fraction)")
        self.videos, self.options = videos, options

    def __call__(self, model: nn.Module) -> dict[str, float]:
        objects = []
        for video in self.videos:
            predicted = predict_video([model], video.frames, first_masks={0: video.masks[0]}, options=self.options)
            objects.extend(score_video(video.name, predicted, video.masks, protocol="tianchi").objects)
        j_mean = float(np.mean([obj.statistics()["J_mean"] for obj in objects])) if objects else 0.0
        f_mean = float(np.mean([obj.statistics()["F_mean"] for obj in objects])) if objects else 0.0
        return {"J_mean": j_mean, "F_mean": f_mean, "JF_mean": (j_mean + f_mean) / 2}


def validator_from_config(config: Config, max_videos: int, max_frames: int) -> Validator:
    """The validation split of `data.index` (first `max_videos` videos, `max_frames` frames each),
    predicted at `data.short_side` on the training device."""
    if config.data.index is None:
        raise VcsegError("validation needs data.index (an ingest index with a val split: "
                         "vcseg ingest ROOT --val-fraction 0.1 --index ROOT/vcseg_index.json)")
    index_path = Path(config.data.index)
    if not index_path.is_file():
        raise VcsegError(f"{index_path}: index not found; write it with vcseg ingest --index")
    names = json.loads(index_path.read_text())["split"]["val"][:max_videos]
    files = find_dataset(config.data.root, layout=config.data.layout, masks_root=config.data.masks)
    videos = []
    for name in names:
        video = files.video(name)
        stems = [stem for stem in video.frames if stem in video.masks][:max_frames]
        first = next((i for i, stem in enumerate(stems) if read_mask(video.masks[stem]).any()), None)
        if first is None:
            continue  # nobody in view: nothing to propagate
        stems = stems[first:]
        videos.append(ValidationVideo(name, [read_frame(video.frames[s]) for s in stems],
                                      [read_mask(video.masks[s]) for s in stems]))
    options = PredictOptions(size=config.data.short_side, device=config.train.device, precision=config.train.precision)
    return Validator(videos, options)
