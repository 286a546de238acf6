"""A whole dataset through `propagate`: resumable, shardable, timed, one PNG per frame.

    predict_dataset("data/test", "pred", ["runs/a/checkpoints/last.pt"], "data/first_masks")

writes `pred/<video>/<frame stem>.png` for every frame. Each video is written into a hidden
temporary folder `pred/.<video>.partial` and renamed to `pred/<video>` when its last frame is
done, so a video under its final name is always complete; a rerun skips the complete ones and
redoes the rest. `shard=(i, n)` takes every n-th video from the i-th (under torchrun: RANK of
WORLD_SIZE). Per-video frames, seconds, frames/s and peak memory go to `pred/.predict_log.json`
(`.predict_log.shard-i-of-n.json` per shard), merged with what earlier runs wrote there. The log
is hidden so that `vcseg pack pred` sees only the video folders.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import torch

from vcseg.errors import VcsegError
from vcseg.infer.discovery import Discovery, DiscoveryOptions, network_proposer, relabel, split_shots
from vcseg.infer.models import ModelSource, inference_models, resolve_checkpoints
from vcseg.infer.options import PredictOptions, parse_shard
from vcseg.infer.propagate import GivenMasks, ObjectSource, VideoStats, propagate
from vcseg.io.atomic import write_json_atomic
from vcseg.io.frames import read_frame
from vcseg.io.layouts import VideoFiles, find_dataset, find_mask_videos
from vcseg.io.masks import read_mask, write_mask

PARTIAL_SUFFIX = ".partial"

ObjectSourceFactory = Callable[[VideoFiles], "ObjectSource | Discovery"]


class PredictProgress(Protocol):
    """What `predict_dataset` reports as it goes (the CLI draws a rich progress bar from it)."""

    def start(self, videos: int, frames: int) -> None: ...
    def video_started(self, name: str, frames: int) -> None: ...
    def frame_done(self) -> None: ...
    def video_done(self, name: str, skipped: bool) -> None: ...


@dataclass
class PredictSummary:
    """What a `predict_dataset` call did."""

    out: Path
    predicted: list[str] = field(default_factory=list)  # videos written by this call
    skipped: list[str] = field(default_factory=list)  # complete from an earlier run
    frames: int = 0  # frames predicted by this call
    seconds: float = 0.0
    log_path: Path | None = None
    shard: tuple[int, int] = (0, 1)


def log_path(out: Path, shard: tuple[int, int]) -> Path:
    index, count = shard
    return out / (".predict_log.json" if count == 1 else f".predict_log.shard-{index}-of-{count}.json")


def is_complete(video_dir: Path, stems: Sequence[str]) -> bool:
    """True when `video_dir` holds a PNG for every stem."""
    return video_dir.is_dir() and all((video_dir / f"{stem}.png").is_file() for stem in stems)


def shard_videos(videos: Sequence[VideoFiles], shard: tuple[int, int]) -> list[VideoFiles]:
    """This shard's videos: every count-th video from the index-th, by name."""
    index, count = shard
    return sorted(videos, key=lambda video: video.name)[index::count]


