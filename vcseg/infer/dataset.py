"""A whole dataset through `propagate`: resumable, shardable, timed, one PNG per frame.

    predict_dataset("data/test", "pred", ["runs/a/checkpoints/last.pt"], "data/first_masks")

writes `pred/<video>/<frame stem>.png` for every frame. The output folder is predict's own
(`vcseg.infer.output`): one run at a time holds its lock, each video is written into a hidden
temporary folder and moved into `pred/<video>` when its last frame is done, and a record of what
made it (checkpoints, options, frames, first masks) and of every PNG's digest lets a rerun skip
exactly the videos that would come out the same, and redo the others with the reason. Files
predict did not write are never deleted or replaced (unless `overwrite`, for the PNG names it
writes). `shard=(i, n)` takes every n-th video from the i-th (under torchrun: RANK of WORLD_SIZE).
Per-video frames, seconds, frames/s and peak memory go to `pred/.predict_log.json`
(`.predict_log.shard-i-of-n.json` per shard), merged with what earlier runs wrote there. The log
is hidden so that `vcseg pack pred` sees only the video folders.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from vcseg import __version__
from vcseg.errors import VcsegError
from vcseg.infer.discovery import Discovery, DiscoveryOptions, network_proposer, relabel, split_shots
from vcseg.infer.models import ModelSource, inference_models, resolve_checkpoints
from vcseg.infer.options import PredictOptions
from vcseg.infer.output import (PredictOutput, check_not_inside_inputs, file_digest, frames_digest, masks_digest,
                                parse_shard)
from vcseg.infer.propagate import GivenMasks, ObjectSource, VideoStats, propagate
from vcseg.io.atomic import write_json_atomic
from vcseg.io.frames import read_frame
from vcseg.io.layouts import VideoFiles, find_dataset, find_mask_videos
from vcseg.io.masks import id_counts, read_mask, write_mask
from vcseg.io.outputs import check_writable_dir
from vcseg.io.prefetch import WriterPool, prefetch
from vcseg.io.predict_files import predict_log_name
from vcseg.model.checkpoint import load_checkpoint, load_proposal_network

RESUME_MODES = ("auto", "never")

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
    skipped: list[str] = field(default_factory=list)  # complete from an earlier run, made the same way
    redone: dict[str, str] = field(default_factory=dict)  # video -> why an earlier result was not kept
    warnings: list[str] = field(default_factory=list)  # e.g. video folders without frames
    frames: int = 0  # frames predicted by this call
    seconds: float = 0.0
    log_path: Path | None = None
    shard: tuple[int, int] = (0, 1)


def log_path(out: Path, shard: tuple[int, int]) -> Path:
    return out / predict_log_name(shard)


def shard_videos(videos: Sequence[VideoFiles], shard: tuple[int, int]) -> list[VideoFiles]:
    """This shard's videos: every count-th video from the index-th, by name."""
    index, count = shard
    return sorted(videos, key=lambda video: video.name)[index::count]


