"""`score_dataset`: find prediction and ground-truth masks on disk, score every video, in parallel.

Prediction masks live in `PRED/<video>/<stem>.png`; ground truth is a dataset root (DAVIS layout
with `Annotations/`) or a masks root `GT/<video>/<stem>.png`. Every GT frame that has a mask is
scored (davis-semi: all but the first and last). Problems a user can fix (a missing prediction,
a size mismatch, too many ids for a DAVIS protocol) stop the run with a message naming the file.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vcseg.errors import VcsegError
from vcseg.io.frames import image_size
from vcseg.io.layouts import find_mask_videos
from vcseg.io.masks import read_mask
from vcseg.metrics.protocols import MATCHES, PROTOCOLS, score_video
from vcseg.metrics.report import ScoreReport, VideoScore


@dataclass(frozen=True)
class VideoJob:
    """Everything a worker needs to score one video: paths in frame order, and the options."""

    name: str
    gt_paths: tuple[Path, ...]
    pred_paths: tuple[Path | None, ...]  # None: no prediction file for that frame
    pred_dir: Path
    protocol: str
    match: str
    missing_as_empty: bool


def _read_gt(path: Path) -> np.ndarray:
    # 255 kept as is for every protocol: what it means (void, background, or person 1 in binary
    # 0/255 masks) is the protocol's decision, and tianchi makes it over the whole video, not per file
    return read_mask(path, binary_to_id=False)


def _read_pred(job: VideoJob, index: int, gt: np.ndarray) -> np.ndarray:
    path = job.pred_paths[index]
    if path is None:
        missing = job.pred_dir / f"{job.gt_paths[index].stem}.png"
        if not job.missing_as_empty:
            raise VcsegError(f"{missing}: prediction missing for this ground-truth frame; predict every "
                             "frame, or pass --missing-as-empty to score it as an empty mask")
        return np.zeros(gt.shape, dtype=np.uint8)
    pred = read_mask(path)
    if pred.shape != gt.shape:
        raise VcsegError(f"{path}: prediction is {pred.shape[1]}x{pred.shape[0]} but ground truth "
                         f"{job.gt_paths[index]} is {gt.shape[1]}x{gt.shape[0]}; predict at the frame's own size")
    return pred


def score_job(job: VideoJob) -> VideoScore:
    """Read one video's masks and score it (runs in a worker process)."""
    gt_frames = [_read_gt(path) for path in job.gt_paths]
    # davis-semi never looks at the first and last frame's prediction
    scored = range(1, len(gt_frames) - 1) if job.protocol == "davis-semi" else range(len(gt_frames))
    pred_frames: list[np.ndarray | None] = [None] * len(gt_frames)
    for index in scored:
        pred_frames[index] = _read_pred(job, index, gt_frames[index])
    return score_video(job.name, pred_frames, gt_frames, protocol=job.protocol, match=job.match)


def plan_jobs(pred_root: str | os.PathLike[str], gt_root: str | os.PathLike[str], protocol: str,
              match: str = "iou", missing_as_empty: bool = False) -> tuple[list[VideoJob], list[str]]:
    """One job per GT video, and the warnings found on the way (predictions without GT...)."""
    pred_root, gt_root = Path(pred_root), Path(gt_root)
    gt_videos = find_mask_videos(gt_root)
    pred_videos = find_mask_videos(pred_root)
    warnings = [f"{pred_root / name}: prediction for a video that is not in the ground truth {gt_root}; "
                "ignored" for name in sorted(set(pred_videos) - set(gt_videos))]
    jobs = []
    for name, gt_masks in sorted(gt_videos.items()):
        if not gt_masks:
            warnings.append(f"{gt_root / name}: no ground-truth masks; video skipped")
            continue
        if name not in pred_videos and not missing_as_empty:
            raise VcsegError(f"{pred_root / name}: no prediction folder for ground-truth video {name}; "
                             "predict it, or pass --missing-as-empty to score it as empty")
        pred_masks = pred_videos.get(name, {})
        jobs.append(VideoJob(name=name, gt_paths=tuple(gt_masks.values()),
                             pred_paths=tuple(pred_masks.get(stem) for stem in gt_masks),
                             pred_dir=pred_root / name, protocol=protocol, match=match,
                             missing_as_empty=missing_as_empty))
    if not jobs:
        raise VcsegError(f"{gt_root}: no ground-truth masks found; expected {gt_root}/<video>/<frame>.png "
                         f"or {gt_root}/Annotations/<video>/<frame>.png")
    return jobs, warnings


def _job_pixels(job: VideoJob) -> int:
    """Rough cost of a job, to start the biggest videos first."""
    height, width = image_size(job.gt_paths[0])
    return height * width * len(job.gt_paths)


def score_dataset(pred_root: str | os.PathLike[str], gt_root: str | os.PathLike[str], *,
                  protocol: str = "tianchi", match: str = "iou", missing_as_empty: bool = False,
                  workers: int | None = None,
                  on_video_done: Callable[[VideoScore, int], None] | None = None) -> ScoreReport:
    """Score every video of `gt_root` against `pred_root` and return the report.

    protocol: tianchi (default), davis-unsup or davis-semi (see `vcseg.metrics.protocols`).
    match: tianchi's matching score, iou (video-level mean J) or jf ((J_mean + F_mean) / 2).
    missing_as_empty: score a missing prediction file or folder as an empty mask instead of failing.
    workers: processes scoring videos in parallel (None: all cores; 1: in this process).
    on_video_done: called with each finished video and the number of videos, for progress bars.
    """
    if protocol not in PROTOCOLS:
        raise VcsegError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    if match not in MATCHES:
        raise VcsegError(f"unknown match {match!r}; choose one of {', '.join(MATCHES)}")
    jobs, warnings = plan_jobs(pred_root, gt_root, protocol, match, missing_as_empty)
    workers = (os.cpu_count() or 1) if workers is None else workers
    if workers < 1:
        raise VcsegError(f"--workers must be at least 1, got {workers}")
    workers = min(workers, len(jobs))

    results: dict[str, VideoScore] = {}
    if workers == 1:
        for job in jobs:
            results[job.name] = score_job(job)
            if on_video_done:
                on_video_done(results[job.name], len(jobs))
    else:
        ordered = sorted(jobs, key=_job_pixels, reverse=True)
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(score_job, job) for job in ordered]
            try:
                for future in as_completed(futures):
                    video = future.result()
                    results[video.name] = video
                    if on_video_done:
                        on_video_done(video, len(jobs))
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
    videos = [results[job.name] for job in jobs]
    for video in videos:
        if not video.objects:
            warnings.append(f"{video.name}: no ground-truth object in any scored frame; it adds nothing "
                            "to the averages")
    if not any(video.objects for video in videos):
        raise VcsegError(f"{gt_root}: no ground-truth object in any video; nothing to score"
                         + (" (under the DAVIS protocols 255 is void: 0/255 masks hold no object, "
                            "use --protocol tianchi)" if protocol != "tianchi" else ""))
    return ScoreReport(protocol=protocol, videos=videos, warnings=warnings)