def predict_dataset(frames_root: str | os.PathLike[str], out: str | os.PathLike[str],
                    checkpoints: Sequence[ModelSource] = (), first_masks_root: str | os.PathLike[str] | None = None,
                    options: PredictOptions = PredictOptions(), *, shard: tuple[int, int] | None = None,
                    object_sources: ObjectSourceFactory | None = None,
                    discovery: DiscoveryOptions | None = None, proposals: Any = None,
                    progress: PredictProgress | None = None) -> PredictSummary:
    """Predict every video under `frames_root` into `out/<video>/<stem>.png`; returns a summary.

    frames_root: any layout `find_dataset` reads. first_masks_root: `<video>/<stem>.png` masks
    (or a dataset root with Annotations/): objects start at the first mask holding their id.
    Without it, `object_sources` (video -> object source) says where objects come from, or else
    the people are found by the proposal network (`proposals`: a path or a loaded network; None:
    the first checkpoint that holds one) with `discovery` settings, and at most 8 ids are written.
    checkpoints: paths or loaded models (an equal-weight ensemble); none: weights/default.pt.
    shard: (index, count); None: torchrun's RANK / WORLD_SIZE, or the whole dataset.
    """
    out = Path(out)
    checkpoints = resolve_checkpoints(checkpoints)
    for source in checkpoints:
        if isinstance(source, (str, os.PathLike)) and not Path(source).is_file():
            raise VcsegError(f"{source}: checkpoint not found; give the path of a .pt file from vcseg train")
    dataset = find_dataset(frames_root)
    videos = [video for video in dataset.videos if video.frames]
    if not videos:
        raise VcsegError(f"{frames_root}: no video with frames; expected <video>/*.jpg or JPEGImages/<video>/*.jpg")
    if first_masks_root is not None:
        given = find_mask_videos(first_masks_root)
        for video in videos:
            if not set(given.get(video.name, {})) & set(video.frames):
                raise VcsegError(f"{Path(first_masks_root) / video.name}: no mask for any frame of video "
                                 f"'{video.name}'; give at least its first frame's mask (<stem>.png)")

        def object_sources(video: VideoFiles) -> ObjectSource:
            masks = given[video.name]
            return GivenMasks({i: masks[stem] for i, stem in enumerate(video.frames) if stem in masks})
    elif object_sources is None:
        discovery = discovery or DiscoveryOptions()
        proposal_model = _proposal_network(proposals, checkpoints)

    shard = parse_shard(None) if shard is None else shard
    summary = PredictSummary(out=out, shard=shard, log_path=log_path(out, shard))
    mine = shard_videos(videos, shard)
    # Complete videos (an earlier run) are known before starting, so the frame bar counts only
    # the frames left to predict.
    complete = {video.name for video in mine if is_complete(out / video.name, video.stems)}
    if progress is not None:
        progress.start(len(mine), sum(len(video.frames) for video in mine if video.name not in complete))
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with inference_models(checkpoints, options) as (models, device, dtype):
        if object_sources is None:
            proposal_model.to(device).eval()

            def object_sources(video: VideoFiles) -> Discovery:
                return Discovery(network_proposer(proposal_model, discovery.proposal_size or options.size, dtype),
                                 discovery)

        for video in mine:
            if video.name in complete:
                summary.skipped.append(video.name)
                if progress is not None:
                    progress.video_done(video.name, skipped=True)
                continue
            if progress is not None:
                progress.video_started(video.name, len(video.frames))
            record = _predict_one(video, out, models, object_sources(video), options, device, dtype, progress)
            _merge_log(summary.log_path, video.name, record, options, len(models))
            summary.predicted.append(video.name)
            summary.frames += record["frames"]
            if progress is not None:
                progress.video_done(video.name, skipped=False)
    summary.seconds = time.perf_counter() - started
    return summary


def _predict_one(video: VideoFiles, out: Path, models: list, object_source: ObjectSource,
                 options: PredictOptions, device: torch.device, dtype: torch.dtype | None,
                 progress: PredictProgress | None) -> dict[str, Any]:
    """Write one video's masks through a temporary folder; returns its log record."""
    partial = out / f".{video.name}{PARTIAL_SUFFIX}"
    if partial.exists():  # an interrupted earlier run: start the video again
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    stats = VideoStats()
    started = time.perf_counter()
    stems = video.stems
    if isinstance(object_source, Discovery):
        masks = _discover(models, video, object_source, options, device, dtype, stats)
    else:
        masks = propagate(models, _frames(video), object_source, options, device, dtype, stats)
    for stem, ids in zip(stems, masks):
        write_mask(partial / f"{stem}.png", ids)
        if progress is not None:
            progress.frame_done()
    discovery_log = None
    if isinstance(object_source, Discovery):  # now that every track is known: the final ids, at most 8
        mapping = object_source.final_ids()
        for stem in stems:
            write_mask(partial / f"{stem}.png", relabel(read_mask(partial / f"{stem}.png"), mapping))
        discovery_log = {"tracks": len(object_source.tracks), "kept": len({v for v in mapping.values() if v}),
                         "notes": object_source.log}
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started
    final = out / video.name
    if final.exists():  # incomplete (complete ones were skipped): replace it whole
        shutil.rmtree(final)
    os.replace(partial, final)
    rss = _peak_rss_bytes()
    # Seconds keep microseconds so that frames / seconds, recomputed from the log, agrees with the
    # logged fps (at millisecond rounding a 40 ms video read back 1% off).
    record: dict[str, Any] = {
        "frames": stats.frames, "seconds": round(seconds, 6),
        "fps": round(stats.frames / seconds, 3) if seconds > 0 else None,
        "device": str(device), "memory_bank_peak_bytes": stats.memory_bank_peak_bytes, "rss_peak_bytes": rss,
    }
    if discovery_log is not None:
        record["discovery"] = discovery_log
    if device.type == "cuda":
        record["cuda_peak_bytes"] = torch.cuda.max_memory_allocated(device)
        record["peak_memory_bytes"] = record["cuda_peak_bytes"]
    else:
        record["peak_memory_bytes"] = max(stats.memory_bank_peak_bytes, rss)
    return record