def predict_dataset(frames_root: str | os.PathLike[str], out: str | os.PathLike[str],
                    checkpoints: Sequence[ModelSource] = (), first_masks_root: str | os.PathLike[str] | None = None,
                    options: PredictOptions = PredictOptions(), *, shard: tuple[int, int] | None = None,
                    object_sources: ObjectSourceFactory | None = None,
                    discovery: DiscoveryOptions | None = None, proposals: Any = None,
                    progress: PredictProgress | None = None, resume: str = "auto", overwrite: bool = False,
                    notify: Callable[[str], None] | None = None) -> PredictSummary:
    """Predict every video under `frames_root` into `out/<video>/<stem>.png`; returns a summary.

    frames_root: any layout `find_dataset` reads. first_masks_root: `<video>/<stem>.png` masks
    (or a dataset root with Annotations/): objects start at the first mask holding their id.
    Without it, `object_sources` (video -> object source) says where objects come from, or else
    the people are found by the proposal network (`proposals`: a path or a loaded network; None:
    the first checkpoint that holds one) with `discovery` settings, and at most 8 ids are written.
    checkpoints: paths or loaded models (an equal-weight ensemble); none: the default weights.
    shard: (index, count); None: torchrun's RANK / WORLD_SIZE, or the whole dataset.
    resume: "auto" skips a video whose earlier result was made the same way and is intact, and
    redoes the others, saying why through `notify`; "never" redoes every video. overwrite: replace
    PNGs at the names predict writes even when predict did not write them (else: an error).
    """
    out = Path(out)
    if resume not in RESUME_MODES:
        raise VcsegError(f"--resume {resume!r} is unknown; choose one of {', '.join(RESUME_MODES)}")
    checkpoints = resolve_checkpoints(checkpoints)
    for source in checkpoints:
        if isinstance(source, (str, os.PathLike)) and not Path(source).is_file():
            raise VcsegError(f"{source}: checkpoint not found; give the path of a .pt file from vcseg train")
    check_not_inside_inputs(out, {"--video-dir": frames_root, "--first-masks": first_masks_root})
    dataset = find_dataset(frames_root)
    videos = [video for video in dataset.videos if video.frames]
    warnings = [f"{dataset.frames_root / video.name}: no frames; no masks written for it"
                for video in dataset.videos if not video.frames]
    if not videos:
        raise VcsegError(f"{frames_root}: no video with frames; expected <video>/*.jpg or JPEGImages/<video>/*.jpg")
    given: dict[str, dict[str, Path]] = {}
    if first_masks_root is not None:
        given = find_mask_videos(first_masks_root)
        for video in videos:
            if not set(given.get(video.name, {})) & set(video.frames):
                raise VcsegError(f"{Path(first_masks_root) / video.name}: no mask for any frame of video "
                                 f"'{video.name}'; give at least its first frame's mask (<stem>.png)")

        def object_sources(video: VideoFiles) -> ObjectSource:
            masks = given[video.name]
            return GivenMasks({i: masks[stem] for i, stem in enumerate(video.frames) if stem in masks})
        mode = "first masks"
    elif object_sources is None:
        discovery = discovery or DiscoveryOptions()
        proposal_model, proposal_digest = _proposal_network(proposals, checkpoints)
        mode = "discovery"
    else:
        mode = f"custom object sources {uuid.uuid4()}"  # nothing to compare: never skipped
    check_writable_dir(out, "--out")

    shard = parse_shard(None) if shard is None else shard
    summary = PredictSummary(out=out, shard=shard, log_path=log_path(out, shard), warnings=warnings)
    say = notify or (lambda message: None)
    for warning in warnings:
        say(f"warning: {warning}")
    mine = shard_videos(videos, shard)
    output = PredictOutput(out, shard)
    with output.locked():
        output.clean_leftovers([video.name for video in mine])
        if not overwrite:
            foreign = [path for video in mine for path in output.foreign_files(video.name, video.stems)]
            if foreign:
                raise VcsegError(f"{foreign[0]}: not written by vcseg predict into this output"
                                 + (f" ({len(foreign)} such files)" if len(foreign) > 1 else "")
                                 + "; choose another --out, or pass --overwrite to replace them")
        started = time.perf_counter()
        with inference_models(checkpoints, options) as (models, device, dtype):
            run = {"vcseg": __version__, "mode": mode, "checkpoints": [_model_digest(c) for c in checkpoints],
                   "options": {**_changing_masks(options), "device": device.type, "autocast": str(dtype)}}
            if mode == "discovery":
                run["discovery"] = asdict(discovery)
                run["proposals"] = proposal_digest
            # through JSON, so that it compares equal to a record read back (tuples become lists)
            fingerprints = json.loads(json.dumps(
                {video.name: {"run": run, "frames": frames_digest(video.frames),
                              "first_masks": masks_digest(given[video.name]) if given else None}
                 for video in mine}, default=str))
            todo = []
            for video in mine:
                reason = (output.why_redo(video.name, video.stems, fingerprints[video.name])
                          if resume == "auto" else "--resume never")
                if reason is None:
                    continue
                todo.append(video.name)
                if reason != "not predicted yet":
                    summary.redone[video.name] = reason
                    say(f"{video.name}: predicting again ({reason})")
            if progress is not None:
                progress.start(len(mine), sum(len(video.frames) for video in mine if video.name in todo))
            if mode == "discovery":
                proposal_model.to(device).eval()

                def object_sources(video: VideoFiles) -> Discovery:
                    return Discovery(network_proposer(proposal_model, discovery.proposal_size or options.size,
                                                      dtype, discovery.extra_proposal_sizes), discovery)

            for video in mine:
                if video.name not in todo:
                    summary.skipped.append(video.name)
                    if progress is not None:
                        progress.video_done(video.name, skipped=True)
                    continue
                if progress is not None:
                    progress.video_started(video.name, len(video.frames))
                record = _predict_one(video, output, models, object_sources(video), options, device, dtype,
                                      progress)
                output.finish(video.name, video.stems, fingerprints[video.name], overwrite=overwrite)
                _merge_log(summary.log_path, video.name, record, options, len(models))
                summary.predicted.append(video.name)
                summary.frames += record["frames"]
                if progress is not None:
                    progress.video_done(video.name, skipped=False)
        summary.seconds = time.perf_counter() - started
    return summary


def _changing_masks(options: PredictOptions) -> dict[str, Any]:
    """The options that decide the masks (a run's fingerprint): all but how fast they come."""
    return {name: value for name, value in asdict(options).items() if name != "cuda_graphs"}


def _model_digest(source: ModelSource) -> str:
    """What identifies a model across runs: its checkpoint file's digest. A model handed over in
    memory has none, so a result it made is never taken for this run's."""
    if isinstance(source, (str, os.PathLike)):
        return file_digest(source)
    return f"in-memory model {uuid.uuid4()}"