def _discover(models: list, video: VideoFiles, discovery: Discovery, options: PredictOptions,
              device: torch.device, dtype: torch.dtype | None, stats: VideoStats):
    """Unsupervised propagation: a fresh memory per shot, people found by `discovery`; yields
    each frame's track ids (renumbered by `discovery.final_ids()` once the video is done).
    Unless `options.max_objects` says otherwise, the engines hold `max_live_tracks` people, the
    most a discovery ever keeps at once, whatever the model was configured for."""
    options = replace(options, max_objects=options.max_objects or discovery.options.max_live_tracks)
    index = 0
    for first, shot in split_shots(_frames(video), discovery.options.cut_threshold):
        for ids in propagate(models, shot, discovery.for_shot(first), options, device, dtype, stats):
            discovery.observe(index, ids)
            index += 1
            yield ids


def _proposal_network(proposals: Any, checkpoints: Sequence[ModelSource]) -> torch.nn.Module:
    """The proposal network: given (path or module), or from the first checkpoint holding one."""
    from vcseg.train.checkpoint import load_checkpoint
    from vcseg.train.loop import load_proposal_network

    if isinstance(proposals, torch.nn.Module):
        return proposals
    if proposals is not None:
        return load_proposal_network(proposals)[0]
    for source in checkpoints:
        if isinstance(source, (str, os.PathLike)) and "proposals" in load_checkpoint(source)["models"]:
            return load_proposal_network(source)[0]
    raise VcsegError("no mask given and no proposal network to find the people: pass --first-masks MASKS_ROOT, "
                     "or a checkpoint holding a proposal network (make weights; vcseg export --proposals)")


def _frames(video: VideoFiles):
    """The video's frames in order, H, W, 3 uint8; a frame of another size is named."""
    size = None
    for path in video.frames.values():
        frame = read_frame(path)
        if size is None:
            size = frame.shape
        elif frame.shape != size:
            raise VcsegError(f"{path}: frame is {frame.shape[0]}x{frame.shape[1]}, the video's first frame "
                             f"{size[0]}x{size[1]}; resize it to the video's size")
        yield frame


def _peak_rss_bytes() -> int:
    """This process's peak resident memory (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def _merge_log(path: Path, video: str, record: dict[str, Any], options: PredictOptions, models: int) -> None:
    """Add one video's record to the log at `path`, keeping what earlier runs wrote."""
    log: dict[str, Any] = {"videos": {}}
    if path.is_file():
        try:
            log = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            pass  # a damaged log is rewritten rather than blocking the predictions
        if not isinstance(log, dict) or not isinstance(log.get("videos"), dict):
            log = {"videos": {}}
    record = {**record, "models": models, "size": options.size, "scales": list(options.scales),
              "flip": options.flip, "precision": options.precision}
    log["videos"][video] = record
    videos = log["videos"].values()
    frames = sum(v.get("frames", 0) for v in videos)
    seconds = sum(v.get("seconds", 0) for v in videos)
    log["total"] = {"videos": len(log["videos"]), "frames": frames, "seconds": round(seconds, 6),
                    "fps": round(frames / seconds, 3) if seconds else None}
    write_json_atomic(path, log)