def _predict_one(video: VideoFiles, output: PredictOutput, models: list, object_source: ObjectSource,
                 options: PredictOptions, device: torch.device, dtype: torch.dtype | None,
                 progress: PredictProgress | None) -> dict[str, Any]:
    """Write one video's masks into its temporary folder; returns its log record."""
    partial = output.start(video.name)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    stats = VideoStats()
    started = time.perf_counter()
    stems = video.stems
    discovering = isinstance(object_source, Discovery)
    present = np.zeros(256, dtype=bool)  # the ids in the masks written (Discovery: relabel them?)

    def written(ids_present: np.ndarray | None) -> None:
        if ids_present is not None:
            present[ids_present] = True
        if progress is not None:
            progress.frame_done()

    discovery_log = None
    # Frames are decoded ahead on a thread, masks encoded and written behind on two: the network
    # waits on neither. Leaving the block (normally or not) waits for every write and stops the
    # reader, so every PNG is complete before this returns and `output.finish` hashes them.
    with prefetch(_frames(video)) as frames, WriterPool(on_result=written) as writer:
        if discovering:
            masks = _discover(models, frames, object_source, options, device, dtype, stats)
        else:
            masks = propagate(models, frames, object_source, options, device, dtype, stats)
        for stem, ids in zip(stems, masks):
            path = partial / f"{stem}.png"
            writer.submit(path, _write_mask, path, ids, discovering)
        if discovering:  # now that every track is known: the final ids, at most 8
            writer.wait()
            mapping = object_source.final_ids()
            if _needs_relabel(mapping, np.flatnonzero(present)):
                writer.on_result = None
                for stem in stems:
                    path = partial / f"{stem}.png"
                    writer.submit(path, _relabel_mask, path, mapping)
            discovery_log = {"tracks": len(object_source.tracks), "kept": len({v for v in mapping.values() if v}),
                             "notes": object_source.log}
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started
    rss = _peak_rss_bytes()
    # Seconds keep microseconds so that frames / seconds, recomputed from the log, agrees with the
    # logged fps (at millisecond rounding a 40 ms video read back 1% off).
    record: dict[str, Any] = {
        "frames": stats.frames, "short_side": stats.short_side, "seconds": round(seconds, 6),
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


def _discover(models: list, frames: Iterator[np.ndarray], discovery: Discovery, options: PredictOptions,
              device: torch.device, dtype: torch.dtype | None, stats: VideoStats):
    """Unsupervised propagation: a fresh memory per shot, people found by `discovery`; yields
    each frame's track ids (renumbered by `discovery.final_ids()` once the video is done).
    Unless `options.max_objects` says otherwise, the engines hold `max_live_tracks` people, the
    most a discovery ever keeps at once, whatever the model was configured for."""
    options = replace(options, max_objects=options.max_objects or discovery.options.max_live_tracks)
    index = 0
    for first, shot in split_shots(frames, discovery.options.cut_threshold):
        for ids in propagate(models, shot, discovery.for_shot(first), options, device, dtype, stats):
            discovery.observe(index, ids)
            index += 1
            yield ids


def _proposal_network(proposals: Any, checkpoints: Sequence[ModelSource]) -> tuple[torch.nn.Module, str]:
    """The proposal network, given (path or module) or from the first checkpoint holding one, and
    the digest of the file it came from."""
    if isinstance(proposals, torch.nn.Module):
        return proposals, _model_digest(proposals)
    if proposals is not None:
        return load_proposal_network(proposals)[0], _model_digest(proposals)
    for source in checkpoints:
        if not isinstance(source, (str, os.PathLike)):
            continue
        state = load_checkpoint(source)  # read once: whether it holds a proposal network, and the network
        if "proposals" in state["models"]:
            return load_proposal_network(source, state)[0], _model_digest(source)
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


def _write_mask(path: Path, ids: np.ndarray, ids_present: bool) -> np.ndarray | None:
    """Write one mask (on a writer thread); with `ids_present`, return the ids it holds."""
    write_mask(path, ids)
    if not ids_present:
        return None
    return np.flatnonzero(id_counts(np.asarray(ids, dtype=np.uint8)))


def _needs_relabel(mapping: dict[int, int], present: Iterable[int]) -> bool:
    """Whether `relabel(ids, mapping)` changes any of the ids `present` (an unmapped id becomes 0)."""
    return any(mapping.get(int(i), 0) != i for i in present)


def _relabel_mask(path: Path, mapping: dict[int, int]) -> None:
    """Give a written mask its final ids (on a writer thread)."""
    write_mask(path, relabel(read_mask(path), mapping))


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
              "flip": options.flip, "precision": options.precision,
              "cuda_graphs": options.cuda_graphs and str(record.get("device", "")).startswith("cuda")}
    log["videos"][video] = record
    videos = log["videos"].values()
    frames = sum(v.get("frames", 0) for v in videos)
    seconds = sum(v.get("seconds", 0) for v in videos)
    log["total"] = {"videos": len(log["videos"]), "frames": frames, "seconds": round(seconds, 6),
                    "fps": round(frames / seconds, 3) if seconds else None}
    write_json_atomic(path, log)
